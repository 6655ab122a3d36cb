//! The QEMU command line for each platform. Everything that differs between platforms is a row
//! of `PLATFORMS`; `command_line` only assembles a row with the caller's options.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use uniklink_config::{Arch, DeviceKind, Platform};

use super::Disk;
use super::accel::ResolvedAccel;

/// The row for `platform`, or `None` for a platform QEMU does not emulate (Firecracker).
pub(crate) fn spec(platform: Platform) -> Option<&'static PlatformSpec> {
    PLATFORMS.iter().find(|spec| spec.platform == platform)
}

/// How the guest tells QEMU its exit code, and so how QEMU's exit status maps back to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitConvention {
    /// x86: the guest writes v to the isa-debug-exit port and QEMU exits with (v << 1) | 1.
    /// A clean power-off exits with 0. An even non-zero status cannot come from the guest.
    IsaDebugExit,
    /// Arm semihosting SYS_EXIT_EXTENDED passes the code through; PSCI SYSTEM_OFF exits 0.
    Semihosting,
}

impl ExitConvention {
    /// The guest's exit code for a QEMU exit status, or `None` when the status cannot have
    /// come from the guest.
    pub(crate) fn guest_code(self, status: i32) -> Option<i32> {
        match self {
            ExitConvention::IsaDebugExit if status == 0 => Some(0),
            ExitConvention::IsaDebugExit if status % 2 == 1 => Some((status - 1) / 2),
            ExitConvention::IsaDebugExit => None,
            ExitConvention::Semihosting => Some(status),
        }
    }
}

/// QEMU device names by [`DeviceKind`]: the `-device` that gives the guest one such device.
#[derive(Debug)]
pub(crate) struct Devices {
    pub virtio_net: &'static str,
    pub virtio_blk: &'static str,
    pub virtio_rng: &'static str,
}

impl Devices {
    pub(crate) fn get(&self, kind: DeviceKind) -> &'static str {
        match kind {
            DeviceKind::VirtioNet => self.virtio_net,
            DeviceKind::VirtioBlk => self.virtio_blk,
            DeviceKind::VirtioRng => self.virtio_rng,
        }
    }
}

/// Whether one device of `kind` is attached as it is whenever a live component drives it. A
/// network card needs a user network with the manifest's port forwards and a disk its volume,
/// so those are made from the invocation's `ports` and `disks` instead; an entropy source needs
/// nothing but QEMU's default backend (the host's random source).
fn attached_alone(kind: DeviceKind) -> bool {
    match kind {
        DeviceKind::VirtioNet | DeviceKind::VirtioBlk => false,
        DeviceKind::VirtioRng => true,
    }
}

/// One platform: the QEMU binary and the arguments that make it boot an image the way the
/// library OS expects.
#[derive(Debug)]
pub(crate) struct PlatformSpec {
    pub platform: Platform,
    /// The one architecture QEMU's machine runs.
    pub arch: Arch,
    pub qemu: &'static str,
    /// The Debian package that ships `qemu`, named when it is missing.
    pub debian_package: &'static str,
    pub machine: &'static str,
    /// `-cpu` under TCG. `max` gives the guest every feature TCG emulates (SSE included).
    pub cpu_tcg: &'static str,
    /// `-cpu` under KVM: the host's own CPU, the only model real virtualisation runs at speed.
    pub cpu_kvm: &'static str,
    /// Arguments every boot on this platform needs (the exit device among them).
    pub fixed: &'static [&'static str],
    /// The QEMU device for each kind of device a component drives, on the platform's bus.
    pub devices: Devices,
    /// Whether the image must carry a PVH entry note, without which QEMU cannot boot an ELF.
    pub needs_pvh_note: bool,
    pub exit: ExitConvention,
}

/// microvm and virt have no PCI bus the library OS drives: their virtio devices sit on
/// virtio-mmio transports, which QEMU announces on the kernel command line (microvm) or in the
/// device tree (virt). QEMU makes those transports legacy (version 1) unless told
/// `-global virtio-mmio.force-legacy=false`; the library OS's drivers take either.
const VIRTIO_MMIO: Devices = Devices {
    virtio_net: "virtio-net-device",
    virtio_blk: "virtio-blk-device",
    virtio_rng: "virtio-rng-device",
};

