//! The one network stack of the unikernel: the card, the smoltcp interface and its sockets,
//! behind a spinlock. The runtime never enables interrupts, so nothing moves unless something
//! polls: every blocking call polls the stack until its condition holds or its deadline
//! passes, and the runtime polls it while the app sleeps or yields (`unik_rt::idle`).

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::ops::RangeInclusive;
use core::time::Duration;

use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet,
};
use smoltcp::socket::{Socket, dhcpv4, tcp};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{
    DHCP_MAX_DNS_SERVER_COUNT, EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint,
    Ipv4Cidr,
};
use spinning_top::Spinlock;
use unik_rt::time::{self, Instant};
use unik_virtio::DeviceType;

use crate::Error;
use crate::device::Nic;
use crate::params::Params;

/// A closed socket that has not finished its goodbye by then is freed anyway; the peer's next
/// segment then gets a reset.
const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// Listening sockets a listener gains per round of the stack (see `tend_listeners`).
const LISTEN_FILL_BATCH: usize = 4;
/// Local ports for outgoing connections and unbound UDP sockets: IANA's dynamic range, which
/// servers do not listen on.
const EPHEMERAL_PORTS: RangeInclusive<u16> = 49152..=65535;

pub(crate) struct Listener {
    pub port: u16,
    /// Sockets kept in LISTEN.
    pub backlog: usize,
    /// Sockets in LISTEN or the handshake.
    pub waiting: Vec<SocketHandle>,
    /// Of `waiting`, those in LISTEN after the last refill: none means SYNs are held.
    pub listening: usize,
    /// Connected sockets not yet accepted.
    pub ready: Vec<SocketHandle>,
}

pub(crate) struct Stack {
    nic: Nic,
    iface: Interface,
    pub sockets: SocketSet<'static>,
    pub params: Params,
    booted: Instant,
    dhcp: Option<SocketHandle>,
    /// Listeners by id; `None` once dropped.
    pub listeners: Vec<Option<Listener>>,
    /// Sockets the app has let go of, finishing their close, with when they were dropped.
    closing: Vec<(SocketHandle, Instant)>,
    /// Sockets in `sockets`, the DHCP client excluded.
    pub open: usize,
    /// The name servers of the DHCP lease. An array rather than a `Vec`: copying into it costs
    /// the poll loop of every image a few instructions, not an allocation.
    pub dns_servers: [Option<Ipv4Addr>; DHCP_MAX_DNS_SERVER_COUNT],
    /// State of the generator behind [`Stack::random`].
    random: u64,
}

/// Boxed: smoltcp's interface is some 17 KiB, which inline would sit in the image's `.data`
/// (the `None` of this type is not all zeros, so it cannot go to `.bss`).
static STACK: Spinlock<Option<Result<Box<Stack>, Error>>> = Spinlock::new(None);

/// Brings the stack up once; later calls return at once.
pub(crate) fn init() {
    let mut slot = STACK.lock();
    if slot.is_none() {
        *slot = Some(Stack::new().map(Box::new));
    }
}

/// The runtime's poll while the app sleeps or yields. It never brings the stack up, and does
/// nothing while a socket call holds the stack (the app yielding from inside one cannot
/// happen, but a lock never taken twice costs nothing to guarantee).
fn idle_poll() {
    if let Some(mut slot) = STACK.try_lock()
        && let Some(Ok(stack)) = slot.as_mut()
    {
        stack.poll();
    }
}

/// Waits for the stack to have an address: at once with a static one, else until the DHCP
/// lease arrives, at most the `dhcp_wait` parameter (`Unreachable` after that).
pub(crate) fn wait_for_address() -> Result<(), Error> {
    let wait = with(|stack| Ok(Duration::from_nanos(stack.params.dhcp_wait)))?;
    block_on(Some(wait), |stack| stack.has_address().then_some(Ok(()))).map_err(|error| match error
    {
        Error::TimedOut => Error::Unreachable,
        other => other,
    })
}

/// Runs `f` on the stack, bringing it up first if no init ran.
pub(crate) fn with<T>(f: impl FnOnce(&mut Stack) -> Result<T, Error>) -> Result<T, Error> {
    let mut slot = STACK.lock();
    let stack = slot.get_or_insert_with(|| Stack::new().map(Box::new));
    match stack {
        Ok(stack) => f(stack),
        Err(error) => Err(*error),
    }
}

