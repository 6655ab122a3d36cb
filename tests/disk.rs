//! `cargo uniklink disk`: a tree copied into a new image and back out byte for byte, and bad
//! images refused with exit status 1, a message naming the file and nothing written.

use std::fs;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn uniklink() -> Command {
    let mut cmd = Command::cargo_bin("cargo-uniklink").unwrap();
    cmd.env_remove("UNIKLINK_LOG");
    cmd
}

fn disk(args: &[&str], dir: &Path) -> assert_cmd::assert::Assert {
    uniklink().current_dir(dir).arg("disk").args(args).assert()
}

/// Bytes without a pattern, so that a misplaced block cannot go unnoticed.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Every path under `root`, `/`-separated and sorted, with the contents of files.
fn tree(root: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            if path.is_dir() {
                found.push((relative, None));
                pending.push(path);
            } else {
                found.push((relative, Some(fs::read(&path).unwrap())));
            }
        }
    }
    found.sort();
    found
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn a_tree_goes_in_and_comes_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let src = root.join("src");
    fs::create_dir_all(src.join("etc/app/conf.d")).unwrap();
    fs::create_dir_all(src.join("var/empty")).unwrap();
    fs::write(src.join("etc/app/conf.d/10-port.toml"), "port = 80\n").unwrap();
    fs::write(src.join("etc/app/empty"), "").unwrap();
    fs::write(src.join("blob.bin"), noise(1 << 20)).unwrap();
    fs::write(src.join("größe-サイズ.txt"), "non-ASCII\n").unwrap();

    disk(&["create", "disk.img", "--size", "8MiB"], root)
        .success()
        .stdout("");
    assert_eq!(fs::metadata(root.join("disk.img")).unwrap().len(), 8 << 20);
    disk(&["put", "-r", "disk.img", "src", "/data"], root).success();
    disk(&["put", "disk.img", "src/blob.bin", "/copies/"], root).success();

    disk(&["ls", "disk.img", "/data"], root)
        .success()
        .stdout(concat!(
            "file      1048576 blob.bin\n",
            "dir             - etc\n",
            "file           10 größe-サイズ.txt\n",
            "dir             - var\n",
        ));
    disk(&["ls", "-R", "disk.img"], root)
        .success()
        .stdout(predicate::str::contains(
            "dir             - /data/var/empty\n",
        ))
        .stdout(predicate::str::contains(
            "file            0 /data/etc/app/empty\n",
        ))
        .stdout(predicate::str::contains(
            "file      1048576 /copies/blob.bin\n",
        ));
    disk(&["df", "disk.img"], root)
        .success()
        .stdout(predicate::str::ends_with("of 2048 blocks of 4096 bytes)\n"));

    disk(&["get", "-r", "disk.img", "/data", "out"], root).success();
    assert_eq!(tree(&root.join("out")), tree(&src));
    let out = disk(&["get", "disk.img", "/copies/blob.bin"], root).success();
    assert!(
        out.get_output().stdout == noise(1 << 20),
        "blob.bin on stdout"
    );
    disk(
        &["get", "disk.img", "/data/größe-サイズ.txt", "copy.txt"],
        root,
    )
    .success();
    assert_eq!(fs::read(root.join("copy.txt")).unwrap(), b"non-ASCII\n");
}

#[test]
fn wrong_paths_are_errors_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    disk(&["create", "disk.img", "--size", "64KiB"], root).success();
    disk(&["create", "disk.img", "--size", "64KiB"], root)
        .code(1)
        .stderr(predicate::str::contains("disk.img: already exists"));
    disk(&["create", "small.img", "--size", "60KiB"], root)
        .code(1)
        .stderr(predicate::str::contains(
            "small.img: 61440 bytes is not a disk size",
        ));
    disk(&["get", "disk.img", "/missing"], root)
        .code(1)
        .stderr(predicate::str::contains(
            "disk.img: /missing: no such file or directory",
        ));
    disk(&["put", "disk.img", "missing.txt", "/x"], root)
        .code(1)
        .stderr(predicate::str::contains(
            "disk.img: /x: cannot read missing.txt",
        ));
    fs::write(root.join("f"), "x").unwrap();
    disk(&["put", "disk.img", "f", "/a/../b"], root)
        .code(1)
        .stderr(predicate::str::contains("disk.img: /a/../b: `.` and `..`"));
    disk(&["put", "disk.img", "f", "relative"], root)
        .code(1)
        .stderr(predicate::str::contains(
            "disk.img: relative: guest paths are absolute",
        ));
    // Into a directory, the file keeps its name, which must be one a guest can have.
    let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9");
    fs::write(root.join(latin1), "x").unwrap();
    uniklink()
        .current_dir(root)
        .args(["disk", "put", "disk.img"])
        .arg(latin1)
        .arg("/docs/")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("its name is not UTF-8"));
    disk(&["ls", "disk.img", "/"], root)
        .success()
        .stdout(predicate::str::is_empty());
    fs::remove_file(root.join(latin1)).unwrap();
    assert_eq!(names_in(root), ["disk.img", "f"]);
}

