//! The uniklink rng component: random bytes (`unik::random::fill`), and the custom backend of
//! the `getrandom` crate, so that `rand`, `uuid` and hash-map seeds work unchanged.
//!
//! The source is chosen once, by the init (or the first call if no init ran): the CPU's own
//! generator where CPUID or ID_AA64ISAR0_EL1 announces one (RDRAND, else RDSEED, on x86_64;
//! RNDR on aarch64) and it passes a self-test, else the first virtio-rng device. A machine
//! with neither gets one console line at the first call, and every call fails with
//! [`Error::NoSource`]: the bytes are never filled with something predictable.
#![no_std]

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
use aarch64 as cpu;
#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
use x86_64 as cpu;

use core::fmt;

use spinning_top::Spinlock;
use unik_virtio::{DeviceType, IdentityHal, SomeTransport};
use virtio_drivers::device::rng::VirtIORng;

/// Why no random bytes came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The machine has no entropy source: no RDRAND, RDSEED or RNDR, and no virtio-rng device.
    NoSource,
    /// The source failed: the CPU kept answering that it had no entropy, or the device
    /// reported an error.
    Failed,
}

impl Error {
    /// The code within getrandom's custom range that stands for this error.
    fn code(self) -> u16 {
        match self {
            Error::NoSource => 1,
            Error::Failed => 2,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::NoSource => "no entropy source (no RDRAND, RDSEED or RNDR, no virtio-rng)",
            Error::Failed => "the entropy source failed",
        })
    }
}

impl core::error::Error for Error {}

unik_rt::component_params! {
    struct Params for "rng" {
        retries: u32 = 10,
    }
}

// One instance, in a static: boxing the device would only add an allocation.
#[expect(clippy::large_enum_variant)]
enum Source {
    Cpu(cpu::Generator),
    Device(VirtIORng<IdentityHal, SomeTransport<'static>>),
    /// Nothing; `warned` once the console has said so.
    Missing {
        warned: bool,
    },
}

static SOURCE: Spinlock<Option<Source>> = Spinlock::new(None);

fn find_source() -> Source {
    let retries = Params::get().retries;
    if let Some(generator) = cpu::Generator::find(retries) {
        return Source::Cpu(generator);
    }
    // SAFETY: the device tree's virtio-mmio windows and the command line's virtio_mmio entries
    // come from the machine, the PC's PCI configuration ports belong to its host bridge, and
    // this runs once, so no device gets a second transport.
    let mut transports = unsafe {
        unik_virtio::devices(
            DeviceType::EntropySource,
            unik_rt::devicetree::virtio_mmio(),
            unik_rt::cmdline::command_line(),
        )
    };
    transports
        .find_map(|transport| VirtIORng::new(transport).ok())
        .map_or(Source::Missing { warned: false }, Source::Device)
}

/// Fills `dest` with random bytes.
pub fn fill(dest: &mut [u8]) -> Result<(), Error> {
    let mut source = SOURCE.lock();
    match source.get_or_insert_with(find_source) {
        Source::Cpu(generator) => {
            let retries = Params::get().retries;
            for chunk in dest.chunks_mut(8) {
                let word = generator.word(retries).ok_or(Error::Failed)?;
                chunk.copy_from_slice(&word.to_ne_bytes()[..chunk.len()]);
            }
            Ok(())
        }
        Source::Device(device) => fill_from_device(device, dest),
        Source::Missing { warned } => {
            if !*warned {
                *warned = true;
                unik_rt::println!(
                    "uniklink:warning rng: no entropy source (no RDRAND, RDSEED or RNDR, no virtio-rng); random bytes fail"
                );
            }
            Err(Error::NoSource)
        }
    }
}

fn fill_from_device(
    device: &mut VirtIORng<IdentityHal, SomeTransport<'static>>,
    mut dest: &mut [u8],
) -> Result<(), Error> {
    let mut empty_answers = 0;
    while !dest.is_empty() {
        let got = device
            .request_entropy(dest)
            .map_err(|_| Error::Failed)?
            .min(dest.len());
        // A device that keeps answering with nothing is as broken as a CPU that does.
        if got == 0 {
            empty_answers += 1;
            if empty_answers > Params::get().retries {
                return Err(Error::Failed);
            }
        }
        dest = &mut dest[got..];
    }
    Ok(())
}

/// Finds the entropy source before the app's `main`, when the component is live.
#[unsafe(no_mangle)]
pub extern "C" fn unik_rng_init() {
    SOURCE.lock().get_or_insert_with(find_source);
}

// The conventional registration, which GNU ld, lld and mold keep; uniklink's weaving calls
// the init from its glue only when the component is live.
#[used]
#[unsafe(link_section = ".init_array")]
static REGISTER: extern "C" fn() = unik_rng_init;

/// getrandom 0.3's custom backend (`--cfg getrandom_backend="custom"`). getrandom 0.4 calls
/// the same symbol with an error type of the same layout.
///
/// # Safety
///
/// `dest` must be valid for writing `len` bytes, as getrandom guarantees.
#[unsafe(no_mangle)]
unsafe extern "Rust" fn __getrandom_v03_custom(
    dest: *mut u8,
    len: usize,
) -> Result<(), getrandom::Error> {
    // getrandom may hand over memory it never initialised; zeroed, it is a valid `[u8]`.
    // SAFETY: the caller's promise.
    let dest = unsafe {
        dest.write_bytes(0, len);
        core::slice::from_raw_parts_mut(dest, len)
    };
    fill(dest).map_err(|error| getrandom::Error::new_custom(error.code()))
}

fn getrandom_02(dest: &mut [u8]) -> Result<(), getrandom02::Error> {
    fill(dest).map_err(|error| {
        let code = getrandom02::Error::CUSTOM_START + u32::from(error.code());
        core::num::NonZeroU32::new(code).map_or(getrandom02::Error::UNEXPECTED, Into::into)
    })
}

getrandom02::register_custom_getrandom!(getrandom_02);
