//! virtio-net as a smoltcp `Device`.
//!
//! The virtqueues have a fixed size (`QUEUE_SIZE`, what QEMU's virtio-net offers); the
//! `rx_ring_size` and `tx_ring_size` parameters bound how many receive buffers are posted and
//! how many transmissions may be in flight, which is what costs memory. Set-up posts the first
//! few receive buffers, and each poll of the stack a few more until the ring is full, so a
//! deep ring does not hold up boot. Transmission does not wait for the device: a sent buffer
//! is reclaimed the next time a transmit token is asked for.
//!
//! The card also keeps the stack's SYN queue: a connection attempt (a SYN) to a port whose
//! listener has no socket in LISTEN, because every socket `max_sockets` allows is taken, is
//! held here instead of reaching smoltcp, which would reset it. Held attempts are handed to
//! the stack again, oldest first, once the stack says a listener has a socket again; beyond
//! `syn_backlog` held attempts a SYN is dropped, and the peer sends it again later.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use unik_virtio::{IdentityHal, SomeTransport};
use virtio_drivers::device::net::VirtIONetRaw;

use crate::Error;

/// Descriptors per virtqueue; the rings' own memory is small next to the buffers.
const QUEUE_SIZE: usize = 256;
/// An Ethernet frame without FCS (1514 bytes) plus the largest virtio-net header (12 bytes),
/// rounded up.
const BUFFER_LEN: usize = 2048;
/// Ethernet payload 1500 plus the 14-byte header.
const MTU: usize = 1514;
/// Receive buffers posted when the card is set up; the rest of `rx_ring_size` follows
/// [`RX_FILL_BATCH`] at a time as the stack polls. Each post notifies the device (an exit to
/// the hypervisor), so a deep ring posted whole would hold up boot by hundreds of exits.
const RX_INITIAL: usize = 32;
const RX_FILL_BATCH: usize = 16;

type Raw = VirtIONetRaw<IdentityHal, SomeTransport<'static>, QUEUE_SIZE>;

struct Queues {
    raw: Raw,
    /// Posted receive buffers, by descriptor token.
    rx: Vec<Option<Box<[u8]>>>,
    /// Buffers the device is sending, by descriptor token, with the length handed over.
    tx: Vec<Option<(Box<[u8]>, usize)>>,
    tx_in_flight: usize,
    tx_limit: usize,
    tx_spare: Vec<Box<[u8]>>,
    /// Receive buffers of the ring's size not allocated and posted yet.
    rx_unposted: usize,
}

impl Queues {
    /// Posts up to `count` of the receive buffers not posted yet.
    fn fill_rx(&mut self, count: usize) -> Result<(), Error> {
        for _ in 0..count.min(self.rx_unposted) {
            self.post_rx(vec![0; BUFFER_LEN].into_boxed_slice())?;
            self.rx_unposted -= 1;
        }
        Ok(())
    }

    fn post_rx(&mut self, mut buffer: Box<[u8]>) -> Result<(), Error> {
        // SAFETY: the buffer is kept in `rx` untouched until the device hands it back.
        let token = unsafe { self.raw.receive_begin(&mut buffer) }.map_err(|_| Error::Device)?;
        let slot = self.rx.get_mut(usize::from(token)).ok_or(Error::Device)?;
        *slot = Some(buffer);
        Ok(())
    }

    fn reclaim_tx(&mut self) {
        while let Some(token) = self.raw.poll_transmit() {
            let Some((buffer, len)) = self.tx.get_mut(usize::from(token)).and_then(Option::take)
            else {
                return;
            };
            // SAFETY: `buffer[..len]` is exactly what `transmit_begin` got for this token.
            if unsafe { self.raw.transmit_complete(token, &buffer[..len]) }.is_ok() {
                self.tx_in_flight -= 1;
                self.tx_spare.push(buffer);
            }
        }
    }
}

/// The network card.
pub(crate) struct Nic {
    queues: RefCell<Queues>,
    mac: [u8; 6],
    /// Ports whose listeners have no socket in LISTEN: SYNs to them are held.
    pub hold_ports: Vec<u16>,
    /// Held SYN frames (Ethernet, without the virtio header), oldest first.
    held: VecDeque<Vec<u8>>,
    /// How many held frames may be held at once.
    held_limit: usize,
    /// Held frames still to be offered again before new ones are read from the ring.
    replay: usize,
}

impl Nic {
    pub(crate) fn new(
        transport: SomeTransport<'static>,
        rx_ring: usize,
        tx_ring: usize,
        syn_backlog: usize,
    ) -> Result<Nic, Error> {
        let raw = Raw::new(transport).map_err(|_| Error::Device)?;
        let mac = raw.mac_address();
        let mut queues = Queues {
            raw,
            rx: (0..QUEUE_SIZE).map(|_| None).collect(),
            tx: (0..QUEUE_SIZE).map(|_| None).collect(),
            tx_in_flight: 0,
            tx_limit: tx_ring.clamp(1, QUEUE_SIZE),
            tx_spare: Vec::new(),
            rx_unposted: rx_ring.clamp(1, QUEUE_SIZE),
        };
        queues.fill_rx(RX_INITIAL)?;
        Ok(Nic {
            queues: RefCell::new(queues),
            mac,
            hold_ports: Vec::new(),
            held: VecDeque::new(),
            held_limit: syn_backlog,
            replay: 0,
        })
    }

