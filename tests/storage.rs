//! Storage end to end on QEMU (TCG), x86_64 and aarch64: volumes that `build` creates and
//! `run` attaches as virtio-blk disks, `cargo uniklink disk` on the same images from the host,
//! power loss by SIGKILL at random moments, damaged and full disks, files baked into the image,
//! and what weaving keeps of the storage stack.
//!
//! The guests are `fixtures/apps/storage` (a volume at `/data`; the command line picks what it
//! does) and `fixtures/apps/baked` (baked files only). Nothing is timed; every wait has a guard.

#[path = "common/apps.rs"]
mod apps;
#[path = "common/woven.rs"]
mod woven;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use apps::{ROOT, assert_success, build_release, run_built, uniklink, write_manifest};
use woven::component;

/// A guest that stops answering fails the test instead of hanging it.
const GUARD: Duration = Duration::from_secs(120);

fn work_dir(name: &str) -> PathBuf {
    let dir = Path::new(ROOT).join("target/storage-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn arch_args(arch: &str) -> Vec<&str> {
    vec!["--arch", arch]
}

/// FNV-1a, as the guests print it.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Bytes no one would guess, from a seed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A manifest for the storage app with a volume at /data on `image`, `cmdline` for the app.
fn storage_manifest(dir: &Path, arch: &str, image: &Path, size: &str, cmdline: &str) -> PathBuf {
    let path = dir.join(format!("storage-{arch}.yaml"));
    write_manifest(
        &path,
        &format!(
            "storage-{}-{arch}",
            dir.file_name().unwrap().to_string_lossy()
        ),
        "storage",
        arch,
        &format!(
            "cmdline: \"{cmdline}\"\nvolumes:\n  - {{ name: data, image: {}, size: {size}, mount: /data }}\n",
            image.display()
        ),
    );
    path
}

fn build(manifest: &Path, arch: &str) {
    let out = build_release(manifest, &arch_args(arch));
    assert_success(&out, &format!("building {}", manifest.display()));
}

/// `cargo uniklink run` to the end: (guest exit code, console).
fn run(manifest: &Path, arch: &str) -> (Option<i32>, String) {
    run_on(manifest, arch, &[])
}

/// `run` with more arguments (`--platform`).
fn run_on(manifest: &Path, arch: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = run_built(manifest, "120")
        .args(arch_args(arch))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn disk(args: &[&str]) -> Output {
    uniklink().arg("disk").args(args).output().unwrap()
}

fn assert_lines(console: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            console.lines().any(|l| l == *line),
            "`{line}` missing from the console:\n{console}"
        );
    }
}

