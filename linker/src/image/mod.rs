//! What kind of image a link produces. A kind is data the pipeline consults at four points:
//! the base address, the objects it generates before resolution (notes), whether layout
//! reserves the image's page tables (filled by [`virt::write_page_tables`]), and the checks
//! the finished layout must pass. Layout, relocation and the ELF writer know the tables only
//! as a synthetic chunk.

mod notes;
pub mod pvh;
pub mod virt;

use object::elf;

use crate::layout::Layout;

/// The image a link produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageKind {
    /// A static ELF executable, laid out like GNU ld lays out `-static` programs.
    #[default]
    Elf,
    /// An x86_64 ELF that a PVH loader (QEMU `-kernel`, Firecracker) boots through its
    /// `XEN_ELFNOTE_PHYS32_ENTRY` note, identity-mapped at 1 MiB.
    Pvh,
    /// An aarch64 ELF for QEMU's `virt` machine, loaded at its link address 2 MiB into RAM,
    /// above the device tree QEMU puts at the bottom of RAM.
    Virt,
}

/// A 20-byte `NT_GNU_BUILD_ID`, the length GNU ld's default (SHA-1) gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BuildId(pub [u8; 20]);

impl BuildId {
    /// Hashes `parts` in order, each length-prefixed so that moving bytes from one part to
    /// the next changes the id.
    pub fn of<'p>(parts: impl IntoIterator<Item = &'p [u8]>) -> BuildId {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        let digest = hasher.finalize();
        let mut id = [0; 20];
        id.copy_from_slice(&digest[..20]);
        BuildId(id)
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Why an image of some kind cannot be made from a link.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{kind:?} images are for {expected}; the inputs are for e_machine {machine}")]
    Machine {
        kind: ImageKind,
        expected: &'static str,
        machine: u16,
    },
    #[error(
        "entry `{entry}` at {addr:#x} is not in an executable segment, so the loader would jump into data"
    )]
    EntryNotExecutable { entry: String, addr: u64 },
    #[error(
        "the image ends at {end:#x}, above 4 GiB; the PVH entry runs 32-bit code with paging off and reaches only the first 4 GiB"
    )]
    AboveFourGiB { end: u64 },
    #[error(
        "the image starts at {start:#x}, below {:#x}: QEMU virt puts the device tree at the bottom of RAM, and the image must leave it room",
        virt::LOAD_ADDRESS
    )]
    OverlapsDeviceTree { start: u64 },
    #[error(
        "the image ends at {end:#x}, past {limit:#x}: its page tables map it only in the first GiB of RAM"
    )]
    BeyondMappedRam { end: u64, limit: u64 },
    #[error("cannot generate the {what} object: {source}")]
    Generate {
        what: &'static str,
        #[source]
        source: object::write::Error,
    },
}

impl ImageKind {
    /// The image's first address, when the kind fixes one.
    pub fn base(self) -> Option<u64> {
        match self {
            ImageKind::Elf => None,
            ImageKind::Pvh => Some(pvh::LOAD_ADDRESS),
            ImageKind::Virt => Some(virt::LOAD_ADDRESS),
        }
    }

    /// Whether the linker writes the image's page tables (see [`virt`]) when its runtime
    /// asks for them.
    pub fn page_tables(self) -> bool {
        self == ImageKind::Virt
    }

    /// Objects to link beside the inputs: for PVH, the entry note and the build id; for virt,
    /// the build id.
    pub fn generated_objects(
        self,
        machine: u16,
        entry: &str,
        build_id: &BuildId,
    ) -> Result<Vec<uniklink_analyzer::input::GeneratedObject>, ImageError> {
        match self {
            ImageKind::Elf => Ok(Vec::new()),
            ImageKind::Pvh => {
                if machine != elf::EM_X86_64 {
                    return Err(ImageError::Machine {
                        kind: self,
                        expected: "x86_64",
                        machine,
                    });
                }
                Ok(vec![pvh::notes_object(entry, build_id)?])
            }
            ImageKind::Virt => {
                if machine != elf::EM_AARCH64 {
                    return Err(ImageError::Machine {
                        kind: self,
                        expected: "aarch64",
                        machine,
                    });
                }
                Ok(vec![virt::notes_object(build_id)?])
            }
        }
    }

    /// Checks the finished layout against what the kind's loader needs.
    pub fn check(self, layout: &Layout<'_>, entry: &str) -> Result<(), ImageError> {
        match self {
            ImageKind::Elf => Ok(()),
            ImageKind::Pvh => pvh::check(layout, entry),
            ImageKind::Virt => virt::check(layout, entry),
        }
    }
}

/// PVH and virt loaders jump to the entry before anything could catch a fault, so it must
/// lie in an executable segment.
fn entry_is_code(layout: &Layout<'_>, entry: &str) -> Result<(), ImageError> {
    let executable = layout.segments.iter().any(|s| {
        s.flags & elf::PF_X != 0 && s.addr <= layout.entry && layout.entry < s.addr + s.mem_size
    });
    if executable {
        Ok(())
    } else {
        Err(ImageError::EntryNotExecutable {
            entry: entry.to_owned(),
            addr: layout.entry,
        })
    }
}
