//! httpd's request parser (`fixtures/apps/httpd/src/http.rs`, plain `alloc` code, included
//! as `tests/net.rs` includes it), fed as a connection is: the whole buffer, then what stays
//! after each complete request.
#![no_main]

extern crate alloc;

#[path = "../../fixtures/apps/httpd/src/http.rs"]
#[allow(dead_code)]
mod http;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buffer = data;
    // At most as many requests as bytes: each takes at least one.
    for _ in 0..=data.len() {
        match http::parse(buffer) {
            http::Parsed::Incomplete => break,
            http::Parsed::Invalid(response) => {
                std::hint::black_box(response.head(false));
                break;
            }
            http::Parsed::Complete(request, used) => {
                assert!(used > 0 && used <= buffer.len(), "used {used} of {}", buffer.len());
                let response = http::Response::html("ok").for_method(request.method);
                std::hint::black_box(response.head(request.keep_alive));
                buffer = &buffer[used..];
            }
        }
    }
});
