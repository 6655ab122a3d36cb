//! The PVH boot data the guest reads from the hypervisor: `hvm_start_info`, its memory map and
//! module list, and the heap spans and RAM size computed from the map. The input is the start
//! info followed by the tables; their addresses are taken as offsets into the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unik_platform::memory::{MAX_HOLES, Span, guest_ram, heap_spans};
use unik_platform::pvh::{self, StartInfo};

fuzz_target!(|data: &[u8]| {
    // The tables on their own, whatever the start info says.
    let regions: Vec<_> = pvh::memory_regions(data).collect();
    std::hint::black_box(pvh::modules(data).count());
    let Ok(info) = StartInfo::parse(data) else {
        return;
    };
    let table = |addr: u64, len: usize| {
        let start = usize::try_from(addr).ok()?;
        data.get(start..start.checked_add(len)?)
    };
    let map: Vec<_> = table(info.memmap_paddr, info.memmap_len())
        .map(|t| pvh::memory_regions(t).collect())
        .unwrap_or(regions);
    let modules: Vec<Span> = table(info.modlist_paddr, info.modlist_len())
        .map(|t| {
            pvh::modules(t)
                .map(|m| Span::new(m.paddr, m.paddr.saturating_add(m.size)))
                .take(MAX_HOLES)
                .collect()
        })
        .unwrap_or_default();
    std::hint::black_box(guest_ram(map.iter().copied()));
    for limit in [1 << 30, 4 << 30, u64::MAX] {
        let _ = heap_spans::<32>(map.iter().copied(), &modules, limit, 1 << 20);
    }
});