const PLATFORMS: &[PlatformSpec] = &[
    PlatformSpec {
        platform: Platform::QemuMicrovm,
        arch: Arch::X86_64,
        qemu: "qemu-system-x86_64",
        debian_package: "qemu-system-x86",
        machine: "microvm,acpi=off",
        cpu_tcg: "max",
        cpu_kvm: "host",
        fixed: &["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"],
        devices: VIRTIO_MMIO,
        needs_pvh_note: true,
        exit: ExitConvention::IsaDebugExit,
    },
    PlatformSpec {
        platform: Platform::QemuQ35,
        arch: Arch::X86_64,
        qemu: "qemu-system-x86_64",
        debian_package: "qemu-system-x86",
        machine: "q35",
        cpu_tcg: "max",
        cpu_kvm: "host",
        fixed: &["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"],
        devices: Devices {
            virtio_net: "virtio-net-pci",
            virtio_blk: "virtio-blk-pci",
            virtio_rng: "virtio-rng-pci",
        },
        needs_pvh_note: true,
        exit: ExitConvention::IsaDebugExit,
    },
    PlatformSpec {
        platform: Platform::QemuVirt,
        arch: Arch::Aarch64,
        qemu: "qemu-system-aarch64",
        debian_package: "qemu-system-arm",
        machine: "virt",
        cpu_tcg: "cortex-a57",
        cpu_kvm: "host",
        // Semihosting also lets the guest open host files; the guests run here are our own
        // images and tests, and SYS_EXIT_EXTENDED is the only exit that carries a code.
        fixed: &["-semihosting"],
        devices: VIRTIO_MMIO,
        needs_pvh_note: false,
        exit: ExitConvention::Semihosting,
    },
];

/// The memory a guest gets when the caller does not say: enough for the library OS heap.
pub const DEFAULT_MEMORY: u64 = 128 * 1024 * 1024;

/// What varies from one boot to the next on a given platform.
#[derive(Debug)]
pub(crate) struct Invocation<'a> {
    pub image: &'a Path,
    pub accel: ResolvedAccel,
    pub memory: u64,
    pub cmdline: Option<&'a str>,
    pub ports: &'a [(u16, u16)],
    pub disks: &'a [Disk],
    /// The kinds of device the image's live components drive.
    pub devices: &'a [DeviceKind],
    pub extra_args: &'a [OsString],
}

/// QEMU's gdbstub on 127.0.0.1 only, the guest stopped before its first instruction (`-S`)
/// until the debugger continues it.
pub(crate) fn gdb_args(port: u16) -> [OsString; 3] {
    [
        "-gdb".into(),
        format!("tcp:127.0.0.1:{port}").into(),
        "-S".into(),
    ]
}

