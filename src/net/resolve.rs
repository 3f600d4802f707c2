//! Where to connect: the SRV lookup for the JID's domain (RFC 6120 §3.2, XEP-0368) through a small
//! stub resolver that asks the nameservers of `/etc/resolv.conf`, then A/AAAA for each target
//! through the system resolver.
//!
//! The packet work ([`build_query`], [`parse_reply`]), [`parse_resolv_conf`] and the RFC 2782
//! ordering ([`order`]) are pure; [`srv_targets_with`] and [`socket_addrs`] do the I/O.
//!
//! The DNS messages are written and read here (RFC 1035 §4) rather than with a DNS crate:
//! one question type and two record types (SRV, CNAME) need about 150 lines, where a general
//! DNS library cost some 25 kB of every binary, which the aarch64 size budget did not have.

use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpStream, UdpSocket};

/// Most targets kept from one SRV answer; more would only lengthen a failing connect loop.
pub const MAX_TARGETS: usize = 16;
/// Most nameservers used, as with the C library's resolver (MAXNS).
pub const MAX_NAMESERVERS: usize = 3;
/// How long one nameserver gets for one query (and again for the TCP retry of a truncated reply).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Rounds over the nameserver list before the SRV lookup counts as unanswered.
pub const ATTEMPTS: usize = 2;
/// Most addresses kept for one target.
pub const MAX_ADDRESSES: usize = 16;

const RESOLV_CONF: &str = "/etc/resolv.conf";
/// A resolv.conf is a few lines; anything past this is not read.
const MAX_RESOLV_CONF_BYTES: u64 = 64 * 1024;
const DNS_PORT: u16 = 53;
/// Queries carry no EDNS, so servers send at most 512 bytes over UDP; the rest is slack.
const UDP_BUFFER: usize = 4096;
/// An SRV reply over TCP is a few hundred bytes; a longer one is refused rather than buffered.
const MAX_TCP_REPLY: usize = 16 * 1024;
/// Longest CNAME chain followed inside one reply.
const MAX_CNAME_HOPS: usize = 8;
/// Longest domain name in text form (RFC 1035 §2.3.4, without the root dot).
const MAX_DOMAIN_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;
/// Smallest wire size of a question (root name, type, class) and of a resource record
/// (root name, type, class, TTL, RDLENGTH), used to reject impossible section counts before
/// the parser reserves memory for them.
const MIN_QUESTION_LEN: usize = 5;
const MIN_RECORD_LEN: usize = 11;
const HEADER_LEN: usize = 12;
/// Longest name on the wire (RFC 1035 §3.1), and the most compression pointers followed in one.
const MAX_NAME_WIRE_LEN: usize = 255;
const MAX_POINTERS: usize = 32;
/// Header flags and codes (RFC 1035 §4.1.1), types and the class (§3.2).
const FLAG_RESPONSE: u16 = 0x8000;
const FLAG_TRUNCATED: u16 = 0x0200;
const FLAG_RECURSION_DESIRED: u16 = 0x0100;
const RCODE_NAME_ERROR: u8 = 3;
const TYPE_CNAME: u16 = 5;
const TYPE_SRV: u16 = 33;
const CLASS_IN: u16 = 1;

/// The two XMPP client services looked up in DNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `_xmpp-client._tcp`: plain TCP, then STARTTLS (RFC 6120), default port 5222.
    StartTls,
    /// `_xmpps-client._tcp`: TLS from the first byte (XEP-0368), default port 5223.
    DirectTls,
}

impl Service {
    /// The service and protocol labels that prefix the domain in the SRV name.
    pub fn srv_prefix(self) -> &'static str {
        match self {
            Service::StartTls => "_xmpp-client._tcp",
            Service::DirectTls => "_xmpps-client._tcp",
        }
    }

    /// The port used when the domain publishes no SRV records.
    pub fn default_port(self) -> u16 {
        match self {
            Service::StartTls => 5222,
            Service::DirectTls => 5223,
        }
    }
}

/// One host and port to try, in the order returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// A host name or an IP address literal (without brackets).
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One usable SRV record from a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative share among records of the same priority.
    pub weight: u16,
    /// The TCP port on the target.
    pub port: u16,
    /// The target host name, without the root dot.
    pub target: String,
}

/// What a matching reply says about the SRV name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The usable records, unordered.
    Records(Vec<SrvRecord>),
    /// NXDOMAIN, NODATA, or only records that name no usable host: fall back to the domain.
    NoRecords,
    /// The only target is "." (RFC 2782): the service is decidedly not offered.
    ServiceUnavailable,
}

/// Why a received packet is not an answer to the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The bytes are not a DNS message.
    Malformed,
    /// The id differs from the query's: a stray or forged packet.
    WrongId,
    /// The packet is a query, not a reply.
    NotAReply,
    /// The reply's question is not the one asked.
    WrongQuestion,
    /// The server set TC: the full reply is only available over TCP.
    Truncated,
    /// The server could not answer (SERVFAIL, REFUSED and the like): its RCODE.
    ServerError(u8),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Malformed => f.write_str("the DNS reply is malformed"),
            ReplyError::WrongId => f.write_str("the DNS reply carries another query's id"),
            ReplyError::NotAReply => f.write_str("the DNS packet is a query, not a reply"),
            ReplyError::WrongQuestion => f.write_str("the DNS reply answers another question"),
            ReplyError::Truncated => f.write_str("the DNS reply is truncated"),
            ReplyError::ServerError(code) => {
                let name = match code {
                    1 => "FORMERR",
                    2 => "SERVFAIL",
                    4 => "NOTIMP",
                    5 => "REFUSED",
                    _ => "an error",
                };
                write!(f, "the nameserver answered {name} (RCODE {code})")
            }
        }
    }
}

impl std::error::Error for ReplyError {}

