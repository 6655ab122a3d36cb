//! The Linux guest `cargo xtask bench http --baseline linux` measures httpd against: the
//! kernel of Debian's `linux-image-amd64` (the package it depends on, fetched with `apt-get
//! download` into a cache and unpacked with `dpkg-deb -x`) and an initramfs written here: the
//! static busybox of Debian's `busybox-static` (its `httpd` serves the page uniklink's httpd
//! serves, which the bench hands over), the kernel modules Debian builds virtio-net and
//! virtio-mmio as, with the modules they depend on, and an `/init` that loads them, configures
//! the address QEMU's user network expects (the one `manifests/httpd.yaml` gives httpd) and
//! starts the server.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSection};

/// Debian's metapackage for the current amd64 kernel.
const KERNEL_METAPACKAGE: &str = "linux-image-amd64";
/// Where Debian's `busybox-static` puts its binary.
const BUSYBOX: &str = "/bin/busybox";
/// The modules the guest needs beyond what Debian builds in: the virtio-mmio transport
/// (QEMU microvm's virtio devices) and the network card; their dependencies are found from
/// each module's `.modinfo`.
const MODULES: &[&str] = &["virtio_mmio", "virtio_net"];
/// What the guest prints once busybox's httpd has bound its port.
pub const LISTENING: &str = "linux: listening on :8080";

/// What can stop the Linux guest from being prepared; each names the command or file.
#[derive(Debug, thiserror::Error)]
pub enum LinuxError {
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}):\n{stderr}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("`apt-cache depends {KERNEL_METAPACKAGE}` names no linux-image package:\n{0}")]
    NoKernelPackage(String),
    #[error("`apt-get download {package}` left no {package}_*.deb in {dir}")]
    NoDeb { package: String, dir: PathBuf },
    #[error("{0} is larger than cpio's 4 GiB")]
    TooLarge(String),
    #[error("{0} holds no boot/vmlinuz-* after unpacking")]
    NoKernel(PathBuf),
    #[error("module {module} (needed by {needed_by}) is not in {dir}")]
    NoModule {
        module: String,
        needed_by: String,
        dir: PathBuf,
    },
    #[error("{path}: not a kernel module with a .modinfo section ({reason})")]
    BadModule { path: PathBuf, reason: String },
    #[error("{BUSYBOX} is missing: install Debian's busybox-static (`bash .ci/setup`)")]
    NoBusybox,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LinuxError + '_ {
    move |source| LinuxError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A kernel and an initramfs ready to boot.
pub struct LinuxGuest {
    /// The Debian package the kernel came from, with its version.
    pub package: String,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
}

/// Fetches and unpacks the kernel package once into `cache`, and writes an initramfs
/// serving `page` as `/` on port 8080.
pub fn prepare(cache: &Path, page: &[u8]) -> Result<LinuxGuest, LinuxError> {
    fs::create_dir_all(cache).map_err(io(cache))?;
    let package = kernel_package()?;
    let tree = cache.join(&package);
    if !tree.join("boot").is_dir() {
        let deb = download(cache, &package)?;
        // Unpacked beside, then renamed: an interrupted unpacking is never taken for a tree.
        let partial = cache.join(format!("{package}.partial"));
        if partial.exists() {
            fs::remove_dir_all(&partial).map_err(io(&partial))?;
        }
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&partial))?;
        fs::rename(&partial, &tree).map_err(io(&tree))?;
    }
    let boot = tree.join("boot");
    let kernel = fs::read_dir(&boot)
        .map_err(io(&boot))?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .ok_or_else(|| LinuxError::NoKernel(tree.clone()))?;
    let release = kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .ok_or_else(|| LinuxError::NoKernel(tree.clone()))?
        .to_owned();
    let modules = load_order(&tree.join("lib/modules").join(&release).join("kernel"))?;
    if !Path::new(BUSYBOX).is_file() {
        return Err(LinuxError::NoBusybox);
    }
    let initramfs = cache.join(format!("initramfs-{release}.cpio"));
    let bytes = initramfs_archive(&modules, page)?;
    fs::write(&initramfs, bytes).map_err(io(&initramfs))?;
    Ok(LinuxGuest {
        package,
        kernel,
        initramfs,
    })
}

/// The versioned package `linux-image-amd64` depends on, as apt sees it now.
fn kernel_package() -> Result<String, LinuxError> {
    let printed = run(Command::new("apt-cache").args(["depends", KERNEL_METAPACKAGE]))?;
    printed
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|name| name.starts_with("linux-image-"))
        .map(str::to_owned)
        .ok_or(LinuxError::NoKernelPackage(printed))
}

