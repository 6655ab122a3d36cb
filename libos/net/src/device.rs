//! virtio-net as a smoltcp `Device`.
//!
//! The virtqueues have a fixed size (`QUEUE_SIZE`, what QEMU's virtio-net offers); the
//! `rx_ring_size` and `tx_ring_size` parameters bound how many receive buffers are posted and
//! how many transmissions may be in flight, which is what costs memory. Transmission does not
//! wait for the device: a sent buffer is reclaimed the next time a transmit token is asked for.

use alloc::boxed::Box;
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
}

impl Queues {
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
}

impl Nic {
    pub(crate) fn new(
        transport: SomeTransport<'static>,
        rx_ring: usize,
        tx_ring: usize,
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
        };
        for _ in 0..rx_ring.clamp(1, QUEUE_SIZE) {
            queues.post_rx(vec![0; BUFFER_LEN].into_boxed_slice())?;
        }
        Ok(Nic {
            queues: RefCell::new(queues),
            mac,
        })
    }

    pub(crate) fn mac(&self) -> [u8; 6] {
        self.mac
    }
}

pub(crate) struct RxToken<'a> {
    queues: &'a RefCell<Queues>,
    buffer: Box<[u8]>,
    packet: core::ops::Range<usize>,
}

pub(crate) struct TxToken<'a> {
    queues: &'a RefCell<Queues>,
}

impl phy::Device for Nic {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let mut queues = self.queues.borrow_mut();
        let token = queues.raw.poll_receive()?;
        let mut buffer = queues.rx.get_mut(usize::from(token))?.take()?;
        // SAFETY: the buffer is the one posted under this token.
        match unsafe { queues.raw.receive_complete(token, &mut buffer) } {
            Ok((header, len)) if header + len <= buffer.len() => {
                drop(queues);
                Some((
                    RxToken {
                        queues: &self.queues,
                        buffer,
                        packet: header..header + len,
                    },
                    TxToken {
                        queues: &self.queues,
                    },
                ))
            }
            // A frame the device reports wrongly is dropped; its buffer goes back.
            _ => {
                let _ = queues.post_rx(buffer);
                None
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
        let result = f(&self.buffer[self.packet]);
        // Losing a receive buffer only shrinks the ring; the stack carries on.
        let _ = self.queues.borrow_mut().post_rx(self.buffer);
        result
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