/// Polls the stack until `f` gives an answer or `timeout` passes (`None`: no limit).
pub(crate) fn block_on<T>(
    timeout: Option<Duration>,
    mut f: impl FnMut(&mut Stack) -> Option<Result<T, Error>>,
) -> Result<T, Error> {
    let deadline = timeout.map(|t| time::now() + t);
    loop {
        let answer = with(|stack| {
            stack.poll();
            let answer = f(stack);
            if answer.is_some() {
                // Push out at once what the answer queued (an ACK, written data).
                stack.poll();
            }
            Ok(answer)
        })?;
        if let Some(answer) = answer {
            return answer;
        }
        if deadline.is_some_and(|d| time::now() >= d) {
            return Err(Error::TimedOut);
        }
        core::hint::spin_loop();
    }
}

impl Stack {
    fn new() -> Result<Stack, Error> {
        let params = Params::get();
        // SAFETY: the device tree's virtio-mmio windows and the command line's virtio_mmio
        // entries come from the machine, and the PC's PCI configuration ports belong to its
        // host bridge.
        let transport = unsafe {
            unik_virtio::find(
                DeviceType::Network,
                unik_rt::devicetree::virtio_mmio(),
                unik_rt::cmdline::command_line(),
            )
        }
        .ok_or(Error::NoDevice)?;
        let started = time::now();
        let mut nic = Nic::new(
            transport,
            params.rx_ring_size,
            params.tx_ring_size,
            params.syn_backlog,
        )?;
        let mac = nic.mac();
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        // TCP initial sequence numbers need not be secret here, only differ between boots and
        // machines: the MAC and the device's setup time (TSC-measured, it jitters) do that.
        let mut seed = [0u8; 8];
        seed[..6].copy_from_slice(&mac);
        config.random_seed =
            u64::from_le_bytes(seed) ^ (started.elapsed().as_nanos() as u64).rotate_left(29);
        let random = config.random_seed;
        let booted = time::now();
        let iface = Interface::new(config, &mut nic, SmolInstant::ZERO);
        let mut stack = Stack {
            nic,
            iface,
            sockets: SocketSet::new(vec![]),
            params,
            booted,
            dhcp: None,
            listeners: Vec::new(),
            closing: Vec::new(),
            open: 0,
            dns_servers: [None; DHCP_MAX_DNS_SERVER_COUNT],
            random,
        };
        // The runtime keeps a slot to spare beyond this one; were it refused all the same, the
        // stack would still move inside socket calls.
        unik_rt::idle::register(idle_poll);
        match StaticConfig::new(unik_rt::cmdline::command_line(), &stack.params) {
            Some(config) => stack.configure(config.address, config.gateway),
            None => {
                stack.dhcp = Some(stack.sockets.add(dhcpv4::Socket::new()));
                // Sends the first DISCOVER; the lease arrives while later calls poll.
                stack.poll();
            }
        }
        Ok(stack)
    }

    fn has_address(&self) -> bool {
        self.address().is_some()
    }

    pub(crate) fn address(&self) -> Option<Ipv4Addr> {
        self.iface.ipv4_addr()
    }

