//! Where to connect: the SRV lookup for the JID's domain (RFC 6120 §3.2, XEP-0368) through a small
//! stub resolver that asks the nameservers of `/etc/resolv.conf`, then A/AAAA for each target
//! through the system resolver.
//!
//! The messages themselves (query, reply, RFC 2782 ordering) are written and read by the pure
//! `xmpp::dns`; here are the I/O around them: reading `/etc/resolv.conf` ([`parse_resolv_conf`]
//! is pure too), the query id and the ordering's draws from the OS random generator, the UDP
//! exchange with its TCP retry, the bounded waits, and the system resolver
//! ([`srv_targets_with`], [`socket_addrs`]).

use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpStream, UdpSocket};

use crate::secret;
use crate::xmpp::dns::{
    build_query, checked_domain, order, parse_reply, srv_name, Answer, InvalidDomain, ReplyError,
    Service, Target,
};

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

/// Why no address to connect to could be found (the "DNS" step of `xrelay check`).
#[derive(Debug)]
pub enum ResolveError {
    /// The domain cannot be looked up: empty, too long, or not an ASCII host name
    /// (internationalized domains must be given in their `xn--` form).
    InvalidDomain(InvalidDomain),
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
            Self::InvalidDomain(invalid) => write!(f, "{invalid}"),
            Self::ServiceUnavailable { domain, service } => write!(
                f,
                "{domain} says in DNS that it offers no {} service (SRV target \".\")",
                service.srv_prefix()
            ),
            Self::Random => f.write_str("the system random number generator failed"),
            Self::Lookup { host, source } => write!(f, "cannot resolve {host}: {source}"),
            Self::NoAddresses { host } => write!(f, "{host} has no IPv4 or IPv6 address"),
        }
    }
}

impl std::error::Error for ResolveError {}

impl From<InvalidDomain> for ResolveError {
    fn from(invalid: InvalidDomain) -> Self {
        Self::InvalidDomain(invalid)
    }
}

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
    for _ in 0..ATTEMPTS {
        for &server in servers {
            let id = u16::from_be_bytes(secret::random().map_err(|_| ResolveError::Random)?);
            let query = build_query(id, &name)?;
            match ask(server, id, &name, &query).await {
                Some(Answer::Records(records)) => return Ok(order(records, random_up_to)),
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

/// An IP address written as the domain (`192.0.2.1`, `[2001:db8::1]` or `2001:db8::1`).
fn ip_literal(domain: &str) -> Option<IpAddr> {
    let bare = domain
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(domain);
    bare.parse().ok()
}

/// A uniform-enough value in `0..=max` for load balancing; 0 if the generator fails.
fn random_up_to(max: u32) -> u32 {
    let Ok(bytes) = secret::random() else {
        return 0;
    };
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
    use crate::xmpp::dns::test_replies::{bytes, hosts, reply, srv};
    use simple_dns::{Packet, PacketFlag, RCODE, TYPE};
    use smol::future::FutureExt;
    use smol::net::TcpListener;

    #[test]
    fn resolv_conf_gives_the_first_three_usable_nameservers() {
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
    }

    #[test]
    fn resolv_conf_without_nameserver_lines_gives_none() {
        assert!(parse_resolv_conf("").is_empty());
        assert!(parse_resolv_conf("domain lan\n").is_empty());
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

    /// The domain itself on the DirectTls default port.
    fn fallback() -> Vec<Target> {
        vec![Target {
            host: "example.org".into(),
            port: 5223,
        }]
    }

    #[test]
    fn no_records_fall_back_to_the_domain() {
        let (server, _task) = nameserver(|id, name, _| {
            assert_eq!(name, "_xmpps-client._tcp.example.org");
            let mut nxdomain = reply(id, name, TYPE::SRV, vec![]);
            *nxdomain.rcode_mut() = RCODE::NameError;
            vec![bytes(&nxdomain)]
        });
        let targets = smol::block_on(srv_targets_with(
            "example.org.",
            Service::DirectTls,
            &[server],
        ))
        .unwrap();
        assert_eq!(targets, fallback());
    }

    #[test]
    fn no_answer_falls_back_to_the_domain() {
        let unanswered = smol::block_on(srv_targets_with(
            "example.org",
            Service::DirectTls,
            &[closed_port()],
        ))
        .unwrap();
        assert_eq!(unanswered, fallback());
    }

    #[test]
    fn root_target_is_a_service_unavailable_error() {
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

    /// No nameservers: a lookup would ask 127.0.0.1.
    const NONE: &[SocketAddr] = &[];

    #[test]
    fn ipv4_literal_is_used_without_a_lookup() {
        let v4 = smol::block_on(srv_targets_with("192.0.2.7", Service::StartTls, NONE)).unwrap();
        assert_eq!(
            v4,
            [Target {
                host: "192.0.2.7".into(),
                port: 5222
            }]
        );
    }

    #[test]
    fn bracketed_ipv6_literal_is_used_without_a_lookup() {
        let v6 =
            smol::block_on(srv_targets_with("[2001:db8::7]", Service::DirectTls, NONE)).unwrap();
        assert_eq!(
            v6,
            [Target {
                host: "2001:db8::7".into(),
                port: 5223
            }]
        );
    }

    #[test]
    fn bad_domain_is_refused_without_a_lookup() {
        let bad =
            smol::block_on(srv_targets_with("bad domain", Service::StartTls, NONE)).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "\"bad domain\" is not a domain name that DNS can look up"
        );
    }

    #[test]
    fn socket_addrs_of_an_address_literal_is_that_address() {
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