/// The arguments after the QEMU binary's name.
///
/// The serial port is QEMU's stdout and nothing else is: `-nodefaults` drops the default
/// VGA, parallel port and monitor, `-display none` keeps QEMU from wanting a window and
/// `-monitor none` keeps the monitor off stdio, so the pipe carries exactly the guest's
/// console. `-no-reboot` turns a guest reset (a triple fault) into QEMU exiting.
pub(crate) fn command_line(spec: &PlatformSpec, inv: &Invocation<'_>) -> Vec<OsString> {
    let cpu = match inv.accel {
        ResolvedAccel::Tcg => spec.cpu_tcg,
        ResolvedAccel::Kvm => spec.cpu_kvm,
    };
    let mut args: Vec<OsString> = [
        "-M",
        spec.machine,
        "-accel",
        inv.accel.name(),
        "-cpu",
        cpu,
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push("-m".into());
    args.push(format!("{}M", inv.memory.div_ceil(1024 * 1024)).into());
    args.extend(spec.fixed.iter().map(OsString::from));
    // A live net component gets a card even without forwards: an app that only connects out
    // (the guest reaches the host as 10.0.2.2) needs one too.
    if !inv.ports.is_empty() || inv.devices.contains(&DeviceKind::VirtioNet) {
        let forwards: String = inv
            .ports
            .iter()
            .map(|(host, guest)| format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"))
            .collect();
        args.push("-netdev".into());
        args.push(format!("user,id=n0{forwards}").into());
        args.push("-device".into());
        let net = spec.devices.get(DeviceKind::VirtioNet);
        args.push(format!("{net},netdev=n0").into());
    }
    for (index, disk) in inv.disks.iter().enumerate() {
        let mut drive = OsString::from("file=");
        drive.push(escape_option_value(disk.image.as_os_str()));
        drive.push(format!(",if=none,id=d{index},format=raw,cache=writeback"));
        if disk.readonly {
            drive.push(",readonly=on");
        }
        let blk = spec.devices.get(DeviceKind::VirtioBlk);
        let mut device = OsString::from(format!("{blk},drive=d{index},serial="));
        device.push(escape_option_value(OsStr::new(&disk.name)));
        args.extend(["-drive".into(), drive, "-device".into(), device]);
    }
    for &kind in inv.devices.iter().filter(|&&kind| attached_alone(kind)) {
        args.push("-device".into());
        args.push(spec.devices.get(kind).into());
    }
    args.push("-kernel".into());
    args.push(inv.image.into());
    if let Some(cmdline) = inv.cmdline {
        args.push("-append".into());
        args.push(cmdline.into());
    }
    args.extend(inv.extra_args.iter().cloned());
    args
}

/// A value inside a QEMU `key=value,...` option, where a comma is written twice.
fn escape_option_value(value: &OsStr) -> OsString {
    let mut bytes = Vec::with_capacity(value.len());
    for &byte in value.as_bytes() {
        bytes.push(byte);
        if byte == b',' {
            bytes.push(b',');
        }
    }
    OsString::from_vec(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn microvm_under_tcg() {
        let inv = Invocation {
            image: Path::new("/img/app-x86_64.elf"),
            accel: ResolvedAccel::Tcg,
            memory: DEFAULT_MEMORY,
            cmdline: None,
            ports: &[],
            disks: &[],
            devices: &[],
            extra_args: &[],
        };
        assert_eq!(
            render(&command_line(spec(Platform::QemuMicrovm).unwrap(), &inv)),
            "-M microvm,acpi=off -accel tcg -cpu max -nodefaults -no-reboot -display none \
             -monitor none -serial stdio -m 128M -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -kernel /img/app-x86_64.elf"
        );
    }

    #[test]
    fn q35_under_kvm_with_ports_cmdline_and_extra_args() {
        let extra = [OsString::from("-s"), OsString::from("-S")];
        let inv = Invocation {
            image: Path::new("app.elf"),
            accel: ResolvedAccel::Kvm,
            memory: 3 * 1024 * 1024 + 1,
            cmdline: Some("verbose quiet"),
            ports: &[(8080, 80), (2222, 22)],
            disks: &[],
            devices: &[],
            extra_args: &extra,
        };
        assert_eq!(
            render(&command_line(spec(Platform::QemuQ35).unwrap(), &inv)),
            "-M q35 -accel kvm -cpu host -nodefaults -no-reboot -display none -monitor none \
             -serial stdio -m 4M -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -netdev user,id=n0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:2222-:22 \
             -device virtio-net-pci,netdev=n0 -kernel app.elf -append verbose quiet -s -S"
        );
    }

    #[test]
    fn virt_uses_semihosting_and_mmio_net() {
        let inv = Invocation {
            image: Path::new("app.elf"),
            accel: ResolvedAccel::Tcg,
            memory: DEFAULT_MEMORY,
            cmdline: None,
            ports: &[(8080, 80)],
            disks: &[],
            devices: &[],
            extra_args: &[],
        };
        let line = render(&command_line(spec(Platform::QemuVirt).unwrap(), &inv));
        assert!(
            line.starts_with("-M virt -accel tcg -cpu cortex-a57 "),
            "{line}"
        );
        assert!(line.contains(" -semihosting "), "{line}");
        assert!(
            line.contains("-device virtio-net-device,netdev=n0"),
            "{line}"
        );
    }

    #[test]
    fn disks_are_block_devices_named_by_their_serials() {
        let disks = [
            Disk {
                name: "data".to_owned(),
                image: "/var/disks/data.img".into(),
                readonly: false,
            },
            Disk {
                name: "seed".to_owned(),
                image: "/var/a,b/seed.img".into(),
                readonly: true,
            },
        ];
        let platforms = [
            (Platform::QemuMicrovm, "virtio-blk-device"),
            (Platform::QemuQ35, "virtio-blk-pci"),
            (Platform::QemuVirt, "virtio-blk-device"),
        ];
        for (platform, device) in platforms {
            let inv = Invocation {
                image: Path::new("app.elf"),
                accel: ResolvedAccel::Tcg,
                memory: DEFAULT_MEMORY,
                cmdline: None,
                ports: &[],
                disks: &disks,
                devices: &[],
                extra_args: &[],
            };
            let line = render(&command_line(spec(platform).unwrap(), &inv));
            let expected = format!(
                " -drive file=/var/disks/data.img,if=none,id=d0,format=raw,cache=writeback \
                 -device {device},drive=d0,serial=data \
                 -drive file=/var/a,,b/seed.img,if=none,id=d1,format=raw,cache=writeback,readonly=on \
                 -device {device},drive=d1,serial=seed -kernel app.elf"
            );
            assert!(line.ends_with(&expected), "{platform}: {line}");
        }
    }

    #[test]
    fn an_entropy_source_is_attached_when_a_live_component_drives_one() {
        let platforms = [
            (Platform::QemuMicrovm, "virtio-rng-device"),
            (Platform::QemuQ35, "virtio-rng-pci"),
            (Platform::QemuVirt, "virtio-rng-device"),
        ];
        for (platform, device) in platforms {
            let inv = Invocation {
                image: Path::new("app.elf"),
                accel: ResolvedAccel::Tcg,
                memory: DEFAULT_MEMORY,
                cmdline: None,
                ports: &[],
                disks: &[],
                devices: &[DeviceKind::VirtioRng],
                extra_args: &[],
            };
            let line = render(&command_line(spec(platform).unwrap(), &inv));
            assert!(
                line.ends_with(&format!(" -device {device} -kernel app.elf")),
                "{platform}: {line}"
            );
            assert!(!line.contains("virtio-net"), "{platform}: {line}");
        }
    }

    #[test]
    fn a_live_net_component_gets_a_user_network_without_forwards() {
        let inv = Invocation {
            image: Path::new("app.elf"),
            accel: ResolvedAccel::Tcg,
            memory: DEFAULT_MEMORY,
            cmdline: None,
            ports: &[],
            disks: &[],
            devices: &[DeviceKind::VirtioNet],
            extra_args: &[],
        };
        let line = render(&command_line(spec(Platform::QemuQ35).unwrap(), &inv));
        assert!(
            line.contains(" -netdev user,id=n0 -device virtio-net-pci,netdev=n0 "),
            "{line}"
        );
    }

    #[test]
    fn every_qemu_platform_has_one_row_for_an_arch_it_supports() {
        for platform in Platform::ALL {
            let rows = PLATFORMS.iter().filter(|s| s.platform == platform).count();
            match platform {
                Platform::Firecracker => assert_eq!(rows, 0),
                _ => {
                    assert_eq!(rows, 1, "{platform}");
                    assert!(
                        platform.supports(spec(platform).unwrap().arch),
                        "{platform}"
                    );
                }
            }
        }
    }

    #[test]
    fn isa_debug_exit_statuses_map_back_to_guest_codes() {
        let exit = ExitConvention::IsaDebugExit;
        assert_eq!(exit.guest_code(0), Some(0));
        assert_eq!(exit.guest_code(1), Some(0));
        assert_eq!(exit.guest_code(7), Some(3));
        assert_eq!(exit.guest_code(255), Some(127));
        assert_eq!(exit.guest_code(2), None);
    }

    #[test]
    fn semihosting_statuses_are_guest_codes() {
        assert_eq!(ExitConvention::Semihosting.guest_code(0), Some(0));
        assert_eq!(ExitConvention::Semihosting.guest_code(42), Some(42));
    }
}