/// Images that are not littlefs disks: each command fails with status 1, names the file and
/// writes nothing, neither to the image nor beside it.
#[test]
fn bad_images_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |name: &str, bytes: &[u8]| -> PathBuf {
        fs::write(root.join(name), bytes).unwrap();
        root.join(name)
    };
    disk(&["create", "valid.img", "--size", "1MiB"], root).success();
    let valid = fs::read(root.join("valid.img")).unwrap();
    let mut no_superblock = valid.clone();
    no_superblock[..8192].fill(0);
    fs::remove_file(root.join("valid.img")).unwrap();
    fs::create_dir(root.join("dir.img")).unwrap();
    fs::write(root.join("file"), "x").unwrap();

    let cases = [
        (
            write("random.img", &noise(1 << 20)),
            "no littlefs file system",
        ),
        (
            write("zeros.img", &vec![0; 1 << 20]),
            "no littlefs file system",
        ),
        (
            write("no-superblock.img", &no_superblock),
            "no littlefs file system",
        ),
        (
            write("truncated.img", &valid[..3000]),
            "3000 bytes is not a disk size",
        ),
        (
            write("odd.img", &valid[..(1 << 20) - 100]),
            "is not a disk size",
        ),
        (root.join("dir.img"), "dir.img"),
        (
            root.join("missing.img"),
            "missing.img: cannot open the disk image",
        ),
    ];
    let before = tree(root);
    for (image, message) in &cases {
        let name = image.file_name().unwrap().to_str().unwrap();
        let commands: [&[&str]; 6] = [
            &["ls", name],
            &["df", name],
            &["get", name, "/x", "out"],
            &["get", "-r", name, "/", "out"],
            &["put", name, "file", "/file"],
            &["put", "-r", name, ".", "/"],
        ];
        for args in commands {
            disk(args, root)
                .code(1)
                .stdout("")
                .stderr(predicate::str::contains(format!("{name}:")))
                .stderr(predicate::str::contains(*message));
            assert!(tree(root) == before, "{args:?} changed the directory");
        }
    }
}

/// Images the `volume` fuzz target found (`fuzz/README.md`), in `fixtures/disk/`: littlefs
/// volumes whose checksummed metadata makes littlefs loop. The command that meets the damage
/// fails with status 1 and a message naming the image and the guest path, rather than hanging.
#[test]
fn fuzzed_images_fail_with_a_message_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/disk");
    fs::write(root.join("file"), "x").unwrap();
    // The global state claims orphans whose repair, before the first change, never ended
    // (littlefs's `lfs_fs_deorphan`, now stopped by unik-lfs's budget of device accesses).
    let image = "fuzz-orphan-loop.img";
    fs::copy(fixtures.join(image), root.join(image)).unwrap();
    // The volume mounts: the damage shows only when a change first repairs it.
    disk(&["df", image], root)
        .success()
        .stdout(predicate::str::contains("of 16 blocks"));
    uniklink()
        .current_dir(root)
        .args(["disk", "put", image, "file", "/new/file"])
        // A hang fails the test rather than stalling the suite.
        .timeout(std::time::Duration::from_secs(300))
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(format!(
            "{image}: /new: no valid littlefs"
        )));
    // A directory whose chain of metadata pairs leads back to itself listed the same entries
    // until the cap on entries, for minutes.
    let image = "fuzz-listing-cycle.img";
    fs::copy(fixtures.join(image), root.join(image)).unwrap();
    disk(&["ls", image, "/var"], root)
        .success()
        .stdout(predicate::str::contains("empty"));
    uniklink()
        .current_dir(root)
        .args(["disk", "ls", image, "/var/empty"])
        .timeout(std::time::Duration::from_secs(300))
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(format!(
            "{image}: /var/empty: no valid littlefs"
        )));
}

/// While a QEMU uses an image (here one stopped before its first instruction, with a virtio
/// disk on it), `disk` takes part in QEMU's image locking: it neither writes the image nor
/// reads it, and says why; once QEMU is gone it does both.
#[test]
fn an_image_a_running_qemu_uses_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    disk(&["create", "disk.img", "--size", "64KiB"], root).success();
    fs::write(root.join("f"), "x").unwrap();
    let mut qemu = std::process::Command::new("qemu-system-x86_64")
        .current_dir(root)
        .args(["-machine", "q35", "-accel", "tcg", "-nodefaults", "-S"])
        .args(["-display", "none", "-monitor", "none", "-serial", "none"])
        .args(["-drive", "file=disk.img,format=raw,if=none,id=d"])
        .args(["-device", "virtio-blk-pci,drive=d"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64 runs");
    // QEMU locks the image as it opens it, early in its start-up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let in_use = loop {
        let out = uniklink()
            .current_dir(root)
            .args(["disk", "put", "disk.img", "f", "/f"])
            .output()
            .unwrap();
        if !out.status.success() {
            break out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "QEMU never locked the image"
        );
        // Until QEMU has it, the put goes in, harmlessly.
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let stderr = String::from_utf8_lossy(&in_use.stderr);
    assert_eq!(in_use.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("disk.img: in use: a running QEMU"),
        "{stderr}"
    );
    disk(&["ls", "disk.img", "/"], root)
        .code(1)
        .stderr(predicate::str::contains("disk.img: in use: a running QEMU"));
    qemu.kill().unwrap();
    qemu.wait().unwrap();
    disk(&["put", "disk.img", "f", "/g"], root).success();
    disk(&["get", "disk.img", "/g"], root).success().stdout("x");
}