/// Why no address to connect to could be found (the "DNS" step of `xrelay check`).
#[derive(Debug)]
pub enum ResolveError {
    /// The domain cannot be looked up: empty, too long, or not an ASCII host name
    /// (internationalized domains must be given in their `xn--` form).
    InvalidDomain(String),
    /// The domain's only SRV target is ".": it says it offers no such service.
    ServiceUnavailable {
        /// The JID's domain.
        domain: String,
        /// The service that was looked up.
        service: Service,
    },
    /// The operating system's random generator failed, so no query id could be chosen.
    Random,
    /// The system resolver failed for a target host.
    Lookup {
        /// The host that was looked up.
        host: String,
        /// What the resolver reported.
        source: io::Error,
    },
    /// The system resolver returned no address for a target host.
    NoAddresses {
        /// The host that was looked up.
        host: String,
    },
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::InvalidDomain(domain) => {
                write!(f, "{domain:?} is not a domain name that DNS can look up")
            }
            ResolveError::ServiceUnavailable { domain, service } => write!(
                f,
                "{domain} says in DNS that it offers no {} service (SRV target \".\")",
                service.srv_prefix()
            ),
            ResolveError::Random => f.write_str("the system random number generator failed"),
            ResolveError::Lookup { host, source } => write!(f, "cannot resolve {host}: {source}"),
            ResolveError::NoAddresses { host } => write!(f, "{host} has no IPv4 or IPv6 address"),
        }
    }
}

impl std::error::Error for ResolveError {}

/// The nameservers of a resolv.conf text: `nameserver` lines with an IPv4 or IPv6 address, at most
/// [`MAX_NAMESERVERS`]. Comments start with `#` or `;`; other keywords are ignored, as are
/// addresses with a zone (`fe80::1%eth0`), which need an interface lookup.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let content = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = content.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(address)) => address.parse::<IpAddr>().ok(),
                _ => None,
            }
        })
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
        .take(MAX_NAMESERVERS)
        .collect()
}

/// The SRV name looked up for a domain: absolute, so no search domains apply.
pub fn srv_name(domain: &str, service: Service) -> Result<String, ResolveError> {
    Ok(format!(
        "{}.{}",
        service.srv_prefix(),
        checked_domain(domain)?
    ))
}

/// A recursive (RD) query for the SRV records of `name`, class IN.
pub fn build_query(id: u16, name: &str) -> Result<Vec<u8>, ResolveError> {
    let invalid = || ResolveError::InvalidDomain(name.to_owned());
    let bare = name.strip_suffix('.').unwrap_or(name);
    let mut packet = Vec::with_capacity(HEADER_LEN + bare.len() + 6);
    for word in [id, FLAG_RECURSION_DESIRED, 1, 0, 0, 0] {
        packet.extend_from_slice(&word.to_be_bytes());
    }
    for label in bare.split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..=MAX_LABEL_LEN as u8).contains(l))
            .ok_or_else(invalid)?;
        packet.push(len);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    if packet.len() - HEADER_LEN > MAX_NAME_WIRE_LEN {
        return Err(invalid());
    }
    packet.extend_from_slice(&TYPE_SRV.to_be_bytes());
    packet.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(packet)
}

/// Reads a reply to the query `build_query(id, name)`. Mismatching or broken packets are errors
/// (the caller keeps waiting for the real reply); NXDOMAIN and NODATA are [`Answer::NoRecords`].
/// SRV records are taken for `name` and for the names its CNAME chain in the reply leads to.
pub fn parse_reply(id: u16, name: &str, reply: &[u8]) -> Result<Answer, ReplyError> {
    let header = |i: usize| read_u16(reply, 2 * i).ok_or(ReplyError::Malformed);
    if header(0)? != id {
        return Err(ReplyError::WrongId);
    }
    let flags = header(1)?;
    if flags & FLAG_RESPONSE == 0 {
        return Err(ReplyError::NotAReply);
    }
    if flags & FLAG_TRUNCATED != 0 {
        return Err(ReplyError::Truncated);
    }
    check_section_counts(reply)?;
    let (questions, answers) = (header(2)?, header(3)?);
    let others = usize::from(header(4)?) + usize::from(header(5)?);

    let mut pos = HEADER_LEN;
    let mut asked = Vec::new();
    for _ in 0..questions {
        let (qname, next) = read_name(reply, pos)?;
        let qtype = read_u16(reply, next).ok_or(ReplyError::Malformed)?;
        let qclass = read_u16(reply, next + 2).ok_or(ReplyError::Malformed)?;
        asked.push((qname, qtype, qclass));
        pos = next + 4;
    }
    let mut records = Vec::with_capacity(usize::from(answers));
    for i in 0..usize::from(answers) + others {
        let (record, next) = read_record(reply, pos)?;
        if i < usize::from(answers) {
            records.push(record);
        }
        pos = next;
    }

    let expected = wire_name(name).ok_or(ReplyError::WrongQuestion)?;
    match asked.as_slice() {
        [(qname, TYPE_SRV, CLASS_IN)] if same_name(qname, &expected) => {}
        _ => return Err(ReplyError::WrongQuestion),
    }
    match (flags & 0x000f) as u8 {
        0 => {}
        RCODE_NAME_ERROR => return Ok(Answer::NoRecords),
        code => return Err(ReplyError::ServerError(code)),
    }

    let mut owners = vec![&expected];
    for _ in 0..MAX_CNAME_HOPS {
        let Some(&last) = owners.last() else { break };
        let next = records.iter().find_map(|rr| match &rr.data {
            RecordData::Cname(target) if same_name(&rr.owner, last) => Some(target),
            _ => None,
        });
        match next {
            Some(next) if !owners.iter().any(|o| same_name(o, next)) => owners.push(next),
            _ => break,
        }
    }

    let srvs: Vec<_> = records
        .iter()
        .filter(|rr| rr.class == CLASS_IN && owners.iter().any(|o| same_name(o, &rr.owner)))
        .filter_map(|rr| match &rr.data {
            RecordData::Srv(srv) => Some(srv),
            _ => None,
        })
        .collect();
    if srvs.is_empty() {
        return Ok(Answer::NoRecords);
    }
    if srvs.iter().all(|srv| srv.target.is_empty()) {
        return Ok(Answer::ServiceUnavailable);
    }
    let records: Vec<SrvRecord> = srvs
        .iter()
        .filter_map(|srv| {
            Some(SrvRecord {
                priority: srv.priority,
                weight: srv.weight,
                port: srv.port,
                target: host_name(&srv.target)?,
            })
        })
        .collect();
    if records.is_empty() {
        Ok(Answer::NoRecords)
    } else {
        Ok(Answer::Records(records))
    }
}

