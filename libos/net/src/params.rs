//! The component's parameters, as the linker's glue object bakes them in
//! (`__uniklink_param_net_<name>`, little-endian `u32` in `.rodata`).
//!
//! Each symbol also has a weak definition here, so an image linked without uniklink's glue
//! (GNU ld, lld, mold) still links and runs, with these profile-independent defaults: large
//! enough for a small server (the httpd example with 100 concurrent connections), small enough
//! for a 64 MiB guest.

use core::arch::global_asm;

macro_rules! params {
    ($($field:ident: $name:ident = $symbol:literal, $default:literal;)*) => {
        global_asm!($(
            concat!(".pushsection .rodata.", $symbol, ",\"a\",%progbits"),
            concat!(".weak ", $symbol),
            concat!(".type ", $symbol, ",%object"),
            concat!(".size ", $symbol, ", 4"),
            ".balign 4",
            concat!($symbol, ":"),
            concat!(".long ", $default),
            ".popsection",
        )*);

        unsafe extern "C" {
            $(
                #[link_name = $symbol]
                static $name: u32;
            )*
        }

        /// The parameter values this image was linked with.
        #[derive(Debug, Clone, Copy)]
        pub(crate) struct Params {
            $(pub $field: usize,)*
        }

        impl Params {
            pub(crate) fn get() -> Params {
                Params {
                    // SAFETY: each symbol is a 4-byte `u32`, defined here or by the glue.
                    $($field: unsafe { $name } as usize,)*
                }
            }
        }
    };
}

params! {
    rx_ring_size: RX_RING_SIZE = "__uniklink_param_net_rx_ring_size", 256;
    tx_ring_size: TX_RING_SIZE = "__uniklink_param_net_tx_ring_size", 256;
    max_sockets: MAX_SOCKETS = "__uniklink_param_net_max_sockets", 160;
    socket_rx_buffer: SOCKET_RX_BUFFER = "__uniklink_param_net_socket_rx_buffer", 16384;
    socket_tx_buffer: SOCKET_TX_BUFFER = "__uniklink_param_net_socket_tx_buffer", 16384;
    tcp_window: TCP_WINDOW = "__uniklink_param_net_tcp_window", 16384;
}