/// Host → guest → host: files put into the image with `disk put`, read, changed and added by
/// the guest, read back with `disk get`.
fn round_trip(arch: &str, run_args: &[&str]) {
    let dir = work_dir(&format!("round-trip-{arch}{}", run_args.join("-")));
    let image = dir.join("data.img");
    // A second disk, read-only to the guest, holding a file the host put there.
    let cfg = dir.join("cfg.img");
    assert_success(
        &disk(&["create", cfg.to_str().unwrap(), "--size", "256KiB"]),
        "disk create",
    );
    std::fs::write(dir.join("settings"), "mode=test").unwrap();
    assert_success(
        &disk(&[
            "put",
            cfg.to_str().unwrap(),
            dir.join("settings").to_str().unwrap(),
            "/settings",
        ]),
        "disk put",
    );
    let manifest = storage_manifest(&dir, arch, &image, "4MiB", "storage.mode=roundtrip");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        format!(
            "{text}  - {{ name: cfg, image: {}, size: 256KiB, mount: /cfg, readonly: true }}\n",
            cfg.display()
        ),
    )
    .unwrap();
    build(&manifest, arch);
    assert!(image.is_file(), "build did not create the volume image");

    let tree = dir.join("in");
    std::fs::create_dir_all(tree.join("nested/deep")).unwrap();
    let files: BTreeMap<&str, Vec<u8>> = BTreeMap::from([
        ("a.txt", b"from the host".to_vec()),
        ("remove-me", b"gone soon".to_vec()),
        ("rename-me", noise(7, 5000)),
        ("nested/deep/blob.bin", noise(11, 300_000)),
        ("nested/ünï.txt", "grüße".as_bytes().to_vec()),
        ("nested/empty", Vec::new()),
    ]);
    for (name, data) in &files {
        std::fs::write(tree.join(name), data).unwrap();
    }
    let image_arg = image.to_str().unwrap();
    assert_success(
        &disk(&["put", "-r", image_arg, tree.to_str().unwrap(), "/in"]),
        "disk put",
    );

    let (code, console) = run_on(&manifest, arch, run_args);
    assert_eq!(code, Some(0), "{console}");
    let expected: Vec<String> = files
        .iter()
        .map(|(name, data)| {
            format!(
                "storage: file /data/in/{name} {} {:016x}",
                data.len(),
                fnv(data)
            )
        })
        .collect();
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_lines(&console, &expected);
    assert_lines(
        &console,
        &[
            "storage: cfg mode=test",
            "storage: cfg write refused: read-only",
            "storage: by hand mode=test",
            "storage: roundtrip done",
        ],
    );

    let back = dir.join("back");
    assert_success(
        &disk(&["get", "-r", image_arg, "/", back.to_str().unwrap()]),
        "disk get",
    );
    let read = |path: &str| std::fs::read(back.join(path)).unwrap();
    assert_eq!(read("in/a.txt"), b"from the host+guest");
    assert_eq!(
        read("out/new.bin"),
        (0..65536u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()
    );
    assert_eq!(read("out/ünï.txt"), b"written by the guest");
    assert_eq!(read("out/renamed"), files["rename-me"]);
    assert_eq!(
        read("in/nested/deep/blob.bin"),
        files["nested/deep/blob.bin"]
    );
    assert!(!back.join("in/remove-me").exists());
    assert!(!back.join("in/rename-me").exists());
}

#[test]
fn host_guest_host_round_trip_x86_64() {
    round_trip("x86_64", &[]);
}

/// The same over virtio-pci, on q35.
#[test]
fn host_guest_host_round_trip_x86_64_q35() {
    round_trip("x86_64", &["--platform", "qemu-q35"]);
}

#[test]
fn host_guest_host_round_trip_aarch64() {
    round_trip("aarch64", &[]);
}

/// `cargo uniklink run` in a process group of its own, so that SIGKILL to the group kills
/// QEMU itself, as a power cut would; console lines arrive on a channel.
struct Guest {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Guest {
    fn start(manifest: &Path, arch: &str) -> Guest {
        let mut child = run_built(manifest, "300")
            .args(arch_args(arch))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Guest { child, lines }
    }

    /// The next console line, or `None` once the guest is gone or the guard ran out.
    fn line(&self, until: Instant) -> Option<String> {
        let left = until.checked_duration_since(Instant::now())?;
        self.lines.recv_timeout(left).ok()
    }