/// A name as its labels.
type Labels = Vec<Vec<u8>>;

/// One resource record of a reply, as far as it matters here.
struct Record {
    owner: Labels,
    class: u16,
    data: RecordData,
}

enum RecordData {
    Cname(Labels),
    Srv(Srv),
    Other,
}

struct Srv {
    priority: u16,
    weight: u16,
    port: u16,
    target: Labels,
}

fn read_u16(packet: &[u8], at: usize) -> Option<u16> {
    let bytes = packet.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

/// The record at `at` and where the next one starts.
fn read_record(packet: &[u8], at: usize) -> Result<(Record, usize), ReplyError> {
    let (owner, pos) = read_name(packet, at)?;
    let field = |i: usize| read_u16(packet, pos + i).ok_or(ReplyError::Malformed);
    let (kind, class, rdlength) = (field(0)?, field(2)?, usize::from(field(8)?));
    let start = pos + 10;
    let end = start + rdlength;
    let rdata = packet.get(start..end).ok_or(ReplyError::Malformed)?;
    let data = match kind {
        TYPE_CNAME => {
            let (target, next) = read_name(packet, start)?;
            if next != end {
                return Err(ReplyError::Malformed);
            }
            RecordData::Cname(target)
        }
        TYPE_SRV => {
            let number = |i: usize| read_u16(rdata, i).ok_or(ReplyError::Malformed);
            let (target, next) = read_name(packet, start + 6)?;
            if next != end {
                return Err(ReplyError::Malformed);
            }
            RecordData::Srv(Srv {
                priority: number(0)?,
                weight: number(2)?,
                port: number(4)?,
                target,
            })
        }
        _ => RecordData::Other,
    };
    Ok((Record { owner, class, data }, end))
}

/// The name at `at`, following compression pointers (RFC 1035 §4.1.4), and where the bytes
/// after it start.
fn read_name(packet: &[u8], at: usize) -> Result<(Labels, usize), ReplyError> {
    let mut labels = Vec::new();
    let mut wire_len = 1;
    let mut pos = at;
    let mut after = None;
    let mut pointers = 0;
    loop {
        let len = *packet.get(pos).ok_or(ReplyError::Malformed)?;
        match len {
            0 => return Ok((labels, after.unwrap_or(pos + 1))),
            1..=63 => {
                let label = packet
                    .get(pos + 1..pos + 1 + usize::from(len))
                    .ok_or(ReplyError::Malformed)?;
                wire_len += 1 + usize::from(len);
                if wire_len > MAX_NAME_WIRE_LEN {
                    return Err(ReplyError::Malformed);
                }
                labels.push(label.to_vec());
                pos += 1 + usize::from(len);
            }
            0xc0..=0xff => {
                let target = read_u16(packet, pos).ok_or(ReplyError::Malformed)? & 0x3fff;
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(ReplyError::Malformed);
                }
                after.get_or_insert(pos + 2);
                pos = usize::from(target);
            }
            _ => return Err(ReplyError::Malformed),
        }
    }
}

/// `name` (text, an optional root dot) as labels.
fn wire_name(name: &str) -> Option<Labels> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    bare.split('.')
        .map(|l| (!l.is_empty() && l.len() <= MAX_LABEL_LEN).then(|| l.as_bytes().to_vec()))
        .collect()
}

/// Names compare without regard to ASCII case (RFC 4343).
fn same_name(a: &Labels, b: &Labels) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// Orders records per RFC 2782: ascending priority, and within one priority a weighted random
/// pick, repeated until the group is used up. `random(n)` returns a uniform value in `0..=n`.
/// At most [`MAX_TARGETS`] targets are returned.
pub fn order(mut records: Vec<SrvRecord>, mut random: impl FnMut(u32) -> u32) -> Vec<Target> {
    records.sort_by_key(|record| record.priority);
    let mut targets = Vec::with_capacity(records.len().min(MAX_TARGETS));
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let end = rest
            .iter()
            .position(|record| record.priority != first.priority)
            .unwrap_or(rest.len());
        let (group, tail) = rest.split_at(end);
        rest = tail;
        let mut group: Vec<&SrvRecord> = group.iter().collect();
        // RFC 2782 puts the zero-weight records first so they are picked only rarely.
        group.sort_by_key(|record| record.weight != 0);
        while !group.is_empty() {
            if targets.len() == MAX_TARGETS {
                return targets;
            }
            let total = group
                .iter()
                .fold(0u32, |sum, record| sum.saturating_add(record.weight.into()));
            let pick = random(total).min(total);
            let mut running = 0u32;
            let index = group
                .iter()
                .position(|record| {
                    running = running.saturating_add(record.weight.into());
                    running >= pick
                })
                .unwrap_or(0);
            let chosen = group.remove(index);
            targets.push(Target {
                host: chosen.target.clone(),
                port: chosen.port,
            });
        }
    }
    targets
}