    /// Sets the ports whose SYNs are held; when a port leaves the set, the held frames are
    /// offered to the stack again.
    pub(crate) fn set_hold_ports(&mut self, ports: impl Iterator<Item = u16> + Clone) {
        let released = self
            .hold_ports
            .iter()
            .any(|&held| !ports.clone().any(|port| port == held));
        self.hold_ports.clear();
        self.hold_ports.extend(ports);
        if released {
            self.replay = self.held.len();
        }
    }

    pub(crate) fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The listening port a frame's SYN is for, if it is a SYN (not SYN-ACK) in IPv4 to a
    /// port that is being held.
    fn held_port(&self, frame: &[u8]) -> Option<u16> {
        if self.hold_ports.is_empty() {
            return None;
        }
        let (port, _) = syn(frame)?;
        self.hold_ports.contains(&port).then_some(port)
    }
}

/// For a TCP SYN without ACK in IPv4 over Ethernet: its destination port and the peer (source
/// address, source port and destination port).
fn syn(frame: &[u8]) -> Option<(u16, [u8; 8])> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(14..)?;
    let header = usize::from(ip.first()? & 0x0f) * 4;
    if ip.first()? >> 4 != 4 || *ip.get(9)? != 6 || header < 20 {
        return None;
    }
    let tcp = ip.get(header..header + 14)?;
    // SYN set; ACK, RST and FIN clear.
    if tcp[13] & 0x17 != 0x02 {
        return None;
    }
    let port = u16::from_be_bytes([tcp[2], tcp[3]]);
    let mut peer = [0; 8];
    peer[..4].copy_from_slice(ip.get(12..16)?);
    peer[4..].copy_from_slice(&tcp[..4]);
    Some((port, peer))
}

pub(crate) struct RxToken<'a> {
    queues: &'a RefCell<Queues>,
    frame: Frame,
}

enum Frame {
    /// A receive buffer, posted again once read.
    Ring(Box<[u8]>, core::ops::Range<usize>),
    /// A held SYN.
    Held(Vec<u8>),
}

pub(crate) struct TxToken<'a> {
    queues: &'a RefCell<Queues>,
}

impl phy::Device for Nic {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        // A failed post only leaves the ring shallower; the stack carries on.
        let _ = self.queues.borrow_mut().fill_rx(RX_FILL_BATCH);
        // Held SYNs first, oldest first, those whose port is still held going back in line.
        while self.replay > 0 {
            self.replay -= 1;
            let Some(frame) = self.held.pop_front() else {
                self.replay = 0;
                break;
            };
            if self.held_port(&frame).is_some() {
                self.held.push_back(frame);
                continue;
            }
            return Some((
                RxToken {
                    queues: &self.queues,
                    frame: Frame::Held(frame),
                },
                TxToken {
                    queues: &self.queues,
                },
            ));
        }
        loop {
            let mut queues = self.queues.borrow_mut();
            let token = queues.raw.poll_receive()?;
            let mut buffer = queues.rx.get_mut(usize::from(token))?.take()?;
            // SAFETY: the buffer is the one posted under this token.
            match unsafe { queues.raw.receive_complete(token, &mut buffer) } {
                Ok((header, len)) if header + len <= buffer.len() => {
                    let packet = header..header + len;
                    let frame = &buffer[packet.clone()];
                    if let Some((port, peer)) = syn(frame)
                        && self.hold_ports.contains(&port)
                    {
                        // Unless the queue is full or the same attempt is already held.
                        if self.held.len() < self.held_limit
                            && !self
                                .held
                                .iter()
                                .any(|f| syn(f).is_some_and(|(_, p)| p == peer))
                        {
                            self.held.push_back(frame.to_vec());
                        }
                        let _ = queues.post_rx(buffer);
                        continue;
                    }
                    drop(queues);
                    return Some((
                        RxToken {
                            queues: &self.queues,
                            frame: Frame::Ring(buffer, packet),
                        },
                        TxToken {
                            queues: &self.queues,
                        },
                    ));
                }
                // A frame the device reports wrongly is dropped; its buffer goes back.
                _ => {
                    let _ = queues.post_rx(buffer);
                    return None;
                }
            }
        }
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        let mut queues = self.queues.borrow_mut();
        queues.reclaim_tx();
        (queues.tx_in_flight < queues.tx_limit && queues.raw.can_send()).then_some(TxToken {
            queues: &self.queues,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(self.queues.borrow().tx_limit);
        caps
    }
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        match self.frame {
            Frame::Ring(buffer, packet) => {
                let result = f(&buffer[packet]);
                // Losing a receive buffer only shrinks the ring; the stack carries on.
                let _ = self.queues.borrow_mut().post_rx(buffer);
                result
            }
            Frame::Held(frame) => f(&frame),
        }
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut queues = self.queues.borrow_mut();
        let mut buffer = queues
            .tx_spare
            .pop()
            .unwrap_or_else(|| vec![0; BUFFER_LEN].into_boxed_slice());
        let header = queues.raw.fill_buffer_header(&mut buffer).unwrap_or(0);
        let end = (header + len).min(buffer.len());
        let result = f(&mut buffer[header..end]);
        // SAFETY: the buffer stays in `tx` untouched until the device hands it back.
        match unsafe { queues.raw.transmit_begin(&buffer[..end]) } {
            Ok(token) => {
                if let Some(slot) = queues.tx.get_mut(usize::from(token)) {
                    *slot = Some((buffer, end));
                    queues.tx_in_flight += 1;
                }
            }
            // The frame is dropped, as a full wire would; TCP retransmits.
            Err(_) => queues.tx_spare.push(buffer),
        }
        result
    }
}