    /// SIGKILL to the runner, whose death the kernel passes on to QEMU as SIGKILL
    /// (`PR_SET_PDEATHSIG`); returns once no QEMU has `image` open any more, since the next
    /// boot needs its lock.
    fn kill(mut self, image: &Path) {
        // SAFETY: signalling the process group this test created; no memory is touched.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
        let until = Instant::now() + GUARD;
        while qemu_has_open(image) {
            assert!(Instant::now() < until, "QEMU outlived its runner");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Whether a running QEMU names `image` on its command line.
fn qemu_has_open(image: &Path) -> bool {
    let needle = image.to_string_lossy();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| std::fs::read(entry.ok()?.path().join("cmdline")).ok())
        .any(|cmdline| {
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.starts_with("qemu-system") && cmdline.contains(needle.as_ref())
        })
}

/// Power loss: the guest appends numbered records, each synced, and says so after each sync;
/// the test kills QEMU at random moments. After every kill the next boot must mount, and find
/// every record whose sync returned, intact, and no torn record (the guest checks each and
/// exits 1 on any damage).
fn crash_consistency(arch: &str, kills: usize) {
    let dir = work_dir(&format!("crash-{arch}"));
    let image = dir.join("data.img");
    let manifest = storage_manifest(&dir, arch, &image, "8MiB", "storage.mode=append");
    build(&manifest, arch);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test seed {seed}");
    let delays = noise(seed, kills);
    let mut synced = 0u64;
    for (round, delay) in delays.iter().enumerate() {
        let guest = Guest::start(&manifest, arch);
        let until = Instant::now() + GUARD;
        let found = loop {
            let line = guest
                .line(until)
                .unwrap_or_else(|| panic!("round {round}: the guest stopped before its check"));
            if let Some(rest) = line.strip_prefix("storage: found ") {
                break rest
                    .strip_suffix(" intact records")
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("round {round}: {line}"));
            }
            assert!(
                !line.contains("damaged") && !line.contains("torn") && !line.contains("cannot"),
                "round {round}: {line}"
            );
        };
        assert!(
            found >= synced,
            "round {round}: {found} records after the kill, {synced} were synced before it"
        );
        // A random moment: after between 0 and 255 more synced records.
        let target = found + u64::from(*delay);
        synced = found;
        while synced < target {
            let Some(line) = guest.line(until) else { break };
            if let Some(n) = line.strip_prefix("storage: synced ") {
                synced = n.parse().unwrap();
            }
        }
        guest.kill(&image);
    }
}

#[test]
fn every_synced_record_survives_sigkill_x86_64() {
    crash_consistency("x86_64", 20);
}

#[test]
fn every_synced_record_survives_sigkill_aarch64() {
    crash_consistency("aarch64", 5);
}

/// A volume image damaged in `damage` boots into the app's `damaged` mode: the app meets a
/// clear error, formats where it can, and keeps running.
fn damaged(arch: &str, name: &str, damage: impl FnOnce(&Path), expect: &[&str]) {
    let dir = work_dir(&format!("damaged-{name}-{arch}"));
    let image = dir.join("data.img");
    let manifest = storage_manifest(&dir, arch, &image, "1MiB", "storage.mode=damaged");
    build(&manifest, arch);
    damage(&image);
    let (code, console) = run(&manifest, arch);
    assert_eq!(code, Some(0), "{name}: {console}");
    let mut lines = vec!["storage: still running"];
    lines.extend_from_slice(expect);
    assert_lines(&console, &lines);
}

const MOUNT_ERROR: &str = "storage: mount error: the volume holds no file system or a damaged one";

#[test]
fn damaged_disks_are_errors_and_the_app_goes_on() {
    damaged(
        "x86_64",
        "random",
        |image| std::fs::write(image, noise(3, 1 << 20)).unwrap(),
        &[
            MOUNT_ERROR,
            "storage: formatted",
            "storage: write after format ok",
        ],
    );
    damaged(
        "x86_64",
        "superblock",
        |image| {
            let mut bytes = std::fs::read(image).unwrap();
            bytes[..8192].fill(0);
            std::fs::write(image, bytes).unwrap();
        },
        &[MOUNT_ERROR, "storage: formatted"],
    );
    damaged(
        "x86_64",
        "truncated",
        |image| {
            let file = std::fs::OpenOptions::new().write(true).open(image).unwrap();
            file.set_len(8192).unwrap();
        },
        &[
            MOUNT_ERROR,
            "storage: format failed: the volume holds no file system or a damaged one",
        ],
    );
    damaged(
        "aarch64",
        "random",
        |image| std::fs::write(image, noise(5, 1 << 20)).unwrap(),
        &[MOUNT_ERROR, "storage: formatted"],
    );
}

#[test]
fn a_full_disk_is_an_error_and_space_comes_back() {
    let dir = work_dir("full");
    let image = dir.join("data.img");
    let manifest = storage_manifest(&dir, "x86_64", &image, "256KiB", "storage.mode=fill");
    build(&manifest, "x86_64");
    let (code, console) = run(&manifest, "x86_64");
    assert_eq!(code, Some(0), "{console}");
    assert!(
        console
            .lines()
            .any(|l| l.starts_with("storage: full after ") && l.ends_with(" bytes: no space")),
        "{console}"
    );
    assert_lines(&console, &["storage: recovered"]);
}

/// The tree the baked-files test packs: nested directories, an empty file, a 1 MiB binary and
/// non-ASCII names.
fn baked_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let files = BTreeMap::from([
        ("index.html".to_owned(), b"<h1>baked</h1>".to_vec()),
        ("empty".to_owned(), Vec::new()),
        ("sub/blob.bin".to_owned(), noise(13, 1 << 20)),
        (
            "sub/deeper/ünïcødé.txt".to_owned(),
            "grüße".as_bytes().to_vec(),
        ),
    ]);
    for (name, data) in &files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    files
}

fn baked(arch: &str) {
    let dir = work_dir(&format!("baked-{arch}"));
    let files = baked_tree(&dir.join("site"));
    let manifest = dir.join("baked.yaml");
    write_manifest(
        &manifest,
        &format!("baked-{arch}"),
        "baked",
        arch,
        &format!(
            "files:\n  - {{ from: {}, to: /srv/site }}\n",
            dir.join("site").display()
        ),
    );
    build(&manifest, arch);
    let image =
        apps::app_dir("baked").join(format!("target/uniklink/release/baked-{arch}-{arch}.elf"));
    let first = std::fs::read(&image).unwrap();
    build(&manifest, arch);
    assert!(first == std::fs::read(&image).unwrap(), "two builds differ");

    let (code, console) = run(&manifest, arch);
    assert_eq!(code, Some(0), "{console}");
    let mut expected = vec![
        "baked: dir /srv".to_owned(),
        "baked: dir /srv/site".to_owned(),
        "baked: dir /srv/site/sub".to_owned(),
        "baked: dir /srv/site/sub/deeper".to_owned(),
        "baked: write refused: read-only".to_owned(),
    ];
    expected.extend(files.iter().map(|(name, data)| {
        format!(
            "baked: file /srv/site/{name} {} {:016x}",
            data.len(),
            fnv(data)
        )
    }));
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_lines(&console, &expected);
}

#[test]
fn baked_files_read_back_byte_exact_x86_64() {
    baked("x86_64");
}

#[test]
fn baked_files_read_back_byte_exact_aarch64() {
    baked("aarch64");
}

/// Helper for the kvstore test: one request line, one answer line.
fn ask(stream: &mut std::net::TcpStream, line: &str) -> String {
    use std::io::Write as _;
    stream.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(stream.try_clone().unwrap())
        .read_line(&mut answer)
        .unwrap();
    answer.trim_end().to_owned()
}

/// `manifests/kvstore.yaml` as it is: SET, power off (SIGKILL), boot again, GET.
#[test]
fn kvstore_answers_get_after_a_power_off() {
    let manifest = Path::new(ROOT).join("manifests/kvstore.yaml");
    build(&manifest, "x86_64");
    let image = Path::new(ROOT).join("target/volumes/kvstore-data.img");
    let key = format!("key-{}", std::process::id());
    for round in 0..2 {
        let guest = Guest::start(&manifest, "x86_64");
        let until = Instant::now() + GUARD;
        loop {
            let line = guest
                .line(until)
                .unwrap_or_else(|| panic!("round {round}: kvstore did not start"));
            if line == "kvstore: listening on :6379" {
                break;
            }
        }
        let mut stream = loop {
            match std::net::TcpStream::connect("127.0.0.1:6379") {
                Ok(stream) => break stream,
                Err(e) if Instant::now() < until => {
                    eprintln!("connecting: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("cannot reach kvstore: {e}"),
            }
        };
        stream.set_read_timeout(Some(GUARD)).unwrap();
        if round == 0 {
            assert_eq!(ask(&mut stream, &format!("SET {key} survives")), "OK");
        } else {
            assert_eq!(ask(&mut stream, &format!("GET {key}")), "survives");
            assert_eq!(ask(&mut stream, &format!("DEL {key}")), "1");
        }
        guest.kill(&image);
    }
}

fn report(manifest: &Path, arch: &str) -> serde_json::Value {
    woven::built_reports(manifest, &arch_args(arch)).remove(0)
}

fn live(report: &serde_json::Value, name: &str) -> bool {
    component(report, name).is_some_and(|(live, _)| live)
}

/// The image's symbol names that belong to the storage stack, by crate or C prefix.
fn storage_symbols(report: &serde_json::Value) -> Vec<String> {
    woven::symbols(
        report,
        &["lfs_", "unik_blk_", "unik_fs_"],
        &["unik_blk", "unik_fs", "unik_lfs", "cpio_reader"],
    )
}

#[test]
fn weaving_keeps_only_the_storage_an_app_reaches() {
    let dir = work_dir("weave");

    // hello: nothing of storage.
    let hello = dir.join("hello.yaml");
    write_manifest(&hello, "storage-weave-hello", "hello", "x86_64", "");
    let hello = report(&hello, "x86_64");
    assert_eq!(storage_symbols(&hello), Vec::<String>::new());
    for name in ["files", "fs", "blk"] {
        assert_eq!(component(&hello, name), None, "hello has {name}");
    }

    // Baked files only: the archive reader, neither littlefs nor the disk driver.
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "hi").unwrap();
    let baked = dir.join("baked.yaml");
    write_manifest(
        &baked,
        "storage-weave-baked",
        "baked",
        "x86_64",
        &format!("files:\n  - {{ from: {}, to: /site }}\n", site.display()),
    );
    let baked = report(&baked, "x86_64");
    assert_eq!(
        component(&baked, "files"),
        Some((true, "reached".to_owned()))
    );
    for name in ["fs", "blk", "virtio"] {
        assert_eq!(
            component(&baked, name),
            Some((false, "unreachable".to_owned())),
            "baked keeps {name}"
        );
    }
    let symbols = storage_symbols(&baked);
    assert!(
        symbols.iter().any(|s| s.contains("cpio_reader")),
        "{symbols:?}"
    );
    assert!(
        !symbols
            .iter()
            .any(|s| s.starts_with("lfs_") || s.contains("unik_blk") || s.contains("unik_lfs")),
        "{symbols:?}"
    );

    // kvstore: blk and fs, required by its volumes.
    let kvstore = report(&Path::new(ROOT).join("manifests/kvstore.yaml"), "x86_64");
    for name in ["blk", "fs", "files", "virtio", "net"] {
        assert!(live(&kvstore, name), "kvstore drops {name}");
    }
    let symbols = storage_symbols(&kvstore);
    assert!(symbols.iter().any(|s| s.starts_with("lfs_")), "{symbols:?}");
    assert!(symbols.iter().any(|s| s == "unik_blk_init"), "{symbols:?}");

    // The file API linked, never used, no volumes: none of it stays.
    let unused = dir.join("unused.yaml");
    std::fs::write(
        &unused,
        format!(
            "name: storage-weave-unused\napp:\n  package: unused_fs\n  path: {}\narch: [x86_64]\n",
            Path::new(ROOT).join("fixtures/weave/unused_fs").display()
        ),
    )
    .unwrap();
    let unused = report(&unused, "x86_64");
    for name in ["files", "fs", "blk"] {
        assert_eq!(
            component(&unused, name),
            Some((false, "unreachable".to_owned())),
            "unused_fs keeps {name}"
        );
    }
    assert_eq!(storage_symbols(&unused), Vec::<String>::new());
}

/// `run` refuses a manifest whose volume image does not exist, naming it.
#[test]
fn run_without_the_volume_image_names_it() {
    let dir = work_dir("no-image");
    let image = dir.join("data.img");
    let manifest = storage_manifest(&dir, "x86_64", &image, "1MiB", "storage.mode=damaged");
    build(&manifest, "x86_64");
    std::fs::remove_file(&image).unwrap();
    let out = run_built(&manifest, "60").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // miette wraps long lines behind a gutter; the path may be cut anywhere.
    let unwrapped: String = stderr
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '│')
        .collect();
    assert!(unwrapped.contains(&image.display().to_string()), "{stderr}");
}