/// The package's `.deb` in `cache`, downloaded by apt if it is not there yet.
fn download(cache: &Path, package: &str) -> Result<PathBuf, LinuxError> {
    let find = || -> Result<Option<PathBuf>, LinuxError> {
        Ok(fs::read_dir(cache)
            .map_err(io(cache))?
            .flatten()
            .map(|entry| entry.path())
            .find(|path| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
            }))
    };
    if let Some(deb) = find()? {
        return Ok(deb);
    }
    eprintln!(
        "downloading {package} (apt-get download) into {}",
        cache.display()
    );
    run(Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(cache))?;
    find()?.ok_or_else(|| LinuxError::NoDeb {
        package: package.to_owned(),
        dir: cache.to_owned(),
    })
}

/// The modules of `MODULES` and everything they depend on, each after its dependencies.
fn load_order(kernel_dir: &Path) -> Result<Vec<PathBuf>, LinuxError> {
    let mut by_name = BTreeMap::new();
    index_modules(kernel_dir, &mut by_name)?;
    let mut order = Vec::new();
    for module in MODULES {
        visit(module, "the bench", kernel_dir, &by_name, &mut order)?;
    }
    Ok(order)
}

fn index_modules(dir: &Path, into: &mut BTreeMap<String, PathBuf>) -> Result<(), LinuxError> {
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() {
            index_modules(&path, into)?;
        } else if let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".ko"))
        {
            // The kernel treats `-` and `_` in module names alike.
            into.insert(name.replace('-', "_"), path);
        }
    }
    Ok(())
}

fn visit(
    module: &str,
    needed_by: &str,
    kernel_dir: &Path,
    by_name: &BTreeMap<String, PathBuf>,
    order: &mut Vec<PathBuf>,
) -> Result<(), LinuxError> {
    let path = by_name
        .get(&module.replace('-', "_"))
        .ok_or_else(|| LinuxError::NoModule {
            module: module.to_owned(),
            needed_by: needed_by.to_owned(),
            dir: kernel_dir.to_owned(),
        })?;
    if order.contains(path) {
        return Ok(());
    }
    for dependency in depends(path)? {
        visit(&dependency, module, kernel_dir, by_name, order)?;
    }
    order.push(path.clone());
    Ok(())
}

/// The `depends=` list of a module's `.modinfo` (NUL-separated `key=value` strings).
fn depends(path: &Path) -> Result<Vec<String>, LinuxError> {
    let bytes = fs::read(path).map_err(io(path))?;
    let bad = |reason: String| LinuxError::BadModule {
        path: path.to_owned(),
        reason,
    };
    let file = object::File::parse(&*bytes).map_err(|e| bad(e.to_string()))?;
    let modinfo = file
        .section_by_name(".modinfo")
        .ok_or_else(|| bad("no .modinfo".to_owned()))?
        .data()
        .map_err(|e| bad(e.to_string()))?;
    Ok(modinfo
        .split(|&b| b == 0)
        .filter_map(|field| field.strip_prefix(b"depends="))
        .flat_map(|list| list.split(|&b| b == b','))
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect())
}

/// `/init`: loads the modules in order (virtio-mmio told of the devices QEMU put on the
/// command line, as modprobe would pass them, since the kernel does not for a module loaded
/// by hand), configures the interface, starts busybox's httpd (which returns once it has
/// bound the port and gone to the background) and says so, then idles as PID 1 must.
fn init_script(modules: &[String]) -> String {
    let mut script = String::from(
        "#!/bin/busybox sh\n\
         bb=/bin/busybox\n\
         $bb mount -t proc proc /proc\n\
         mmio=\"\"\n\
         for word in $($bb cat /proc/cmdline); do\n\
         \x20 case \"$word\" in virtio_mmio.device=*) mmio=\"$mmio ${word#virtio_mmio.}\";; esac\n\
         done\n",
    );
    for module in modules {
        let args = if module.ends_with("/virtio_mmio.ko") {
            " $mmio"
        } else {
            ""
        };
        script.push_str(&format!("$bb insmod {module}{args}\n"));
    }
    script.push_str(
        "$bb ip link set lo up\n\
         $bb ip link set eth0 up\n\
         $bb ip addr add 10.0.2.15/24 dev eth0\n\
         $bb ip route add default via 10.0.2.2\n\
         $bb httpd -p 8080 -h /www && $bb echo \"linux: listening on :8080\"\n\
         exec $bb sleep 2147483647\n",
    );
    script
}

