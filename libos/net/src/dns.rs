//! A stub resolver: [`lookup_host`] asks the name servers for a name's IPv4 addresses (A
//! records) over a UDP socket of the stack, follows the CNAMEs in the answer, and keeps
//! answers for their time to live. smoltcp's `wire::dns` writes and reads the messages; the
//! exchange is this module's, so only an image that resolves names carries any of it.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use smoltcp::wire::{
    DnsFlags as Flags, DnsOpcode as Opcode, DnsPacket as Packet, DnsQueryType as Type,
    DnsQuestion as Question, DnsRcode as Rcode, DnsRecord as Record, DnsRecordData as RecordData,
    DnsRepr as Repr,
};
use spinning_top::Spinlock;
use unik_rt::time::{self, Instant};

use crate::Error;
use crate::params::DnsParams;
use crate::stack;
use crate::udp::UdpSocket;

const DNS_PORT: u16 = 53;
/// Rounds over the name servers that a lookup without a timeout makes before giving up.
const ROUNDS: usize = 3;
/// Answers leave the cache after this long at most, whatever time to live they came with.
const MAX_TTL: u32 = 24 * 60 * 60;
/// The longest name in wire form (RFC 1035).
const MAX_NAME: usize = 255;
/// The largest DNS message over UDP without EDNS, which these queries do not offer.
const MAX_MESSAGE: usize = 512;

struct Cached {
    /// Lower case, without a trailing dot.
    name: String,
    addresses: Vec<Ipv4Addr>,
    expires: Instant,
}

static CACHE: Spinlock<Vec<Cached>> = Spinlock::new(Vec::new());

/// The IPv4 addresses of host `name`, like `std::net::ToSocketAddrs` for `(name, port)`. A
/// literal address (`10.0.2.2`) is its own answer; other names are asked of the name servers
/// on the command line (`uniklink.net.dns=<a.b.c.d>[:<port>]`, one word or comma per server),
/// else of the DHCP lease's, each waiting the `dns_query_timeout` parameter for an answer, in
/// turn until `timeout` passes (`None`: three rounds). Answers are cached for their time to
/// live, up to `dns_cache_size` names.
///
/// `NameNotFound` when a server says the name does not exist or has no IPv4 address,
/// `TimedOut` when no server answered in time, `LookupFailed` when every server answered with a
/// failure, `Unreachable` when no name server is known, `InvalidName` for a malformed name.
pub fn lookup_host(name: &str, timeout: Option<Duration>) -> Result<Vec<Ipv4Addr>, Error> {
    if let Ok(address) = name.parse::<Ipv4Addr>() {
        return Ok(vec![address]);
    }
    // A fully qualified name ends in a dot; the servers are asked for it the same way.
    let name = name.strip_suffix('.').unwrap_or(name);
    let wire_name = encode_name(name)?;
    let key = name.to_ascii_lowercase();
    if let Some(addresses) = cached(&key) {
        return Ok(addresses);
    }
    let params = DnsParams::get();
    let (addresses, ttl) = ask(&wire_name, timeout, &params)?;
    remember(key, &addresses, ttl, params.dns_cache_size);
    Ok(addresses)
}

/// `name` in wire form: each label after its length, then a zero byte.
fn encode_name(name: &str) -> Result<Vec<u8>, Error> {
    let mut wire = Vec::with_capacity(name.len() + 2);
    for label in name.split('.') {
        let valid = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(Error::InvalidName);
        }
        wire.push(label.len() as u8);
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    if wire.len() > MAX_NAME {
        return Err(Error::InvalidName);
    }
    Ok(wire)
}

fn cached(name: &str) -> Option<Vec<Ipv4Addr>> {
    let mut cache = CACHE.lock();
    let now = time::now();
    cache.retain(|entry| entry.expires > now);
    cache
        .iter()
        .find(|entry| entry.name == name)
        .map(|entry| entry.addresses.clone())
}

