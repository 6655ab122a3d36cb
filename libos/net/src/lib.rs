//! The uniklink net component: virtio-net (virtio-mmio on microvm and Firecracker,
//! virtio-pci on q35), the smoltcp TCP/IP stack (IPv4, ARP, TCP, UDP, DHCP), a DNS stub
//! resolver and the small socket API apps see as `unik::net`.
//!
//! The address is static when the `address` parameter (the manifest's
//! `components.params.net.address`) or `uniklink.net.ip=<a.b.c.d>/<prefix>` on the command
//! line gives one, with the `gateway` parameter or `uniklink.net.gateway=<a.b.c.d>` as the
//! default route: no DHCP then. Otherwise a DHCP client starts with the stack, and boot does
//! not wait for it: only a call that needs an address (`TcpStream::connect`,
//! `UdpSocket::send_to`, `lookup_host`, `local_addr`) waits for the lease, at most the
//! `dhcp_wait` parameter; a listener takes connections once the lease has come. Host names
//! resolve through the name servers of `uniklink.net.dns=<a.b.c.d>[:<port>]` on the command
//! line, else the `dns` parameter's, else those of the DHCP lease.
//! Interrupts are off in the library OS, so the stack moves only while something polls it:
//! blocking socket calls poll until they can answer or their timeout passes, and the runtime
//! polls it while the app sleeps or yields (`unik::thread::sleep`, `yield_now`), so a server
//! that waits between calls still answers ARP and completes handshakes. One that computes for
//! long without calling either does not.
//!
//! Ring and buffer sizes are the component's parameters (`component.yaml`), baked into the
//! image by uniklink's glue object per profile and manifest.
#![no_std]

extern crate alloc;

mod device;
mod dns;
mod params;
mod stack;
mod tcp;
mod udp;

use core::fmt;

pub use dns::lookup_host;
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;

/// What went wrong in a socket call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The machine has no virtio-net device.
    NoDevice,
    /// The virtio-net device failed to set up or reported nonsense.
    Device,
    /// The deadline passed before the call could complete (a zero timeout: it would block).
    TimedOut,
    /// The peer reset the connection, or the connection is otherwise gone.
    ConnectionReset,
    /// Every socket the `max_sockets` parameter allows is in use.
    TooManySockets,
    /// The heap has no room for another socket's buffers.
    OutOfMemory,
    /// The port is taken (a listener's port is 0), or no ephemeral port is free.
    AddrInUse,
    /// The destination cannot be reached (no address yet, no route, no name server known) or
    /// the datagram is larger than the socket's buffer.
    Unreachable,
    /// The peer answered the connection attempt with a reset: nothing listens on that port.
    ConnectionRefused,
    /// The name server says the name does not exist or has no IPv4 address.
    NameNotFound,
    /// Not a host name: empty, a label empty or longer than 63 bytes, more than 253 bytes, or
    /// a byte other than ASCII letters, digits, `-` and `_`.
    InvalidName,
    /// No name server could answer: each reported a failure (SERVFAIL, REFUSED, ...) or sent
    /// an answer that does not parse.
    LookupFailed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::NoDevice => "no virtio-net device",
            Error::Device => "virtio-net device error",
            Error::TimedOut => "timed out",
            Error::ConnectionReset => "connection reset",
            Error::TooManySockets => "too many sockets",
            Error::OutOfMemory => "out of memory for socket buffers",
            Error::AddrInUse => "address in use",
            Error::Unreachable => "unreachable",
            Error::ConnectionRefused => "connection refused",
            Error::NameNotFound => "name not found",
            Error::InvalidName => "invalid host name",
            Error::LookupFailed => "name lookup failed",
        })
    }
}

impl core::error::Error for Error {}

/// Brings the network up: finds the card, sets up the stack, and takes the static address
/// or sends the first DHCP request (without waiting for the answer). Runs
/// before the app's `main` when the component is linked in; the first socket call runs it
/// otherwise. Safe to call more than once.
#[unsafe(no_mangle)]
pub extern "C" fn unik_net_init() {
    stack::init();
}

// The conventional registration: GNU ld, lld and mold keep every `.init_array` entry, and the
// runtime's default start routine walks them. uniklink's weaving drops this entry and calls
// the init from its glue only when the app reaches the socket API.
#[used]
#[unsafe(link_section = ".init_array")]
static REGISTER: extern "C" fn() = unik_net_init;

/// The IPv4 address the stack has, waiting for the DHCP lease (at most the `dhcp_wait`
/// parameter) when there is no static address.
pub fn local_addr() -> Result<core::net::Ipv4Addr, Error> {
    stack::wait_for_address()?;
    stack::with(|stack| stack.address().ok_or(Error::Unreachable))
}
