//! The DNS messages of the SRV lookup (RFC 1035 §4, RFC 2782), without I/O: the query for a
//! domain's XMPP service ([`srv_name`], [`build_query`]), the reading of a reply
//! ([`parse_reply`]) and the order in which its targets are tried ([`order`]). The shell that
//! sends the query and reads the address lists is `net::resolve`.
//!
//! The messages are written and read here rather than with a DNS crate: one question type and
//! two record types (SRV, CNAME) need about 150 lines, where a general DNS library cost some
//! 25 kB of every binary, which the aarch64 size budget did not have.

use std::fmt;

/// Most targets kept from one SRV answer; more would only lengthen a failing connect loop.
pub const MAX_TARGETS: usize = 16;
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
            Self::StartTls => "_xmpp-client._tcp",
            Self::DirectTls => "_xmpps-client._tcp",
        }
    }

    /// The port used when the domain publishes no SRV records.
    pub fn default_port(self) -> u16 {
        match self {
            Self::StartTls => 5222,
            Self::DirectTls => 5223,
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
            Self::Malformed => f.write_str("the DNS reply is malformed"),
            Self::WrongId => f.write_str("the DNS reply carries another query's id"),
            Self::NotAReply => f.write_str("the DNS packet is a query, not a reply"),
            Self::WrongQuestion => f.write_str("the DNS reply answers another question"),
            Self::Truncated => f.write_str("the DNS reply is truncated"),
            Self::ServerError(code) => {
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

/// A domain DNS cannot carry: empty, too long, or not an ASCII host name (internationalized
/// domains must be given in their `xn--` form). Holds the name as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDomain(pub String);

impl fmt::Display for InvalidDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a domain name that DNS can look up", self.0)
    }
}

impl std::error::Error for InvalidDomain {}

/// The SRV name looked up for a domain: absolute, so no search domains apply.
pub fn srv_name(domain: &str, service: Service) -> Result<String, InvalidDomain> {
    Ok(format!(
        "{}.{}",
        service.srv_prefix(),
        checked_domain(domain)?
    ))
}

/// A recursive (RD) query for the SRV records of `name`, class IN.
pub fn build_query(id: u16, name: &str) -> Result<Vec<u8>, InvalidDomain> {
    let invalid = || InvalidDomain(name.to_owned());
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

/// The domain without a root dot, if it is a plain ASCII host name DNS can carry.
pub fn checked_domain(domain: &str) -> Result<&str, InvalidDomain> {
    let bare = domain.strip_suffix('.').unwrap_or(domain);
    let valid = !bare.is_empty()
        && bare.len() <= MAX_DOMAIN_LEN
        && bare.split('.').all(|label| {
            !label.is_empty() && label.len() <= MAX_LABEL_LEN && label.bytes().all(is_host_byte)
        });
    if valid {
        Ok(bare)
    } else {
        Err(InvalidDomain(domain.to_owned()))
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

/// Replies built with simple-dns, an implementation other than the one under test; the
/// exchange tests of `net::resolve` serve them from a local nameserver.
#[cfg(test)]
pub(crate) mod test_replies {
    use super::Target;
    use simple_dns::rdata::{RData, SRV};
    use simple_dns::{Name, Packet, PacketFlag, Question, ResourceRecord, CLASS, TYPE};

    /// The SRV name of the StartTls service of example.org.
    pub(crate) const NAME: &str = "_xmpp-client._tcp.example.org";

    /// An SRV record of `owner`.
    pub(crate) fn srv(
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

    /// A recursive reply with id `id` to the question (`qname`, `qtype`, IN).
    pub(crate) fn reply<'a>(
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

    /// The packet on the wire, names compressed.
    pub(crate) fn bytes(packet: &Packet<'_>) -> Vec<u8> {
        packet.build_bytes_vec_compressed().unwrap()
    }

    /// The hosts of `targets`, in order.
    pub(crate) fn hosts(targets: &[Target]) -> Vec<&str> {
        targets.iter().map(|target| target.host.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_replies::{bytes, hosts, reply, srv, NAME};
    use super::*;
    use simple_dns::rdata::{RData, CNAME};
    use simple_dns::{Name, Packet, PacketFlag, ResourceRecord};
    use simple_dns::{CLASS, QCLASS, QTYPE, RCODE, TYPE};

    fn record(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 5222,
            target: target.to_owned(),
        }
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

    /// A reply to `build_query(7, NAME)` announcing one answer, which the caller appends.
    fn reply_with_one_answer_to_come() -> Vec<u8> {
        let mut reply = build_query(7, NAME).unwrap();
        reply[2] |= 0x80; // a response
        reply[7] = 1; // one answer
        reply
    }

    #[test]
    fn a_name_whose_pointers_loop_is_malformed() {
        let mut reply = reply_with_one_answer_to_come();
        // Its owner name points at itself.
        let at = u16::try_from(reply.len()).unwrap() | 0xc000;
        reply.extend_from_slice(&at.to_be_bytes());
        reply.extend_from_slice(&[0, 33, 0, 1, 0, 0, 0, 60, 0, 0]);
        assert_eq!(parse_reply(7, NAME, &reply), Err(ReplyError::Malformed));
    }

    #[test]
    fn a_pointer_past_the_end_is_malformed() {
        let mut past = reply_with_one_answer_to_come();
        past.extend_from_slice(&[0xff, 0xff, 0, 33, 0, 1, 0, 0, 0, 60, 0, 0]);
        assert_eq!(parse_reply(7, NAME, &past), Err(ReplyError::Malformed));
    }

    #[test]
    fn an_srv_record_shorter_than_its_numbers_is_malformed() {
        let mut reply = reply_with_one_answer_to_come();
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
    fn srv_name_prefixes_the_service_and_drops_the_root_dot() {
        assert_eq!(
            srv_name("example.org.", Service::DirectTls).unwrap(),
            "_xmpps-client._tcp.example.org"
        );
    }

    #[test]
    fn srv_name_refuses_domains_dns_cannot_carry() {
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
                matches!(srv_name(bad, Service::StartTls), Err(InvalidDomain(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn query_for_a_name_over_255_bytes_on_the_wire_is_refused() {
        assert!(matches!(
            build_query(1, &"a.".repeat(130)),
            Err(InvalidDomain(_))
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
    fn every_record_of_a_reply_is_returned_in_reply_order_without_the_root_dot() {
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
    fn nxdomain_means_no_records() {
        let mut nxdomain = reply(7, NAME, TYPE::SRV, vec![]);
        *nxdomain.rcode_mut() = RCODE::NameError;
        assert_eq!(
            parse_reply(7, NAME, &bytes(&nxdomain)),
            Ok(Answer::NoRecords)
        );
    }

    #[test]
    fn nodata_means_no_records() {
        let nodata = reply(7, NAME, TYPE::SRV, vec![]);
        assert_eq!(parse_reply(7, NAME, &bytes(&nodata)), Ok(Answer::NoRecords));
    }

    #[test]
    fn records_of_another_owner_mean_no_records() {
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
    }

    #[test]
    fn records_naming_no_usable_host_mean_no_records() {
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
    }

    #[test]
    fn root_target_beside_a_usable_one_is_left_out() {
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

    /// A good reply to the query `(7, NAME)`.
    fn good() -> Packet<'static> {
        reply(7, NAME, TYPE::SRV, vec![srv(NAME, 0, 0, 1, "x.org")])
    }

    #[test]
    fn reply_with_another_id_is_refused() {
        assert_eq!(
            parse_reply(8, NAME, &bytes(&good())),
            Err(ReplyError::WrongId)
        );
    }

    #[test]
    fn reply_for_another_name_answers_the_wrong_question() {
        assert_eq!(
            parse_reply(7, "_xmpp-client._tcp.example.net", &bytes(&good())),
            Err(ReplyError::WrongQuestion)
        );
    }

    #[test]
    fn reply_for_another_type_answers_the_wrong_question() {
        let a_question = reply(7, NAME, TYPE::A, vec![]);
        assert_eq!(
            parse_reply(7, NAME, &bytes(&a_question)),
            Err(ReplyError::WrongQuestion)
        );
    }

    #[test]
    fn a_query_is_not_a_reply() {
        let query = build_query(7, NAME).unwrap();
        assert_eq!(parse_reply(7, NAME, &query), Err(ReplyError::NotAReply));
    }

    #[test]
    fn truncated_reply_is_reported_for_a_retry_over_tcp() {
        let mut truncated = good();
        truncated.set_flags(PacketFlag::TRUNCATION);
        assert_eq!(
            parse_reply(7, NAME, &bytes(&truncated)),
            Err(ReplyError::Truncated)
        );
    }

    #[test]
    fn servfail_is_a_server_error_with_its_code() {
        let mut servfail = reply(7, NAME, TYPE::SRV, vec![]);
        *servfail.rcode_mut() = RCODE::ServerFailure;
        assert_eq!(
            parse_reply(7, NAME, &bytes(&servfail)),
            Err(ReplyError::ServerError(2))
        );
    }

    #[test]
    fn packets_shorter_than_a_header_are_malformed() {
        assert_eq!(parse_reply(7, NAME, &[]), Err(ReplyError::Malformed));
        assert_eq!(
            parse_reply(7, NAME, &[0, 7, 0x80]),
            Err(ReplyError::Malformed)
        );
    }

    #[test]
    fn section_counts_the_packet_cannot_hold_are_malformed() {
        // A header that claims 65535 answers in a 12-byte packet.
        let forged = [0, 7, 0x81, 0x80, 0, 1, 0xff, 0xff, 0, 0, 0, 0];
        assert_eq!(parse_reply(7, NAME, &forged), Err(ReplyError::Malformed));
    }

    #[test]
    fn garbage_after_a_header_is_malformed() {
        let mut garbage = vec![0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        garbage.extend((0..64u8).map(|i| i.wrapping_mul(37)));
        assert_eq!(parse_reply(7, NAME, &garbage), Err(ReplyError::Malformed));
    }

    #[test]
    fn every_prefix_of_a_reply_is_an_error() {
        let full = bytes(&good());
        for len in 0..full.len() {
            assert!(
                parse_reply(7, NAME, &full[..len]).is_err(),
                "prefix of {len} bytes"
            );
        }
    }

    #[test]
    fn a_reply_with_any_bit_flipped_is_read_without_panic() {
        let mut flipped = bytes(&good());
        for i in 2..flipped.len() {
            for bit in 0..8 {
                flipped[i] ^= 1 << bit;
                let _ = parse_reply(7, NAME, &flipped);
                flipped[i] ^= 1 << bit;
            }
        }
    }

    /// Priority 10 with weights 60, 40 and 0, and a later priority 20.
    fn weighted() -> Vec<SrvRecord> {
        vec![
            record(20, 0, "late"),
            record(10, 60, "sixty"),
            record(10, 40, "forty"),
            record(10, 0, "zero"),
        ]
    }

    #[test]
    fn lowest_draws_take_the_zero_weight_record_first_and_priorities_in_order() {
        // The lowest draw picks the zero-weight record, which RFC 2782 puts first.
        assert_eq!(
            hosts(&order(weighted(), |_| 0)),
            ["zero", "sixty", "forty", "late"]
        );
    }

    #[test]
    fn highest_draws_take_the_last_of_the_running_sums() {
        assert_eq!(
            hosts(&order(weighted(), |max| max)),
            ["forty", "sixty", "zero", "late"]
        );
    }

    #[test]
    fn a_draw_picks_the_record_whose_running_sum_it_reaches() {
        // Draw 61 of 0..=100 lands in forty's share (running sums 0, 60, 100).
        let mut draws = vec![61, 1, 0, 0].into_iter();
        assert_eq!(
            hosts(&order(weighted(), |_| draws.next().unwrap())),
            ["forty", "sixty", "zero", "late"]
        );
    }

    #[test]
    fn each_draw_ranges_over_the_weights_left_in_the_group() {
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
    }

    #[test]
    fn order_of_no_records_is_empty() {
        assert_eq!(order(Vec::new(), |_| 0), Vec::new());
    }

    #[test]
    fn target_with_an_ipv6_literal_displays_in_brackets() {
        let v6 = Target {
            host: "2001:db8::1".into(),
            port: 5222,
        };
        assert_eq!(v6.to_string(), "[2001:db8::1]:5222");
    }

    #[test]
    fn target_with_a_host_name_displays_as_host_colon_port() {
        let name = Target {
            host: "xmpp.example.org".into(),
            port: 5223,
        };
        assert_eq!(name.to_string(), "xmpp.example.org:5223");
    }
}
