//! The Arm PL031 real-time clock of QEMU's virt machine, found in the device tree. Its data
//! register (offset 0) counts seconds since the UNIX epoch; QEMU starts it at the host's UTC
//! time.

/// Seconds since the UNIX epoch, or `None` if the device tree names no PL031.
pub(crate) fn unix_seconds() -> Option<u64> {
    let (base, _) = unik_rt::devicetree::window("arm,pl031")?;
    // SAFETY: the device tree describes the PL031's register window, which boot maps as device
    // memory; reading the data register has no side effect.
    let seconds = unsafe { core::ptr::read_volatile(base as *const u32) };
    Some(u64::from(seconds))
}
