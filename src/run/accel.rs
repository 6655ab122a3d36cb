//! Choosing between KVM and TCG.
//!
//! The rule for `auto`: KVM only when `/dev/kvm` opens read-write AND the host CPU does not
//! carry the `hypervisor` flag in `/proc/cpuinfo`; TCG otherwise. A host that is itself a
//! virtual machine offers at best nested KVM and, on some machines, a software emulation of
//! KVM that is around fifty times slower than TCG, faults on SSE and aborts with `-cpu host`.
//! Such a KVM opens fine, so opening `/dev/kvm` alone proves nothing; the flag is the cheap,
//! honest signal that we are not on bare metal. Asking for `kvm` explicitly always uses it.

use std::fmt;
use std::fs::OpenOptions;
use std::path::Path;
use std::str::FromStr;

/// The accelerator the caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accel {
    /// KVM on bare metal, TCG everywhere else (see the module documentation).
    #[default]
    Auto,
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Auto => "auto",
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// The accelerator a boot on this host uses.
    pub(crate) fn resolve(self) -> ResolvedAccel {
        match self {
            Accel::Kvm => ResolvedAccel::Kvm,
            Accel::Tcg => ResolvedAccel::Tcg,
            Accel::Auto => {
                let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
                auto_choice(kvm_opens(Path::new("/dev/kvm")), &cpuinfo)
            }
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An accelerator name other than auto, kvm or tcg.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown accelerator `{0}` (expected auto, kvm or tcg)")]
pub struct UnknownAccel(pub String);

impl FromStr for Accel {
    type Err = UnknownAccel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Accel::Auto),
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            other => Err(UnknownAccel(other.to_owned())),
        }
    }
}

/// The accelerator QEMU is actually started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedAccel {
    Kvm,
    Tcg,
}

impl ResolvedAccel {
    pub fn name(self) -> &'static str {
        match self {
            ResolvedAccel::Kvm => "kvm",
            ResolvedAccel::Tcg => "tcg",
        }
    }
}

fn kvm_opens(device: &Path) -> bool {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .is_ok()
}

fn auto_choice(kvm_opens: bool, cpuinfo: &str) -> ResolvedAccel {
    let virtualised = cpuinfo
        .lines()
        .filter(|line| line.starts_with("flags"))
        .any(|line| line.split_whitespace().any(|flag| flag == "hypervisor"));
    if kvm_opens && !virtualised {
        ResolvedAccel::Kvm
    } else {
        ResolvedAccel::Tcg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARE_METAL: &str = "processor\t: 0\nflags\t\t: fpu vme sse sse2 vmx\n";
    const GUEST: &str = "processor\t: 0\nflags\t\t: fpu vme sse sse2 hypervisor\n";

    #[test]
    fn auto_takes_kvm_only_on_bare_metal() {
        assert_eq!(auto_choice(true, BARE_METAL), ResolvedAccel::Kvm);
        assert_eq!(auto_choice(true, GUEST), ResolvedAccel::Tcg);
        assert_eq!(auto_choice(false, BARE_METAL), ResolvedAccel::Tcg);
        assert_eq!(auto_choice(false, GUEST), ResolvedAccel::Tcg);
    }

    #[test]
    fn hypervisor_must_be_a_whole_flag() {
        let lookalike = "flags\t\t: fpu hypervisor_x\n";
        assert_eq!(auto_choice(true, lookalike), ResolvedAccel::Kvm);
    }

    #[test]
    fn explicit_choices_are_kept() {
        assert_eq!(Accel::Kvm.resolve(), ResolvedAccel::Kvm);
        assert_eq!(Accel::Tcg.resolve(), ResolvedAccel::Tcg);
    }

    #[test]
    fn missing_device_does_not_open() {
        assert!(!kvm_opens(Path::new("/nonexistent/kvm")));
    }

    #[test]
    fn names_round_trip() {
        for accel in [Accel::Auto, Accel::Kvm, Accel::Tcg] {
            assert_eq!(accel.name().parse::<Accel>(), Ok(accel));
        }
        assert_eq!("hvf".parse::<Accel>(), Err(UnknownAccel("hvf".into())));
    }
}