    fn configure(&mut self, address: Ipv4Cidr, gateway: Option<Ipv4Addr>) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            // One address fits the smallest address table smoltcp can be built with.
            let _ = addrs.push(IpCidr::Ipv4(address));
        });
        let routes = self.iface.routes_mut();
        routes.remove_default_ipv4_route();
        if let Some(gateway) = gateway {
            // Only fails when the route table is full, and it was just emptied.
            let _ = routes.add_default_ipv4_route(gateway);
        }
    }

    fn now(&self) -> SmolInstant {
        SmolInstant::from_micros(self.booted.elapsed().as_micros() as i64)
    }

    /// One round of the stack: move frames, run timers, then the component's own
    /// bookkeeping (DHCP, listeners' queues, closing sockets).
    pub(crate) fn poll(&mut self) {
        let now = self.now();
        self.iface.poll_maintenance(now);
        // Listeners are refilled after every frame, not once per burst: a burst of SYNs
        // larger than a backlog would otherwise find no listening socket and be reset.
        // At most one ring's worth of frames per round: the device refills the ring while it
        // is read, so a peer sending without pause would otherwise keep the round in ingress,
        // and no socket, its own included, would get its answers out or the app a turn.
        for _ in 0..self.params.rx_ring_size.max(1) {
            if self
                .iface
                .poll_ingress_single(now, &mut self.nic, &mut self.sockets)
                == PollIngressSingleResult::None
            {
                break;
            }
            self.tend_listeners();
        }
        while self
            .iface
            .poll_egress(now, &mut self.nic, &mut self.sockets)
            != PollResult::None
        {}
        if let Some(handle) = self.dhcp {
            let event = self.sockets.get_mut::<dhcpv4::Socket>(handle).poll();
            match event {
                Some(dhcpv4::Event::Configured(config)) => {
                    let (address, router) = (config.address, config.router);
                    self.dns_servers = [None; DHCP_MAX_DNS_SERVER_COUNT];
                    for (slot, &server) in self.dns_servers.iter_mut().zip(&config.dns_servers) {
                        *slot = Some(server);
                    }
                    self.configure(address, router);
                }
                Some(dhcpv4::Event::Deconfigured) => {
                    self.iface.update_ip_addrs(|a| a.clear());
                    self.dns_servers = [None; DHCP_MAX_DNS_SERVER_COUNT];
                }
                None => {}
            }
        }
        self.tend_listeners();
        self.reap_closing();
    }

    /// A new TCP socket with the configured buffers, counted against `max_sockets`.
    pub(crate) fn new_tcp(&mut self) -> Result<SocketHandle, Error> {
        if self.open >= self.params.max_sockets {
            return Err(Error::TooManySockets);
        }
        // smoltcp advertises the free space of the receive buffer as its window, so the
        // window parameter caps that buffer.
        let rx = self
            .params
            .socket_rx_buffer
            .min(self.params.tcp_window)
            .max(1);
        let tx = self.params.socket_tx_buffer.max(1);
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(zeroed(rx)?),
            tcp::SocketBuffer::new(zeroed(tx)?),
        );
        socket.set_nagle_enabled(false);
        self.open += 1;
        Ok(self.sockets.add(socket))
    }

    /// A TCP socket in SYN-SENT towards `to` from a free ephemeral port. `Unreachable` when no
    /// packet could leave for `to`: no address yet, no route, or no such host (port 0, a
    /// broadcast, multicast or loopback address).
    pub(crate) fn connect(&mut self, to: SocketAddrV4) -> Result<SocketHandle, Error> {
        let ip = *to.ip();
        if to.port() == 0
            || ip.is_unspecified()
            || ip.is_broadcast()
            || ip.is_multicast()
            || ip.is_loopback()
            || !self.routable(ip)
        {
            return Err(Error::Unreachable);
        }
        let port = self.ephemeral_port()?;
        let handle = self.new_tcp()?;
        let remote = IpEndpoint::new(IpAddress::Ipv4(ip), to.port());
        let started =
            self.sockets
                .get_mut::<tcp::Socket>(handle)
                .connect(self.iface.context(), remote, port);
        if started.is_err() {
            self.free(handle);
            return Err(Error::Unreachable);
        }
        Ok(handle)
    }

    /// Whether a packet to `ip` has a way out: the interface has an address, and `ip` is on
    /// its network or there is a default route.
    fn routable(&self, ip: Ipv4Addr) -> bool {
        let on_link = self
            .iface
            .ip_addrs()
            .iter()
            .any(|cidr| cidr.contains_addr(&IpAddress::Ipv4(ip)));
        self.has_address() && (on_link || self.iface.routes().get_default_ipv4_route().is_some())
    }

    /// A local port no socket or listener uses, from a random point of the ephemeral range
    /// so that a reboot does not reuse the previous boot's connections' ports.
    pub(crate) fn ephemeral_port(&mut self) -> Result<u16, Error> {
        let first = *EPHEMERAL_PORTS.start();
        let count = u64::from(*EPHEMERAL_PORTS.end() - first) + 1;
        let start = self.random() % count;
        (0..count)
            .map(|i| first + ((start + i) % count) as u16)
            .find(|&port| !self.port_in_use(port))
            .ok_or(Error::AddrInUse)
    }

    fn port_in_use(&self, port: u16) -> bool {
        self.listeners.iter().flatten().any(|l| l.port == port)
            || self.sockets.iter().any(|(_, socket)| match socket {
                Socket::Tcp(tcp) => {
                    tcp.listen_endpoint().port == port
                        || tcp.local_endpoint().is_some_and(|e| e.port == port)
                }
                Socket::Udp(udp) => udp.endpoint().port == port,
                _ => false,
            })
    }

    /// 64 bits from splitmix64 over the stack's seed, stirred with the clock: ephemeral
    /// ports and DNS query ids, which need to be hard to guess from outside, not secret.
    pub(crate) fn random(&mut self) -> u64 {
        let jitter = self.booted.elapsed().as_nanos() as u64;
        self.random = self
            .random
            .wrapping_add(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(jitter.rotate_left(17));
        let mut z = self.random;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn free(&mut self, handle: SocketHandle) {
        self.sockets.remove(handle);
        self.open -= 1;
    }

    /// Hands a socket the app no longer holds to the closing list, which frees it once its
    /// close has run its course.
    pub(crate) fn release(&mut self, handle: SocketHandle) {
        self.sockets.get_mut::<tcp::Socket>(handle).close();
        self.closing.push((handle, time::now()));
    }

    fn tend_listeners(&mut self) {
        for index in 0..self.listeners.len() {
            let Some(mut listener) = self.listeners[index].take() else {
                continue;
            };
            let mut i = 0;
            let mut listening = 0;
            while i < listener.waiting.len() {
                match self.sockets.get::<tcp::Socket>(listener.waiting[i]).state() {
                    tcp::State::Listen => {
                        listening += 1;
                        i += 1;
                    }
                    tcp::State::SynReceived => i += 1,
                    _ => listener.ready.push(listener.waiting.swap_remove(i)),
                }
            }
            // A socket leaves LISTEN with the first SYN, so handshakes in progress do not use
            // up the backlog: a burst of connection attempts larger than it still finds a
            // listening socket for each SYN, as far as `max_sockets` allows; beyond that the
            // card holds the SYNs. Each round adds at most `LISTEN_FILL_BATCH` sockets, whose
            // buffers are zeroed memory: a deep backlog of large buffers fills over the first
            // polls instead of holding up `bind`.
            let mut added = 0;
            while listening < listener.backlog && added < LISTEN_FILL_BATCH {
                added += 1;
                let Ok(handle) = self.new_tcp() else { break };
                if self
                    .sockets
                    .get_mut::<tcp::Socket>(handle)
                    .listen(listener.port)
                    .is_err()
                {
                    self.free(handle);
                    break;
                }
                listener.waiting.push(handle);
                listening += 1;
            }
            listener.listening = listening;
            self.listeners[index] = Some(listener);
        }
        // SYNs to a listener without a socket in LISTEN wait in the card's queue rather than
        // being reset by smoltcp; they are offered again once a socket is free.
        self.nic.set_hold_ports(
            self.listeners
                .iter()
                .flatten()
                .filter(|l| l.listening == 0)
                .map(|l| l.port),
        );
    }

    fn reap_closing(&mut self) {
        let mut index = 0;
        while index < self.closing.len() {
            let (handle, since) = self.closing[index];
            let socket = self.sockets.get_mut::<tcp::Socket>(handle);
            // TIME-WAIT guards against old duplicates of this connection; freeing the socket
            // early turns those into resets, which costs a server nothing.
            let done = matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait);
            if done || since.elapsed() > CLOSE_LINGER {
                self.closing.swap_remove(index);
                self.free(handle);
            } else {
                index += 1;
            }
        }
    }
}