/// The initramfs as a cpio `newc` archive, as the kernel unpacks it.
fn initramfs_archive(modules: &[PathBuf], page: &[u8]) -> Result<Vec<u8>, LinuxError> {
    let busybox = fs::read(BUSYBOX).map_err(io(Path::new(BUSYBOX)))?;
    let mut in_guest = Vec::new();
    let mut files: Vec<(String, Vec<u8>, u32)> = Vec::new();
    for module in modules {
        let name =
            module
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| LinuxError::BadModule {
                    path: module.clone(),
                    reason: "not a UTF-8 file name".to_owned(),
                })?;
        let path = format!("lib/modules/{name}");
        files.push((
            path.clone(),
            fs::read(module).map_err(io(module))?,
            0o100_644,
        ));
        in_guest.push(format!("/{path}"));
    }
    files.push(("bin/busybox".to_owned(), busybox, 0o100_755));
    files.push(("www/index.html".to_owned(), page.to_vec(), 0o100_644));
    files.push((
        "init".to_owned(),
        init_script(&in_guest).into_bytes(),
        0o100_755,
    ));

    let archive_error = |source| LinuxError::Io {
        path: PathBuf::from("initramfs (in memory)"),
        source,
    };
    let mut out = Vec::new();
    let mut ino = 0;
    let mut entry = |name: &str, mode: u32| {
        ino += 1;
        cpio::newc::Builder::new(name)
            .ino(ino)
            .mode(mode)
            .uid(0)
            .gid(0)
            .mtime(0)
    };
    for dir in ["bin", "dev", "lib", "lib/modules", "proc", "www"] {
        entry(dir, 0o040_755)
            .nlink(2)
            .write(&mut out, 0)
            .finish()
            .map_err(archive_error)?;
    }
    // The kernel opens /dev/console as init's standard streams; without the node init prints
    // nothing.
    entry("dev/console", 0o020_600)
        .rdev_major(5)
        .rdev_minor(1)
        .write(&mut out, 0)
        .finish()
        .map_err(archive_error)?;
    for (name, bytes, mode) in files {
        let size = u32::try_from(bytes.len()).map_err(|_| LinuxError::TooLarge(name.clone()))?;
        let mut writer = entry(&name, mode).nlink(1).write(&mut out, size);
        writer.write_all(&bytes).map_err(archive_error)?;
        writer.finish().map_err(archive_error)?;
    }
    cpio::newc::trailer(&mut out).map_err(archive_error)?;
    Ok(out)
}

/// Runs `cmd`, its standard output on success.
fn run(cmd: &mut Command) -> Result<String, LinuxError> {
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|source| LinuxError::Spawn {
        command: command.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(LinuxError::Failed {
            command,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The kernel command line for the guest. Under TCG the guest's TSC runs at the host's rate,
/// but the kernel calibrates it against the PIT, which fails on a busy host (and microvm has
/// no HPET or ACPI PM timer to fall back on): the boot then stalls for good. The host's rate
/// is stated instead (`tsc_early_khz`), as `cargo uniklink run` states it to the unikernel
/// (`uniklink.tsc_hz=`), where the host says its TSC is invariant.
pub fn command_line() -> String {
    let mut line = String::from("console=ttyS0 quiet panic=-1");
    if let Some(khz) = host_tsc_khz() {
        line.push_str(&format!(" tsc_early_khz={khz} tsc=reliable"));
    }
    line
}

/// The host's TSC rate in kHz, timed against the monotonic clock for 5 ms, where the host's
/// kernel flags the TSC invariant (`constant_tsc`, `nonstop_tsc`).
fn host_tsc_khz() -> Option<u64> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").ok()?;
    let flags = cpuinfo.lines().find(|line| line.starts_with("flags"))?;
    let invariant = ["constant_tsc", "nonstop_tsc"]
        .iter()
        .all(|flag| flags.split_ascii_whitespace().any(|f| f == *flag));
    if !invariant {
        return None;
    }
    let (at, ticks) = (std::time::Instant::now(), tsc()?);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let elapsed = tsc()?.checked_sub(ticks)?;
    let seconds = at.elapsed().as_secs_f64();
    (seconds > 0.0).then(|| (elapsed as f64 / seconds / 1e3).round() as u64)
}

#[cfg(target_arch = "x86_64")]
fn tsc() -> Option<u64> {
    // SAFETY: rdtsc exists on every x86_64 CPU and has no side effects.
    Some(unsafe { std::arch::x86_64::_rdtsc() })
}

#[cfg(not(target_arch = "x86_64"))]
fn tsc() -> Option<u64> {
    None
}