/// The targets for `domain`, using the nameservers of `/etc/resolv.conf` (127.0.0.1 if none).
pub async fn srv_targets(domain: &str, service: Service) -> Result<Vec<Target>, ResolveError> {
    let conf = smol::unblock(read_resolv_conf).await;
    srv_targets_with(domain, service, &parse_resolv_conf(&conf)).await
}

/// The targets for `domain`, asking the given nameservers (at most [`MAX_NAMESERVERS`]; none means
/// 127.0.0.1) over UDP, and over TCP when a reply is truncated. Without SRV records, or when no
/// nameserver answers, the result is the domain itself on the service's default port; an IP
/// literal domain is used as is without a lookup.
pub async fn srv_targets_with(
    domain: &str,
    service: Service,
    nameservers: &[SocketAddr],
) -> Result<Vec<Target>, ResolveError> {
    if let Some(ip) = ip_literal(domain) {
        return Ok(vec![Target {
            host: ip.to_string(),
            port: service.default_port(),
        }]);
    }
    let name = srv_name(domain, service)?;
    let fallback = vec![Target {
        host: checked_domain(domain)?.to_owned(),
        port: service.default_port(),
    }];
    let local = [SocketAddr::new(Ipv4Addr::LOCALHOST.into(), DNS_PORT)];
    let servers = match nameservers {
        [] => &local[..],
        _ => &nameservers[..nameservers.len().min(MAX_NAMESERVERS)],
    };
    let rng = SystemRandom::new();
    for _ in 0..ATTEMPTS {
        for &server in servers {
            let mut id = [0u8; 2];
            rng.fill(&mut id).map_err(|_| ResolveError::Random)?;
            let id = u16::from_be_bytes(id);
            let query = build_query(id, &name)?;
            match ask(server, id, &name, &query).await {
                Some(Answer::Records(records)) => {
                    return Ok(order(records, |max| random_up_to(&rng, max)))
                }
                Some(Answer::NoRecords) => return Ok(fallback),
                Some(Answer::ServiceUnavailable) => {
                    return Err(ResolveError::ServiceUnavailable {
                        domain: domain.to_owned(),
                        service,
                    })
                }
                None => {}
            }
        }
    }
    Ok(fallback)
}

/// The IPv4 and IPv6 addresses of a target through the system resolver (on smol's blocking
/// pool), at most [`MAX_ADDRESSES`], in the resolver's preference order.
pub async fn socket_addrs(target: &Target) -> Result<Vec<SocketAddr>, ResolveError> {
    let mut addrs = smol::net::resolve((target.host.as_str(), target.port))
        .await
        .map_err(|source| ResolveError::Lookup {
            host: target.host.clone(),
            source,
        })?;
    addrs.truncate(MAX_ADDRESSES);
    if addrs.is_empty() {
        return Err(ResolveError::NoAddresses {
            host: target.host.clone(),
        });
    }
    Ok(addrs)
}

/// The domain without a root dot, if it is a plain ASCII host name DNS can carry.
fn checked_domain(domain: &str) -> Result<&str, ResolveError> {
    let bare = domain.strip_suffix('.').unwrap_or(domain);
    let valid = !bare.is_empty()
        && bare.len() <= MAX_DOMAIN_LEN
        && bare.split('.').all(|label| {
            !label.is_empty() && label.len() <= MAX_LABEL_LEN && label.bytes().all(is_host_byte)
        });
    if valid {
        Ok(bare)
    } else {
        Err(ResolveError::InvalidDomain(domain.to_owned()))
    }
}

fn is_host_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// An SRV target as text, or `None` for the root or a name no resolver could look up.
fn host_name(name: &Labels) -> Option<String> {
    let mut host = String::new();
    for label in name {
        if label.is_empty() || !label.iter().all(|&byte| is_host_byte(byte)) {
            return None;
        }
        if !host.is_empty() {
            host.push('.');
        }
        host.extend(label.iter().map(|&byte| char::from(byte)));
    }
    (!host.is_empty()).then_some(host)
}

/// An IP address written as the domain (`192.0.2.1`, `[2001:db8::1]` or `2001:db8::1`).
fn ip_literal(domain: &str) -> Option<IpAddr> {
    let bare = domain
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(domain);
    bare.parse().ok()
}

/// Rejects section counts the packet is too short to hold, so a forged header cannot make the
/// parser reserve room for tens of thousands of records.
fn check_section_counts(reply: &[u8]) -> Result<(), ReplyError> {
    let count = |i: usize| {
        read_u16(reply, 2 * i)
            .map(usize::from)
            .ok_or(ReplyError::Malformed)
    };
    let records = count(3)? + count(4)? + count(5)?;
    let least = HEADER_LEN + count(2)? * MIN_QUESTION_LEN + records * MIN_RECORD_LEN;
    if least > reply.len() {
        return Err(ReplyError::Malformed);
    }
    Ok(())
}

/// A uniform-enough value in `0..=max` for load balancing; 0 if the generator fails.
fn random_up_to(rng: &SystemRandom, max: u32) -> u32 {
    let mut bytes = [0u8; 4];
    if rng.fill(&mut bytes).is_err() {
        return 0;
    }
    let value = u32::from_be_bytes(bytes);
    match max.checked_add(1) {
        Some(range) => value % range,
        None => value,
    }
}