fn remember(name: String, addresses: &[Ipv4Addr], ttl: u32, capacity: usize) {
    if capacity == 0 || ttl == 0 {
        return;
    }
    let mut cache = CACHE.lock();
    cache.retain(|entry| entry.name != name);
    if cache.len() >= capacity
        && let Some(soonest) = (0..cache.len()).min_by_key(|&i| cache[i].expires)
    {
        cache.swap_remove(soonest);
    }
    cache.push(Cached {
        name,
        addresses: addresses.to_vec(),
        expires: time::now() + Duration::from_secs(ttl.into()),
    });
}

/// The name servers to ask: those on the command line, else the `dns` parameter's, else the
/// DHCP lease's (waiting for it).
fn servers(params: &DnsParams) -> Result<Vec<SocketAddrV4>, Error> {
    let mut servers = configured_servers(unik_rt::cmdline::command_line());
    if servers.is_empty()
        && let Some(server) = params.server()
    {
        servers.push(SocketAddrV4::new(server, DNS_PORT));
    }
    if servers.is_empty() {
        stack::wait_for_address()?;
        servers = stack::with(|stack| {
            Ok(stack
                .dns_servers
                .iter()
                .flatten()
                .map(|&ip| SocketAddrV4::new(ip, DNS_PORT))
                .collect())
        })?;
    }
    if servers.is_empty() {
        return Err(Error::Unreachable);
    }
    Ok(servers)
}

/// The servers of `uniklink.net.dns=<a.b.c.d>[:<port>][,...]` words, in order; malformed
/// entries are skipped.
fn configured_servers(cmdline: &[u8]) -> Vec<SocketAddrV4> {
    cmdline
        .split(u8::is_ascii_whitespace)
        .filter_map(|word| word.strip_prefix(b"uniklink.net.dns="))
        .flat_map(|value| value.split(|&b| b == b','))
        .filter_map(|server| {
            let server = core::str::from_utf8(server).ok()?;
            server.parse::<SocketAddrV4>().ok().or_else(|| {
                let ip = server.parse::<Ipv4Addr>().ok()?;
                Some(SocketAddrV4::new(ip, DNS_PORT))
            })
        })
        .collect()
}

/// What one server's reply says.
enum Answer {
    /// The addresses and the shortest time to live among the records that gave them.
    Found(Vec<Ipv4Addr>, u32),
    NotFound,
    Failed,
}

/// Asks each server in turn until one answers, `timeout` passes, or (without one) every
/// server was asked `ROUNDS` times. A server that answered with a failure is not asked again.
fn ask(
    name: &[u8],
    timeout: Option<Duration>,
    params: &DnsParams,
) -> Result<(Vec<Ipv4Addr>, u32), Error> {
    let query_timeout = Duration::from_nanos(params.dns_query_timeout);
    let servers = servers(params)?;
    let deadline = timeout.map(|t| time::now() + t);
    let socket = UdpSocket::bind(0)?;
    let mut failed = vec![false; servers.len()];
    let mut round = 0;
    while deadline.is_some() || round < ROUNDS {
        for (index, &server) in servers.iter().enumerate() {
            if failed[index] {
                continue;
            }
            let wait = match deadline {
                Some(deadline) => {
                    let left = deadline.duration_since(time::now());
                    if left.is_zero() {
                        return Err(Error::TimedOut);
                    }
                    left.min(query_timeout)
                }
                None => query_timeout,
            };
            let id = stack::with(|stack| Ok(stack.random() as u16))?;
            socket.send_to(&query(id, name), server, Some(wait))?;
            match await_answer(&socket, server, id, name, wait)? {
                Some(Answer::Found(addresses, ttl)) => return Ok((addresses, ttl)),
                Some(Answer::NotFound) => return Err(Error::NameNotFound),
                Some(Answer::Failed) => failed[index] = true,
                None => {}
            }
        }
        if failed.iter().all(|&f| f) {
            return Err(Error::LookupFailed);
        }
        round += 1;
    }
    Err(Error::TimedOut)
}

