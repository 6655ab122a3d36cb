//! TCP: a listener that keeps a backlog of listening sockets, outgoing connections, and
//! connected streams.

use alloc::vec::Vec;
use core::net::SocketAddrV4;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::IpAddress;

use crate::Error;
use crate::stack::{self, Listener};

/// Whether a listener was bound yet: the first is the boot timeline's `listening` milestone.
static LISTENING: AtomicBool = AtomicBool::new(false);

/// A TCP server socket, like `std::net::TcpListener`.
#[derive(Debug)]
pub struct TcpListener {
    id: usize,
    port: u16,
}

impl TcpListener {
    /// Listens on `port` on every address, keeping `backlog` sockets listening: each takes
    /// one SYN, and is replaced at once, so attempts beyond `backlog` that arrive together all
    /// find one while `max_sockets` allows. Beyond that, attempts wait in the stack's SYN
    /// queue (the `syn_backlog` parameter) until a socket is freed, and are answered in
    /// order; only when that queue is full is a SYN dropped (the peer sends it again), never
    /// reset. Every socket, listening or not, counts against the `max_sockets` parameter.
    pub fn bind(port: u16, backlog: usize) -> Result<TcpListener, Error> {
        if port == 0 {
            return Err(Error::AddrInUse);
        }
        let listener = stack::with(|stack| {
            if stack.listeners.iter().flatten().any(|l| l.port == port) {
                return Err(Error::AddrInUse);
            }
            let listener = Listener {
                port,
                backlog: backlog.max(1),
                waiting: Vec::new(),
                listening: 0,
                ready: Vec::new(),
            };
            let id = match stack.listeners.iter().position(Option::is_none) {
                Some(free) => {
                    stack.listeners[free] = Some(listener);
                    free
                }
                None => {
                    stack.listeners.push(Some(listener));
                    stack.listeners.len() - 1
                }
            };
            // Starts filling the backlog; the rest follows as the stack is polled.
            stack.poll();
            let listening = stack.listeners[id].as_ref().map_or(0, |l| l.waiting.len());
            if listening == 0 {
                stack.listeners[id] = None;
                return Err(Error::TooManySockets);
            }
            Ok(TcpListener { id, port })
        })?;
        if !LISTENING.swap(true, Ordering::Relaxed) {
            unik_rt::timeline::milestone("listening");
        }
        Ok(listener)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The next connection, waiting at most `timeout` (`None`: no limit; zero: only one that
    /// is already there).
    pub fn accept(&self, timeout: Option<Duration>) -> Result<TcpStream, Error> {
        stack::block_on(timeout, |stack| {
            let listener = stack.listeners.get_mut(self.id)?.as_mut()?;
            // First come, first served.
            let handle = (!listener.ready.is_empty()).then(|| listener.ready.remove(0))?;
            Some(Ok(TcpStream { handle }))
        })
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let _ = stack::with(|stack| {
            if let Some(listener) = stack.listeners.get_mut(self.id).and_then(Option::take) {
                for handle in listener.waiting.into_iter().chain(listener.ready) {
                    stack.sockets.get_mut::<tcp::Socket>(handle).abort();
                    stack.free(handle);
                }
            }
            Ok(())
        });
    }
}

/// A TCP connection, like `std::net::TcpStream`. Dropping it closes it gracefully.
#[derive(Debug)]
pub struct TcpStream {
    handle: SocketHandle,
}

impl TcpStream {
    /// Connects to `addr` from a free ephemeral port, waiting at most `timeout` for the
    /// handshake (`None`: no limit, though a peer that never answers then holds the call
    /// forever). `ConnectionRefused` when the peer resets the attempt, `TimedOut` when it does
    /// not answer in time, `Unreachable` when nothing could be sent (no address, no route).
    /// Counts against the `max_sockets` parameter.
    pub fn connect(addr: SocketAddrV4, timeout: Option<Duration>) -> Result<TcpStream, Error> {
        stack::wait_for_address()?;
        let stream = TcpStream {
            handle: stack::with(|stack| stack.connect(addr))?,
        };
        let connected = stack::block_on(timeout, |stack| {
            match stack.sockets.get::<tcp::Socket>(stream.handle).state() {
                tcp::State::SynSent | tcp::State::SynReceived => None,
                // Out of SYN-SENT, only a reset closes the socket.
                tcp::State::Closed => Some(Err(Error::ConnectionRefused)),
                // Established, or already closing: the peer may have sent all it had.
                _ => Some(Ok(())),
            }
        });
        match connected {
            Ok(()) => Ok(stream),
            Err(error) => {
                // A reset tells a peer that answers late to forget the attempt.
                stream.abort();
                Err(error)
            }
        }
    }

    /// Reads what has arrived into `buf`, waiting at most `timeout` for at least one byte.
    /// `Ok(0)` means the peer has closed its side and everything it sent was read.
    pub fn read(&mut self, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        stack::block_on(timeout, |stack| {
            let socket = stack.sockets.get_mut::<tcp::Socket>(self.handle);
            match socket.recv_slice(buf) {
                Ok(0) => None,
                Ok(n) => Some(Ok(n)),
                Err(tcp::RecvError::Finished) => Some(Ok(0)),
                Err(tcp::RecvError::InvalidState) => Some(Err(Error::ConnectionReset)),
            }
        })
    }

    /// Queues as much of `buf` as fits in the send buffer, waiting at most `timeout` for room
    /// for at least one byte.
    pub fn write(&mut self, buf: &[u8], timeout: Option<Duration>) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        stack::block_on(timeout, |stack| {
            let socket = stack.sockets.get_mut::<tcp::Socket>(self.handle);
            if !socket.may_send() {
                return Some(Err(Error::ConnectionReset));
            }
            match socket.send_slice(buf) {
                Ok(0) => None,
                Ok(n) => Some(Ok(n)),
                Err(tcp::SendError::InvalidState) => Some(Err(Error::ConnectionReset)),
            }
        })
    }

    /// Queues all of `buf`; `timeout` bounds the whole call.
    pub fn write_all(&mut self, mut buf: &[u8], timeout: Option<Duration>) -> Result<(), Error> {
        let deadline = timeout.map(|t| unik_rt::time::now() + t);
        while !buf.is_empty() {
            let left = deadline.map(|d| d.duration_since(unik_rt::time::now()));
            let n = self.write(buf, left)?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Waits until everything written has been acknowledged by the peer.
    pub fn flush(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        stack::block_on(timeout, |stack| {
            let socket = stack.sockets.get::<tcp::Socket>(self.handle);
            if socket.send_queue() == 0 {
                Some(Ok(()))
            } else if !socket.is_active() {
                Some(Err(Error::ConnectionReset))
            } else {
                None
            }
        })
    }

    /// The peer's address and port.
    pub fn peer_addr(&self) -> Result<SocketAddrV4, Error> {
        stack::with(|stack| {
            let endpoint = stack
                .sockets
                .get::<tcp::Socket>(self.handle)
                .remote_endpoint()
                .ok_or(Error::ConnectionReset)?;
            let IpAddress::Ipv4(ip) = endpoint.addr;
            Ok(SocketAddrV4::new(ip, endpoint.port))
        })
    }

    /// Resets the connection instead of closing it gracefully.
    pub fn abort(self) {
        let _ = stack::with(|stack| {
            stack.sockets.get_mut::<tcp::Socket>(self.handle).abort();
            Ok(())
        });
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let _ = stack::with(|stack| {
            stack.release(self.handle);
            Ok(())
        });
    }
}
