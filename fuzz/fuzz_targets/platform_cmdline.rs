//! The kernel command line: boot flags, the TSC rate, the app's arguments and environment as
//! percent-encoded words; decoding what the runner encoded gives the value back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use unik_platform::cmdline::{self, BootFlags};

fn decoded(word: &[u8]) -> Option<Vec<u8>> {
    cmdline::decode(word).collect::<Result<Vec<u8>, _>>().ok()
}

fuzz_target!(|line: &[u8]| {
    std::hint::black_box(BootFlags::parse(line));
    if let Some(hz) = cmdline::tsc_hz(line) {
        assert!(hz > 0);
    }
    for word in cmdline::args(line) {
        if let Some(value) = decoded(word) {
            let encoded: Vec<u8> = cmdline::encode(&value).collect();
            assert_eq!(decoded(&encoded).as_deref(), Some(&value[..]));
        }
    }
    for (name, value) in cmdline::env(line) {
        std::hint::black_box(cmdline::is_env_name(name));
        let _ = decoded(value);
    }
    // The input as a value: its word has no space and decodes to it.
    let word: Vec<u8> = cmdline::arg_word(line).collect();
    assert!(!word.iter().any(u8::is_ascii_whitespace));
    let args: Vec<&[u8]> = cmdline::args(&word).collect();
    assert_eq!(args.len(), 1);
    assert_eq!(decoded(args[0]).as_deref(), Some(line));
});
