//! Manifest parsing and validation (`uniklink.yaml`) against the built-in component
//! registry, then resolution of a valid manifest into the configuration the link uses.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use uniklink_config::{ComponentRegistry, Manifest};

fuzz_target!(|data: &[u8]| {
    static REGISTRY: OnceLock<ComponentRegistry> = OnceLock::new();
    let registry = REGISTRY.get_or_init(ComponentRegistry::builtin);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(manifest) = Manifest::from_text(Path::new("/fuzz/uniklink.yaml"), text, registry) {
        std::hint::black_box(manifest.resolve());
    }
});