/// A query for the A records of `name`, recursion desired.
fn query(id: u16, name: &[u8]) -> Vec<u8> {
    let repr = Repr {
        transaction_id: id,
        opcode: Opcode::Query,
        flags: Flags::RECURSION_DESIRED,
        question: Question {
            name,
            type_: Type::A,
        },
    };
    let mut message = vec![0; repr.buffer_len()];
    repr.emit(&mut Packet::new_unchecked(&mut message[..]));
    message
}

/// The answer of `server` to query `id` for `name`, if it comes within `wait`; other
/// datagrams (late answers to earlier queries, strangers) are dropped.
fn await_answer(
    socket: &UdpSocket,
    server: SocketAddrV4,
    id: u16,
    name: &[u8],
    wait: Duration,
) -> Result<Option<Answer>, Error> {
    let until = time::now() + wait;
    let mut message = [0u8; MAX_MESSAGE];
    loop {
        let left = until.duration_since(time::now());
        if left.is_zero() {
            return Ok(None);
        }
        match socket.recv_from(&mut message, Some(left)) {
            Ok((len, from)) if from == server => {
                if let Some(answer) = parse(&message[..len.min(MAX_MESSAGE)], id, name) {
                    return Ok(Some(answer));
                }
            }
            Ok(_) => {}
            Err(Error::TimedOut) => return Ok(None),
            Err(error) => return Err(error),
        }
    }
}

/// What `message` says about `name`, if it is the answer to query `id`.
fn parse(message: &[u8], id: u16, name: &[u8]) -> Option<Answer> {
    let packet = Packet::new_checked(message).ok()?;
    if packet.transaction_id() != id
        || !packet.flags().contains(Flags::RESPONSE)
        || packet.opcode() != Opcode::Query
        || packet.question_count() != 1
    {
        return None;
    }
    let (mut records, question) = Question::parse(packet.payload()).ok()?;
    if question.type_ != Type::A
        || !same_name(packet.parse_name(question.name), packet.parse_name(name))?
    {
        return None;
    }
    match packet.rcode() {
        Rcode::NoError => {}
        Rcode::NXDomain => return Some(Answer::NotFound),
        _ => return Some(Answer::Failed),
    }
    // The records of the name asked for, and of each alias a CNAME record leads to.
    let mut wanted = question.name;
    let mut addresses = Vec::new();
    let mut ttl = MAX_TTL;
    for _ in 0..packet.answer_record_count() {
        let Ok((rest, record)) = Record::parse(records) else {
            return Some(Answer::Failed);
        };
        records = rest;
        let Some(ours) = same_name(packet.parse_name(record.name), packet.parse_name(wanted))
        else {
            return Some(Answer::Failed);
        };
        if !ours {
            continue;
        }
        match record.data {
            RecordData::A(address) => addresses.push(address),
            RecordData::Cname(alias) => wanted = alias,
            RecordData::Other(..) => continue,
        }
        ttl = ttl.min(record.ttl);
    }
    Some(if !addresses.is_empty() {
        Answer::Found(addresses, ttl)
    } else if packet.flags().contains(Flags::TRUNCATED) {
        // The records did not fit; without them this says nothing about the name.
        Answer::Failed
    } else {
        Answer::NotFound
    })
}

/// Whether two names are the same, ignoring ASCII case; `None` if either is malformed.
fn same_name<'a>(
    mut a: impl Iterator<Item = smoltcp::wire::Result<&'a [u8]>>,
    mut b: impl Iterator<Item = smoltcp::wire::Result<&'a [u8]>>,
) -> Option<bool> {
    loop {
        match (a.next().transpose().ok()?, b.next().transpose().ok()?) {
            (None, None) => return Some(true),
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => {}
            _ => return Some(false),
        }
    }
}
