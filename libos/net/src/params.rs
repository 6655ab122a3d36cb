//! The component's parameters, as the linker's glue object bakes them in
//! (`__uniklink_param_net_<name>`, little-endian in `.rodata`). Addresses are stored as
//! uniklink's `ipv4` and `ipv4-cidr` parameter kinds say: 0 for none, else the address's bits
//! (shifted left by 8 above the prefix length for `ipv4-cidr`).
//!
//! Each symbol also has a weak definition here, so an image linked without uniklink's glue
//! (GNU ld, lld, mold) still links and runs, with these profile-independent defaults: large
//! enough for a small server (the httpd example with 100 concurrent connections), small enough
//! for a 64 MiB guest.

use core::net::Ipv4Addr;

use smoltcp::wire::Ipv4Cidr;

unik_rt::component_params! {
    /// The parameter values this image was linked with.
    pub(crate) struct Params for "net" {
        rx_ring_size: u32 = 256,
        tx_ring_size: u32 = 256,
        max_sockets: u32 = 160,
        syn_backlog: u32 = 256,
        socket_rx_buffer: u32 = 16384,
        socket_tx_buffer: u32 = 16384,
        tcp_window: u32 = 16384,
        address: u64 = 0,
        gateway: u32 = 0,
        dhcp_wait: u64 = 3000000000,
    }
}

impl Params {
    /// The `address` parameter: none (0), or the address above a prefix length.
    pub(crate) fn static_address(&self) -> Option<Ipv4Cidr> {
        let prefix = (self.address & 0xff) as u8;
        let address = Ipv4Addr::from_bits((self.address >> 8) as u32);
        (!address.is_unspecified() && prefix <= 32).then(|| Ipv4Cidr::new(address, prefix))
    }

    pub(crate) fn gateway(&self) -> Option<Ipv4Addr> {
        address(self.gateway)
    }
}

/// An `ipv4` parameter: none (0), or the address.
fn address(bits: usize) -> Option<Ipv4Addr> {
    let address = Ipv4Addr::from_bits(bits as u32);
    (!address.is_unspecified()).then_some(address)
}

unik_rt::component_params! {
    /// The resolver's parameters, apart from the stack's, which bring-up reads: only
    /// `lookup_host` reads these, so no other code path carries their reads.
    pub(crate) struct DnsParams for "net" {
        dns_cache_size: u32 = 16,
        dns_query_timeout: u64 = 1000000000,
        dns: u32 = 0,
    }
}

impl DnsParams {
    pub(crate) fn server(&self) -> Option<Ipv4Addr> {
        address(self.dns)
    }
}
