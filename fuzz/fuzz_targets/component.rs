//! A library-OS component's `component.yaml`, parsed and validated.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = uniklink_config::parse_component(Path::new("/fuzz/component.yaml"), text);
    }
});
