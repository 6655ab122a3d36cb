//! Architectures and the virtual machines an image can boot on.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A CPU architecture uniklink links for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Arch {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "aarch64")]
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The Rust target the application and library OS are compiled for.
    pub fn target_triple(&self) -> &str {
        match self {
            Arch::X86_64 => "x86_64-unknown-none",
            Arch::Aarch64 => "aarch64-unknown-none",
        }
    }

    /// The symbol the library OS's boot code starts at on this architecture: the entry of a
    /// cargo app's image unless the manifest names another.
    pub fn libos_entry(self) -> &'static str {
        match self {
            Arch::X86_64 => "_pvh_start",
            Arch::Aarch64 => "_virt_start",
        }
    }

    /// The platform used when a manifest names this architecture but no platform.
    pub fn default_platform(self) -> Platform {
        match self {
            Arch::X86_64 => Platform::QemuMicrovm,
            Arch::Aarch64 => Platform::QemuVirt,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A virtual machine (and with it a boot protocol) the image is built for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Platform {
    /// QEMU `-M microvm`, booted through the PVH entry note (x86_64 only).
    QemuMicrovm,
    /// QEMU `-M q35`, booted through the PVH entry note (x86_64 only).
    QemuQ35,
    /// Firecracker; PVH on x86_64, the arm64 kernel image protocol on aarch64.
    Firecracker,
    /// QEMU `-M virt` (aarch64 only).
    QemuVirt,
}

impl Platform {
    pub const ALL: [Platform; 4] = [
        Platform::QemuMicrovm,
        Platform::QemuQ35,
        Platform::Firecracker,
        Platform::QemuVirt,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Platform::QemuMicrovm => "qemu-microvm",
            Platform::QemuQ35 => "qemu-q35",
            Platform::Firecracker => "firecracker",
            Platform::QemuVirt => "qemu-virt",
        }
    }

    pub fn supports(self, arch: Arch) -> bool {
        self.arches().contains(&arch)
    }

    pub fn arches(self) -> &'static [Arch] {
        match self {
            Platform::QemuMicrovm | Platform::QemuQ35 => &[Arch::X86_64],
            Platform::Firecracker => &[Arch::X86_64, Arch::Aarch64],
            Platform::QemuVirt => &[Arch::Aarch64],
        }
    }

    /// The MMIO address of the platform's boot timer on `arch`, where the guest writes one
    /// byte (123) when its `main` starts: Firecracker's `--boot-timer` device, which logs the
    /// guest's boot time then. QEMU has no such device.
    pub fn boot_timer(self, arch: Arch) -> Option<u64> {
        match (self, arch) {
            (Platform::Firecracker, Arch::X86_64) => Some(0xc000_0000),
            (Platform::Firecracker, Arch::Aarch64) => Some(0x4000_0000),
            _ => None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One image to build: an architecture and the platform it boots on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Target {
    pub arch: Arch,
    pub platform: Platform,
}