fn read_resolv_conf() -> String {
    let mut bytes = Vec::new();
    // A missing or unreadable file means no nameservers, as for the C library.
    if let Ok(file) = std::fs::File::open(RESOLV_CONF) {
        let _ = file.take(MAX_RESOLV_CONF_BYTES).read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// How one UDP exchange ended.
enum Exchange {
    Answered(Answer),
    Truncated,
    Failed,
}

/// One nameserver's answer, or `None` if it gave none in time.
async fn ask(server: SocketAddr, id: u16, name: &str, query: &[u8]) -> Option<Answer> {
    match super::timeout(ATTEMPT_TIMEOUT, ask_udp(server, id, name, query)).await? {
        Exchange::Answered(answer) => Some(answer),
        Exchange::Truncated => super::timeout(ATTEMPT_TIMEOUT, ask_tcp(server, id, name, query))
            .await
            .flatten(),
        Exchange::Failed => None,
    }
}

/// Sends the query over UDP and waits for its reply. The socket is connected, so the kernel
/// drops datagrams from any other address; packets with another id or question are skipped.
async fn ask_udp(server: SocketAddr, id: u16, name: &str, query: &[u8]) -> Exchange {
    let local = match server {
        SocketAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        SocketAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
    };
    let Ok(socket) = UdpSocket::bind(local).await else {
        return Exchange::Failed;
    };
    if socket.connect(server).await.is_err() || socket.send(query).await.is_err() {
        return Exchange::Failed;
    }
    let mut buffer = vec![0u8; UDP_BUFFER];
    loop {
        // A refused port (ICMP unreachable) ends the exchange here instead of at the timeout.
        let Ok(len) = socket.recv(&mut buffer).await else {
            return Exchange::Failed;
        };
        match parse_reply(id, name, buffer.get(..len).unwrap_or_default()) {
            Ok(answer) => return Exchange::Answered(answer),
            Err(ReplyError::Truncated) => return Exchange::Truncated,
            Err(ReplyError::ServerError(_)) => return Exchange::Failed,
            Err(_) => {}
        }
    }
}

/// The query again over TCP (RFC 1035 §4.2.2 framing), for a reply too long for UDP.
async fn ask_tcp(server: SocketAddr, id: u16, name: &str, query: &[u8]) -> Option<Answer> {
    let length = u16::try_from(query.len()).ok()?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(query);
    let mut stream = TcpStream::connect(server).await.ok()?;
    stream.write_all(&framed).await.ok()?;
    let mut length = [0u8; 2];
    stream.read_exact(&mut length).await.ok()?;
    let length = usize::from(u16::from_be_bytes(length));
    if length > MAX_TCP_REPLY {
        return None;
    }
    let mut reply = vec![0u8; length];
    stream.read_exact(&mut reply).await.ok()?;
    parse_reply(id, name, &reply).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::rdata::{RData, CNAME, SRV};
    use simple_dns::{Name, Packet, PacketFlag, Question, ResourceRecord};
    use simple_dns::{CLASS, QCLASS, QTYPE, RCODE, TYPE};
    use smol::future::FutureExt;
    use smol::net::TcpListener;

    const NAME: &str = "_xmpp-client._tcp.example.org";

    fn srv(
        owner: &str,
        priority: u16,
        weight: u16,
        port: u16,
        target: &str,
    ) -> ResourceRecord<'static> {
        ResourceRecord::new(
            Name::new(owner).unwrap().into_owned(),
            CLASS::IN,
            300,
            RData::SRV(SRV {
                priority,
                weight,
                port,
                target: Name::new(target).unwrap().into_owned(),
            }),
        )
    }

    fn reply<'a>(
        id: u16,
        qname: &'a str,
        qtype: TYPE,
        answers: Vec<ResourceRecord<'a>>,
    ) -> Packet<'a> {
        let mut packet = Packet::new_reply(id);
        packet.set_flags(PacketFlag::RECURSION_DESIRED | PacketFlag::RECURSION_AVAILABLE);
        packet.questions.push(Question::new(
            Name::new(qname).unwrap(),
            qtype.into(),
            CLASS::IN.into(),
            false,
        ));
        packet.answers = answers;
        packet
    }

    fn bytes(packet: &Packet<'_>) -> Vec<u8> {
        packet.build_bytes_vec_compressed().unwrap()
    }

    fn record(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 5222,
            target: target.to_owned(),
        }
    }

    fn hosts(targets: &[Target]) -> Vec<&str> {
        targets.iter().map(|target| target.host.as_str()).collect()
    }

    #[test]
    fn query_is_a_recursive_srv_question() {
        let query = build_query(0xbeef, NAME).unwrap();
        let packet = Packet::parse(&query).unwrap();
        assert_eq!(packet.id(), 0xbeef);
        assert!(packet.has_flags(PacketFlag::RECURSION_DESIRED));
        assert!(!packet.has_flags(PacketFlag::RESPONSE));
        assert_eq!(packet.questions.len(), 1);
        let question = &packet.questions[0];
        assert_eq!(question.qname.to_string(), NAME);
        assert_eq!(question.qtype, QTYPE::TYPE(TYPE::SRV));
        assert_eq!(question.qclass, QCLASS::CLASS(CLASS::IN));
    }

    #[test]
    fn a_name_whose_pointers_loop_is_malformed() {
        let mut reply = build_query(7, NAME).unwrap();
        reply[2] |= 0x80; // a response
        reply[7] = 1; // one answer
                      // Its owner name points at itself.
        let at = u16::try_from(reply.len()).unwrap() | 0xc000;
        reply.extend_from_slice(&at.to_be_bytes());
        reply.extend_from_slice(&[0, 33, 0, 1, 0, 0, 0, 60, 0, 0]);
        assert_eq!(parse_reply(7, NAME, &reply), Err(ReplyError::Malformed));
    }

    #[test]
    fn a_pointer_past_the_end_and_a_short_record_are_malformed() {
        let mut reply = build_query(7, NAME).unwrap();
        reply[2] |= 0x80;
        reply[7] = 1;
        let mut past = reply.clone();
        past.extend_from_slice(&[0xff, 0xff, 0, 33, 0, 1, 0, 0, 0, 60, 0, 0]);
        assert_eq!(parse_reply(7, NAME, &past), Err(ReplyError::Malformed));
        // An SRV record whose data is shorter than priority, weight and port.
        reply.extend_from_slice(&[0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60, 0, 3, 0, 1, 0]);
        assert_eq!(parse_reply(7, NAME, &reply), Err(ReplyError::Malformed));
    }

    #[test]
    fn a_server_error_is_named_by_its_code() {
        assert_eq!(
            ReplyError::ServerError(2).to_string(),
            "the nameserver answered SERVFAIL (RCODE 2)"
        );
    }

    #[test]
    fn srv_names_and_domains() {
        assert_eq!(
            srv_name("example.org.", Service::DirectTls).unwrap(),
            "_xmpps-client._tcp.example.org"
        );
        for bad in [
            "",
            ".",
            "a..b",
            "exämple.org",
            "a b.org",
            &"a".repeat(64),
            &"ab.".repeat(90),
        ] {
            assert!(
                matches!(
                    srv_name(bad, Service::StartTls),
                    Err(ResolveError::InvalidDomain(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            build_query(1, &"a.".repeat(130)),
            Err(ResolveError::InvalidDomain(_))
        ));
    }

    #[test]
    fn every_mutation_and_cut_of_a_reply_is_answered_without_panic() {
        let whole = bytes(&reply(
            7,
            NAME,
            TYPE::SRV,
            vec![
                srv(NAME, 10, 60, 5222, "a.example.org"),
                srv(NAME, 5, 0, 5222, "b.example.org"),
            ],
        ));
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for cut in 0..whole.len() {
            let _ = parse_reply(7, NAME, &whole[..cut]);
        }
        for _ in 0..20_000 {
            let mut m = whole.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % m.len();
                m[i] = (x >> 32) as u8;
            }
            let _ = parse_reply(7, NAME, &m);
        }
    }

    #[test]
    fn reply_with_several_records() {
        let packet = reply(
            7,
            NAME,
            TYPE::SRV,
            vec![
                srv(NAME, 10, 60, 5222, "a.example.org"),
                srv(NAME, 10, 40, 5223, "b.example.org."),
                srv(NAME, 5, 0, 5222, "C.Example.org"),
            ],
        );
        assert_eq!(
            parse_reply(7, NAME, &bytes(&packet)),
            Ok(Answer::Records(vec![
                SrvRecord {
                    priority: 10,
                    weight: 60,
                    port: 5222,
                    target: "a.example.org".into()
                },
                SrvRecord {
                    priority: 10,
                    weight: 40,
                    port: 5223,
                    target: "b.example.org".into()
                },
                SrvRecord {
                    priority: 5,
                    weight: 0,
                    port: 5222,
                    target: "C.Example.org".into()
                },
            ]))
        );
    }

    #[test]
    fn question_matches_without_regard_to_case() {
        let packet = reply(
            7,
            "_XMPP-Client._TCP.Example.ORG",
            TYPE::SRV,
            vec![srv(NAME, 0, 0, 1, "x.org")],
        );
        assert!(matches!(
            parse_reply(7, NAME, &bytes(&packet)),
            Ok(Answer::Records(_))
        ));
    }

    #[test]
    fn nxdomain_and_nodata_mean_no_records() {
        let mut nxdomain = reply(7, NAME, TYPE::SRV, vec![]);
        *nxdomain.rcode_mut() = RCODE::NameError;
        assert_eq!(
            parse_reply(7, NAME, &bytes(&nxdomain)),
            Ok(Answer::NoRecords)
        );
        let nodata = reply(7, NAME, TYPE::SRV, vec![]);
        assert_eq!(parse_reply(7, NAME, &bytes(&nodata)), Ok(Answer::NoRecords));
        let other_owner = reply(
            7,
            NAME,
            TYPE::SRV,
            vec![srv("example.org", 0, 0, 1, "x.org")],
        );
        assert_eq!(
            parse_reply(7, NAME, &bytes(&other_owner)),
            Ok(Answer::NoRecords)
        );
        let unusable = reply(7, NAME, TYPE::SRV, vec![srv(NAME, 0, 0, 1, "bad host.org")]);
        assert_eq!(
            parse_reply(7, NAME, &bytes(&unusable)),
            Ok(Answer::NoRecords)
        );
    }

    #[test]
    fn root_target_means_service_unavailable() {
        let packet = reply(7, NAME, TYPE::SRV, vec![srv(NAME, 0, 0, 0, ".")]);
        assert_eq!(
            parse_reply(7, NAME, &bytes(&packet)),
            Ok(Answer::ServiceUnavailable)
        );
        let mixed = reply(
            7,
            NAME,
            TYPE::SRV,
            vec![srv(NAME, 0, 0, 0, "."), srv(NAME, 1, 0, 5222, "x.org")],
        );
        assert_eq!(
            parse_reply(7, NAME, &bytes(&mixed)),
            Ok(Answer::Records(vec![SrvRecord {
                priority: 1,
                weight: 0,
                port: 5222,
                target: "x.org".into()
            }]))
        );
    }

    #[test]
    fn records_behind_a_cname_count() {
        let cname = ResourceRecord::new(
            Name::new(NAME).unwrap(),
            CLASS::IN,
            300,
            RData::CNAME(CNAME(Name::new("srv.example.net").unwrap())),
        );
        let packet = reply(
            7,
            NAME,
            TYPE::SRV,
            vec![
                cname,
                srv("srv.example.net", 0, 0, 5222, "x.org"),
                srv("elsewhere.org", 0, 0, 1, "y.org"),
            ],
        );
        assert_eq!(
            parse_reply(7, NAME, &bytes(&packet)),
            Ok(Answer::Records(vec![record(0, 0, "x.org")]))
        );
    }

    #[test]
    fn mismatching_and_broken_packets_are_typed_errors() {
        let good = reply(7, NAME, TYPE::SRV, vec![srv(NAME, 0, 0, 1, "x.org")]);
        assert_eq!(
            parse_reply(8, NAME, &bytes(&good)),
            Err(ReplyError::WrongId)
        );
        assert_eq!(
            parse_reply(7, "_xmpp-client._tcp.example.net", &bytes(&good)),
            Err(ReplyError::WrongQuestion)
        );
        let a_question = reply(7, NAME, TYPE::A, vec![]);
        assert_eq!(
            parse_reply(7, NAME, &bytes(&a_question)),
            Err(ReplyError::WrongQuestion)
        );
        let query = build_query(7, NAME).unwrap();
        assert_eq!(parse_reply(7, NAME, &query), Err(ReplyError::NotAReply));

        let mut truncated = good.clone();
        truncated.set_flags(PacketFlag::TRUNCATION);
        assert_eq!(
            parse_reply(7, NAME, &bytes(&truncated)),
            Err(ReplyError::Truncated)
        );
        let mut servfail = reply(7, NAME, TYPE::SRV, vec![]);
        *servfail.rcode_mut() = RCODE::ServerFailure;
        assert_eq!(
            parse_reply(7, NAME, &bytes(&servfail)),
            Err(ReplyError::ServerError(2))
        );

        assert_eq!(parse_reply(7, NAME, &[]), Err(ReplyError::Malformed));
        assert_eq!(
            parse_reply(7, NAME, &[0, 7, 0x80]),
            Err(ReplyError::Malformed)
        );
        // A header that claims 65535 answers in a 12-byte packet.
        let forged = [0, 7, 0x81, 0x80, 0, 1, 0xff, 0xff, 0, 0, 0, 0];
        assert_eq!(parse_reply(7, NAME, &forged), Err(ReplyError::Malformed));
        let mut garbage = vec![0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        garbage.extend((0..64u8).map(|i| i.wrapping_mul(37)));
        assert_eq!(parse_reply(7, NAME, &garbage), Err(ReplyError::Malformed));

        let full = bytes(&good);
        for len in 0..full.len() {
            assert!(
                parse_reply(7, NAME, &full[..len]).is_err(),
                "prefix of {len} bytes"
            );
        }
        let mut flipped = full.clone();
        for i in 2..flipped.len() {
            for bit in 0..8 {
                flipped[i] ^= 1 << bit;
                let _ = parse_reply(7, NAME, &flipped);
                flipped[i] ^= 1 << bit;
            }
        }
    }

    #[test]
    fn resolv_conf_nameservers() {
        let conf = "# written by dhcpcd\n\
                    search lan example.org\n\
                    options ndots:2 timeout:1\n\
                    nameserver 192.0.2.1 # first\n\
                    ;nameserver 192.0.2.99\n\
                    nameserver\n\
                    nameserver not-an-address\n\
                    nameserver fe80::1%eth0\n\
                    \tnameserver   2001:db8::53\n\
                    nameserver 192.0.2.3;comment\n\
                    nameserver 192.0.2.4\n";
        assert_eq!(
            parse_resolv_conf(conf),
            vec![
                "192.0.2.1:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap(),
                "192.0.2.3:53".parse().unwrap(),
            ]
        );
        assert!(parse_resolv_conf("").is_empty());
        assert!(parse_resolv_conf("domain lan\n").is_empty());
    }

    #[test]
    fn order_by_priority_then_weight() {
        let records = vec![
            record(20, 0, "late"),
            record(10, 60, "sixty"),
            record(10, 40, "forty"),
            record(10, 0, "zero"),
        ];
        // The lowest draw picks the zero-weight record, which RFC 2782 puts first.
        assert_eq!(
            hosts(&order(records.clone(), |_| 0)),
            ["zero", "sixty", "forty", "late"]
        );
        // The highest draw picks the last of the running sums.
        assert_eq!(
            hosts(&order(records.clone(), |max| max)),
            ["forty", "sixty", "zero", "late"]
        );
        // Draw 61 of 0..=100 lands in forty's share (running sums 0, 60, 100).
        let mut draws = vec![61, 1, 0, 0].into_iter();
        assert_eq!(
            hosts(&order(records, |_| draws.next().unwrap())),
            ["forty", "sixty", "zero", "late"]
        );
        let mut seen = Vec::new();
        let _ = order(
            vec![record(0, 3, "a"), record(0, 0, "b"), record(0, 5, "c")],
            |max| {
                seen.push(max);
                0
            },
        );
        assert_eq!(seen, [8, 8, 5]);
    }

    #[test]
    fn order_keeps_at_most_max_targets() {
        let records: Vec<_> = (0..40)
            .map(|i| record(i % 3, 1, &format!("h{i}")))
            .collect();
        let targets = order(records, |_| 0);
        assert_eq!(targets.len(), MAX_TARGETS);
        assert!(targets.iter().all(|target| target.host.starts_with('h')));
        assert_eq!(order(Vec::new(), |_| 0), Vec::new());
    }

    #[test]
    fn target_display() {
        let v6 = Target {
            host: "2001:db8::1".into(),
            port: 5222,
        };
        assert_eq!(v6.to_string(), "[2001:db8::1]:5222");
        let name = Target {
            host: "xmpp.example.org".into(),
            port: 5223,
        };
        assert_eq!(name.to_string(), "xmpp.example.org:5223");
    }

    /// A nameserver on 127.0.0.1 answering each query with what `respond` returns for its id and
    /// name, over UDP and, on the same port, over TCP.
    fn nameserver<F>(respond: F) -> (SocketAddr, smol::Task<()>)
    where
        F: Fn(u16, &str, bool) -> Vec<Vec<u8>> + Send + Sync + 'static,
    {
        let udp = smol::block_on(UdpSocket::bind("127.0.0.1:0")).unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = smol::block_on(TcpListener::bind(addr)).unwrap();
        let respond = std::sync::Arc::new(respond);
        let tcp_respond = respond.clone();
        let task = smol::spawn(async move {
            let udp_loop = async {
                let mut buffer = [0u8; 512];
                loop {
                    let (len, peer) = udp.recv_from(&mut buffer).await.unwrap();
                    let query = Packet::parse(&buffer[..len]).unwrap();
                    let name = query.questions[0].qname.to_string();
                    for datagram in respond(query.id(), &name, false) {
                        udp.send_to(&datagram, peer).await.unwrap();
                    }
                }
            };
            let tcp_loop = async {
                loop {
                    let (mut stream, _) = tcp.accept().await.unwrap();
                    let mut length = [0u8; 2];
                    stream.read_exact(&mut length).await.unwrap();
                    let mut query = vec![0u8; usize::from(u16::from_be_bytes(length))];
                    stream.read_exact(&mut query).await.unwrap();
                    let query = Packet::parse(&query).unwrap();
                    let name = query.questions[0].qname.to_string();
                    for message in tcp_respond(query.id(), &name, true) {
                        let length = u16::try_from(message.len()).unwrap().to_be_bytes();
                        stream.write_all(&length).await.unwrap();
                        stream.write_all(&message).await.unwrap();
                    }
                }
            };
            udp_loop.or(tcp_loop).await
        });
        (addr, task)
    }

    /// An address where nothing listens: queries to it are refused at once.
    fn closed_port() -> SocketAddr {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    }

    fn two_targets(id: u16, name: &str) -> Vec<u8> {
        bytes(&reply(
            id,
            name,
            TYPE::SRV,
            vec![
                srv(name, 20, 0, 5269, "backup.example.org"),
                srv(name, 10, 0, 5222, "xmpp.example.org"),
            ],
        ))
    }

    #[test]
    fn lookup_over_udp_skips_refusing_and_stray_replies() {
        let (server, _task) = nameserver(|id, name, _| {
            let stray = bytes(&reply(id.wrapping_add(1), name, TYPE::SRV, vec![]));
            let other_question = bytes(&reply(
                id,
                "_xmpp-client._tcp.example.net",
                TYPE::SRV,
                vec![],
            ));
            vec![
                b"garbage".to_vec(),
                stray,
                other_question,
                two_targets(id, name),
            ]
        });
        let targets = smol::block_on(srv_targets_with(
            "example.org",
            Service::StartTls,
            &[closed_port(), server],
        ))
        .unwrap();
        assert_eq!(
            targets,
            [
                Target {
                    host: "xmpp.example.org".into(),
                    port: 5222
                },
                Target {
                    host: "backup.example.org".into(),
                    port: 5269
                },
            ]
        );
    }

    #[test]
    fn truncated_reply_is_retried_over_tcp() {
        let (server, _task) = nameserver(|id, name, tcp| {
            if tcp {
                vec![two_targets(id, name)]
            } else {
                let mut truncated = reply(id, name, TYPE::SRV, vec![]);
                truncated.set_flags(PacketFlag::TRUNCATION);
                vec![bytes(&truncated)]
            }
        });
        let targets = smol::block_on(srv_targets_with(
            "example.org",
            Service::StartTls,
            &[server],
        ))
        .unwrap();
        assert_eq!(hosts(&targets), ["xmpp.example.org", "backup.example.org"]);
    }

    #[test]
    fn no_records_or_no_answer_fall_back_to_the_domain() {
        let (server, _task) = nameserver(|id, name, _| {
            assert_eq!(name, "_xmpps-client._tcp.example.org");
            let mut nxdomain = reply(id, name, TYPE::SRV, vec![]);
            *nxdomain.rcode_mut() = RCODE::NameError;
            vec![bytes(&nxdomain)]
        });
        let fallback = vec![Target {
            host: "example.org".into(),
            port: 5223,
        }];
        let targets = smol::block_on(srv_targets_with(
            "example.org.",
            Service::DirectTls,
            &[server],
        ))
        .unwrap();
        assert_eq!(targets, fallback);
        let unanswered = smol::block_on(srv_targets_with(
            "example.org",
            Service::DirectTls,
            &[closed_port()],
        ))
        .unwrap();
        assert_eq!(unanswered, fallback);
    }

    #[test]
    fn root_target_is_an_error() {
        let (server, _task) = nameserver(|id, name, _| {
            vec![bytes(&reply(
                id,
                name,
                TYPE::SRV,
                vec![srv(name, 0, 0, 0, ".")],
            ))]
        });
        let error = smol::block_on(srv_targets_with(
            "example.org",
            Service::StartTls,
            &[server],
        ))
        .unwrap_err();
        assert!(matches!(
            error,
            ResolveError::ServiceUnavailable {
                service: Service::StartTls,
                ..
            }
        ));
        assert_eq!(
            error.to_string(),
            "example.org says in DNS that it offers no _xmpp-client._tcp service (SRV target \".\")"
        );
    }

    #[test]
    fn ip_literals_and_bad_domains_skip_dns() {
        let none: &[SocketAddr] = &[];
        let v4 = smol::block_on(srv_targets_with("192.0.2.7", Service::StartTls, none)).unwrap();
        assert_eq!(
            v4,
            [Target {
                host: "192.0.2.7".into(),
                port: 5222
            }]
        );
        let v6 =
            smol::block_on(srv_targets_with("[2001:db8::7]", Service::DirectTls, none)).unwrap();
        assert_eq!(
            v6,
            [Target {
                host: "2001:db8::7".into(),
                port: 5223
            }]
        );
        let bad =
            smol::block_on(srv_targets_with("bad domain", Service::StartTls, none)).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "\"bad domain\" is not a domain name that DNS can look up"
        );
    }

    #[test]
    fn socket_addrs_of_an_address_literal() {
        let target = Target {
            host: "127.0.0.1".into(),
            port: 5222,
        };
        assert_eq!(
            smol::block_on(socket_addrs(&target)).unwrap(),
            ["127.0.0.1:5222".parse::<SocketAddr>().unwrap()]
        );
    }
}
