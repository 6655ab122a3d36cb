//! The component's parameters, as the linker's glue object bakes them in
//! (`__uniklink_param_net_<name>`, little-endian `u32` in `.rodata`).
//!
//! Each symbol also has a weak definition here, so an image linked without uniklink's glue
//! (GNU ld, lld, mold) still links and runs, with these profile-independent defaults: large
//! enough for a small server (the httpd example with 100 concurrent connections), small enough
//! for a 64 MiB guest.

unik_rt::component_params! {
    /// The parameter values this image was linked with.
    pub(crate) struct Params for "net" {
        rx_ring_size: u32 = 256,
        tx_ring_size: u32 = 256,
        max_sockets: u32 = 160,
        socket_rx_buffer: u32 = 16384,
        socket_tx_buffer: u32 = 16384,
        tcp_window: u32 = 16384,
    }
}

unik_rt::component_params! {
    /// The resolver's parameters, apart from the stack's, which bring-up reads: only
    /// `lookup_host` reads these, so no other code path carries their reads.
    pub(crate) struct DnsParams for "net" {
        dns_cache_size: u32 = 16,
        dns_query_timeout: u64 = 1000000000,
    }
}
