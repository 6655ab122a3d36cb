//! The analyzer's archive reader (the `Inputs::load` path) on arbitrary bytes, then the
//! object parser on every ELF member it lists.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uniklink_analyzer::input::{self, InputId};
use uniklink_analyzer::object::{self, ObjectId};

fuzz_target!(|data: &[u8]| {
    let Ok(members) = input::archive_members_in(data) else {
        return;
    };
    for (i, (name, range)) in members.into_iter().enumerate() {
        let bytes = &data[range];
        if bytes.starts_with(b"\x7fELF") {
            let _ = object::parse(ObjectId(i as u32), InputId(0), name, true, bytes);
        }
    }
});