/// A zeroed buffer, or `OutOfMemory` instead of the allocator's panic: a server under load
/// refuses a connection rather than dying.
pub(crate) fn zeroed(len: usize) -> Result<Vec<u8>, Error> {
    let mut buffer = Vec::new();
    buffer
        .try_reserve_exact(len)
        .map_err(|_| Error::OutOfMemory)?;
    buffer.resize(len, 0);
    Ok(buffer)
}

/// A static address: `uniklink.net.ip=10.0.2.15/24` and `uniklink.net.gateway=10.0.2.2` on
/// the command line, each over the `address` and `gateway` parameters.
struct StaticConfig {
    address: Ipv4Cidr,
    gateway: Option<Ipv4Addr>,
}

impl StaticConfig {
    /// `None` when neither the command line nor the parameters give an address: DHCP then.
    fn new(cmdline: &[u8], params: &Params) -> Option<StaticConfig> {
        let mut address = params.static_address();
        let mut gateway = params.gateway();
        for word in cmdline.split(u8::is_ascii_whitespace) {
            let Ok(word) = core::str::from_utf8(word) else {
                continue;
            };
            if let Some(value) = word.strip_prefix("uniklink.net.ip=") {
                let (ip, prefix) = value.split_once('/').unwrap_or((value, "24"));
                if let (Ok(ip), Ok(prefix)) = (ip.parse::<Ipv4Addr>(), prefix.parse::<u8>())
                    && prefix <= 32
                    && !ip.is_unspecified()
                {
                    address = Some(Ipv4Cidr::new(ip, prefix));
                }
            } else if let Some(value) = word.strip_prefix("uniklink.net.gateway=")
                && let Ok(ip) = value.parse()
            {
                gateway = Some(ip);
            }
        }
        Some(StaticConfig {
            address: address?,
            gateway,
        })
    }
}
