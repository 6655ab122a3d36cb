//! UDP sockets.

use alloc::vec;
use core::net::SocketAddrV4;
use core::time::Duration;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::wire::{IpAddress, IpEndpoint};

use crate::Error;
use crate::stack;

/// Datagrams each direction's buffer can hold, whatever their size.
const DATAGRAMS: usize = 16;

/// A UDP socket bound to a local port, like `std::net::UdpSocket`.
#[derive(Debug)]
pub struct UdpSocket {
    handle: SocketHandle,
}

impl UdpSocket {
    /// Binds to `port` on every address, or to a free ephemeral port if `port` is 0 (a
    /// client's socket). Counts against the `max_sockets` parameter; its buffers are the TCP
    /// socket buffer sizes.
    pub fn bind(port: u16) -> Result<UdpSocket, Error> {
        stack::with(|stack| {
            if stack.open >= stack.params.max_sockets {
                return Err(Error::TooManySockets);
            }
            let port = match port {
                0 => stack.ephemeral_port()?,
                port => port,
            };
            let mut socket = udp::Socket::new(
                udp::PacketBuffer::new(
                    vec![udp::PacketMetadata::EMPTY; DATAGRAMS],
                    stack::zeroed(stack.params.socket_rx_buffer.max(1))?,
                ),
                udp::PacketBuffer::new(
                    vec![udp::PacketMetadata::EMPTY; DATAGRAMS],
                    stack::zeroed(stack.params.socket_tx_buffer.max(1))?,
                ),
            );
            socket.bind(port).map_err(|_| Error::AddrInUse)?;
            stack.open += 1;
            Ok(UdpSocket {
                handle: stack.sockets.add(socket),
            })
        })
    }

    /// Sends one datagram to `to`, waiting at most `timeout` for room in the send buffer.
    pub fn send_to(
        &self,
        buf: &[u8],
        to: SocketAddrV4,
        timeout: Option<Duration>,
    ) -> Result<(), Error> {
        stack::wait_for_address()?;
        let endpoint = IpEndpoint::new(IpAddress::Ipv4(*to.ip()), to.port());
        stack::block_on(timeout, |stack| {
            let socket = stack.sockets.get_mut::<udp::Socket>(self.handle);
            match socket.send_slice(buf, endpoint) {
                Ok(()) => Some(Ok(())),
                Err(udp::SendError::BufferFull) if buf.len() <= socket.payload_send_capacity() => {
                    None
                }
                Err(_) => Some(Err(Error::Unreachable)),
            }
        })
    }

    /// Receives one datagram into `buf` (truncated to its length), waiting at most `timeout`.
    /// Returns the datagram's length as received and its sender.
    pub fn recv_from(
        &self,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> Result<(usize, SocketAddrV4), Error> {
        stack::block_on(timeout, |stack| {
            let socket = stack.sockets.get_mut::<udp::Socket>(self.handle);
            let (data, meta) = socket.recv().ok()?;
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            let IpAddress::Ipv4(ip) = meta.endpoint.addr;
            Some(Ok((data.len(), SocketAddrV4::new(ip, meta.endpoint.port))))
        })
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let _ = stack::with(|stack| {
            stack.free(self.handle);
            Ok(())
        });
    }
}
