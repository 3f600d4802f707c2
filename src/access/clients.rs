//! Which HTTP clients are served (sans-I/O): the per-address limiter of failed attempts,
//! requests in flight per key, and the two checks on where a request comes from:
//! `http.allowed_hosts` (the `Host` a request names, against DNS rebinding) and whether a
//! browser sent it from another site (Basic credentials a browser remembered are then not
//! used).

use std::cell::RefCell;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Failures from one address within [`WINDOW`] before it gets 429.
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted in; a blocked address waits until it ends.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once; when full the oldest unblocked entry gives way.
pub const MAX_TRACKED: usize = 256;

/// One entry of `http.allowed_hosts`: a host name or IP literal, on any port or one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// Lower case, without a trailing dot; an IPv6 address without brackets, in its
    /// canonical form.
    host: String,
    port: Option<u16>,
}

impl AllowedHost {
    /// Read `name`, `name:port`, an IPv4 address with or without `:port`, or an IPv6
    /// address (bare, in brackets, or in brackets with `:port`). A `Host` header value is
    /// read the same way.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        const WANT: &str = "expected a host name, an IP address, or either with :port";
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self {
                host: ip.to_string(),
                port: None,
            });
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (inner, after) = rest.split_once(']').ok_or(WANT)?;
            let ip = inner.parse::<Ipv6Addr>().map_err(|_| WANT)?;
            let port = match after {
                "" => None,
                p => Some(parse_port(p.strip_prefix(':').ok_or(WANT)?).ok_or(WANT)?),
            };
            return Ok(Self {
                host: ip.to_string(),
                port,
            });
        }
        let (name, port) = match s.rsplit_once(':') {
            Some((name, p)) => (name, Some(parse_port(p).ok_or(WANT)?)),
            None => (s, None),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
        if name.is_empty() || !name.bytes().all(valid) {
            return Err(WANT);
        }
        let host = match name.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => name.to_ascii_lowercase(),
        };
        Ok(Self { host, port })
    }

    /// Whether the request's `host` (parsed with [`AllowedHost::parse`]) is this entry:
    /// the same host, and the same port when the entry names one.
    fn admits(&self, host: &Self) -> bool {
        self.host == host.host && (self.port.is_none() || self.port == host.port)
    }
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&p| p != 0)
}

/// Whether a request naming `host` (its `Host`, or the authority of an absolute-form
/// target) may be answered: always when `allowed` is empty (the option is unset),
/// otherwise only when an entry admits it, so a request without a host is refused.
pub fn host_allowed(host: Option<&str>, allowed: &[AllowedHost]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    host.and_then(|h| AllowedHost::parse(h.trim()).ok())
        .is_some_and(|h| allowed.iter().any(|a| a.admits(&h)))
}

/// Whether a browser sent the request from a page of another origin. The browser's own
/// `Sec-Fetch-Site` decides when present (only `same-origin` and `none`, a typed URL or a
/// bookmark, are not cross-site; a page cannot forge it); without it, an `Origin` whose
/// host and port are not `host` is (`null` included). A request with neither is not a
/// browser's cross-site one: curl, wget and scripts send neither.
pub fn cross_site(sec_fetch_site: Option<&str>, origin: Option<&str>, host: Option<&str>) -> bool {
    if let Some(site) = sec_fetch_site.map(str::trim) {
        return !(site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none"));
    }
    let Some(origin) = origin.map(str::trim) else {
        return false;
    };
    let authority = origin.split_once("://").map(|(_, a)| a);
    match (authority, host) {
        (Some(a), Some(h)) => !a.eq_ignore_ascii_case(h.trim()),
        _ => true,
    }
}

/// Whether an `Authorization` header holds Basic credentials, the kind a browser
/// remembers and sends again by itself.
pub fn is_basic(authorization: Option<&str>) -> bool {
    authorization
        .map(str::trim_start)
        .and_then(|h| h.get(..6))
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic "))
}

/// The address failures are counted for: IPv6 clients by their /64 (one host usually has
/// a whole /64), IPv4 and IPv4-mapped IPv6 clients by their address.
pub fn limiter_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
        v4 => v4,
    }
}

/// The client's address: the TCP peer, or, when the peer is one of `trusted` proxies,
/// the nearest address in `X-Forwarded-For` (read right to left) that is not a trusted
/// proxy. An unreadable entry stops the walk at the last trusted hop.
pub fn client_addr(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpAddr]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.contains(ip);
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for.iter().rev().flat_map(|h| h.rsplit(',')) {
        let hop = hop.trim();
        let parsed = hop
            .parse::<IpAddr>()
            .or_else(|_| hop.parse::<SocketAddr>().map(|a| a.ip()));
        let Ok(ip) = parsed else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    ip: IpAddr,
    failures: u32,
    since: Instant,
}

impl Entry {
    fn blocked(&self, now: Instant) -> bool {
        self.failures >= MAX_FAILURES && now < self.since + WINDOW
    }
}

/// Failed attempts per client address (see [`limiter_key`]), in a fixed-size table. Only
/// wrong credentials count, and only they are refused: a request with a valid key passes
/// whatever its address did.
#[derive(Debug, Default)]
pub struct RateLimiter {
    /// Fixed capacity, so memory is fixed: when full, a new address takes the place of the
    /// oldest one that is not blocked; blocked ones stay until their window ends.
    entries: heapless::Vec<Entry, MAX_TRACKED>,
}

impl RateLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self {
            entries: heapless::Vec::new(),
        }
    }

    /// `Err(retry_after)` while `ip` is blocked.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let ip = limiter_key(ip);
        match self.entries.iter().find(|e| e.ip == ip) {
            Some(e) if e.blocked(now) => Err(e.since + WINDOW - now),
            _ => Ok(()),
        }
    }

    /// Count a failure from `ip`. When every tracked address is blocked, a new address's
    /// failure is not recorded (it is still refused with 401).
    pub fn record_failure(&mut self, ip: IpAddr, now: Instant) {
        let ip = limiter_key(ip);
        if let Some(e) = self.entries.iter_mut().find(|e| e.ip == ip) {
            if now.duration_since(e.since) >= WINDOW {
                e.failures = 0;
                e.since = now;
            }
            e.failures += 1;
            return;
        }
        let fresh = Entry {
            ip,
            failures: 1,
            since: now,
        };
        if let Err(fresh) = self.entries.push(fresh) {
            if let Some(oldest) = self
                .entries
                .iter_mut()
                .filter(|e| !e.blocked(now))
                .min_by_key(|e| e.since)
            {
                *oldest = fresh;
            }
        }
    }
}

/// Requests being answered per API key, so that one key (a client that trickles bodies,
/// or a burst) cannot take every connection. Entries leave at zero: at most one per
/// request in flight.
#[derive(Debug, Default)]
pub struct InFlight(RefCell<Vec<(String, usize)>>);

/// One request counted in [`InFlight`]; dropping it (answered, or the connection gone)
/// uncounts it.
#[derive(Debug)]
pub struct InFlightGuard<'a> {
    table: &'a InFlight,
    key: String,
}

impl InFlight {
    /// Count a request for `key`, or `None` when `key` already has `max` in flight.
    pub fn enter(&self, key: &str, max: usize) -> Option<InFlightGuard<'_>> {
        let mut list = self.0.borrow_mut();
        match list.iter_mut().find(|(k, _)| k == key) {
            Some((_, n)) if *n >= max => return None,
            Some((_, n)) => *n += 1,
            None => list.push((key.to_string(), 1)),
        }
        Some(InFlightGuard {
            table: self,
            key: key.to_string(),
        })
    }

    /// Requests in flight for `key`.
    pub fn count(&self, key: &str) -> usize {
        self.0
            .borrow()
            .iter()
            .find(|(k, _)| k == key)
            .map_or(0, |(_, n)| *n)
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut list = self.table.0.borrow_mut();
        if let Some(i) = list.iter().position(|(k, _)| *k == self.key) {
            list[i].1 -= 1;
            if list[i].1 == 0 {
                list.swap_remove(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_hosts_read_names_ports_and_ip_literals() {
        let p = |s: &str| AllowedHost::parse(s).unwrap();
        assert_eq!(p("Router.LAN."), p("router.lan"));
        assert_eq!(p("router.lan:5280").port, Some(5280));
        assert_eq!(p("192.168.1.1:80").host, "192.168.1.1");
        assert_eq!(p("::1"), p("[0:0::1]"));
        assert_eq!(p("[fe80::1]:5280").port, Some(5280));
        for bad in [
            "",
            ":80",
            "a b",
            "host:",
            "host:0",
            "host:99999",
            "[::1",
            "[x]:1",
            "*.lan",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_host_outside_a_set_allowed_hosts_list_is_refused() {
        let list = [
            AllowedHost::parse("router.lan").unwrap(),
            AllowedHost::parse("192.168.1.1:5280").unwrap(),
            AllowedHost::parse("::1").unwrap(),
        ];
        assert!(host_allowed(Some("ROUTER.lan:5280"), &list));
        assert!(host_allowed(Some("router.lan"), &list));
        assert!(host_allowed(Some("192.168.1.1:5280"), &list));
        assert!(host_allowed(Some("[::1]:5280"), &list));
        assert!(
            !host_allowed(Some("192.168.1.1:8080"), &list),
            "the port is named"
        );
        assert!(!host_allowed(Some("192.168.1.1"), &list));
        assert!(!host_allowed(Some("attacker.example:5280"), &list));
        assert!(!host_allowed(Some("router.lan.attacker.example"), &list));
        assert!(!host_allowed(Some("router.lan@x"), &list));
        assert!(!host_allowed(None, &list), "no Host while the list is set");
    }

    #[test]
    fn without_allowed_hosts_any_host_and_none_are_served() {
        assert!(host_allowed(Some("anything.example"), &[]));
        assert!(host_allowed(None, &[]));
    }

    #[test]
    fn a_browsers_cross_site_request_is_told_apart_from_same_origin_and_tools() {
        let host = Some("192.168.1.1:5280");
        assert!(cross_site(Some("cross-site"), None, host));
        assert!(cross_site(Some("same-site"), None, host));
        assert!(!cross_site(Some("same-origin"), None, host));
        assert!(!cross_site(Some("none"), None, host));
        assert!(
            !cross_site(Some("same-origin"), Some("https://proxy.example"), host),
            "the browser's word wins over an Origin a proxy's Host does not match"
        );
        assert!(cross_site(None, Some("https://attacker.example"), host));
        assert!(
            cross_site(None, Some("http://192.168.1.1"), host),
            "another port"
        );
        assert!(cross_site(None, Some("null"), host));
        assert!(!cross_site(None, Some("http://192.168.1.1:5280"), host));
        assert!(!cross_site(None, None, host), "curl and wget send neither");
        assert!(cross_site(None, Some("http://x"), None));
    }

    #[test]
    fn only_the_basic_scheme_counts_as_basic() {
        assert!(is_basic(Some("Basic aWQ6c2VjcmV0")));
        assert!(is_basic(Some("basic abc")));
        assert!(!is_basic(Some("Bearer id/secret")));
        assert!(!is_basic(Some("Basicx")));
        assert!(!is_basic(None));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_is_blocked_after_max_failures_until_the_window_ends() {
        let a = ip("192.0.2.1");
        let t0 = Instant::now();
        let mut l = RateLimiter::new();
        for _ in 0..MAX_FAILURES - 1 {
            l.record_failure(a, t0);
        }
        assert!(l.check(a, t0).is_ok());
        l.record_failure(a, t0);
        let retry = l.check(a, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(retry, Duration::from_secs(50));
        assert!(l.check(ip("192.0.2.2"), t0).is_ok());
        assert!(l.check(a, t0 + WINDOW).is_ok());
        l.record_failure(a, t0 + WINDOW);
        assert!(l.check(a, t0 + WINDOW).is_ok(), "a new window starts over");
    }

    #[test]
    fn ipv6_clients_are_grouped_by_their_64() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new();
        for i in 0..MAX_FAILURES {
            l.record_failure(ip(&format!("2001:db8:1:2::{i:x}")), t0);
        }
        assert!(l.check(ip("2001:db8:1:2:ffff::1"), t0).is_err());
        assert!(l.check(ip("2001:db8:1:3::1"), t0).is_ok());
        assert_eq!(limiter_key(ip("::ffff:192.0.2.9")), ip("192.0.2.9"));
    }

    #[test]
    fn a_flood_of_addresses_does_not_evict_a_blocked_one_nor_grow_the_table() {
        let blocked = ip("192.0.2.1");
        let t0 = Instant::now();
        let mut l = RateLimiter::new();
        for _ in 0..MAX_FAILURES {
            l.record_failure(blocked, t0);
        }
        for i in 0..(MAX_TRACKED as u32 * 4) {
            let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.record_failure(a, t0 + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(l.entries.len(), MAX_TRACKED);
        assert!(l.check(blocked, t0 + Duration::from_secs(30)).is_err());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy = ip("127.0.0.1");
        let trusted = [proxy, ip("10.0.0.2")];
        let xff = ["198.51.100.7, 10.0.0.2"];
        assert_eq!(client_addr(proxy, &xff, &trusted), ip("198.51.100.7"));
        assert_eq!(
            client_addr(ip("192.0.2.5"), &xff, &trusted),
            ip("192.0.2.5")
        );
        assert_eq!(client_addr(proxy, &[], &trusted), proxy);
        assert_eq!(
            client_addr(proxy, &["junk, 10.0.0.2"], &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_addr(proxy, &["203.0.113.1", "198.51.100.8:4711"], &trusted),
            ip("198.51.100.8")
        );
        assert_eq!(
            client_addr(proxy, &xff, &[]),
            proxy,
            "no proxies trusted by default"
        );
    }

    #[test]
    fn a_key_gets_at_most_max_requests_in_flight_and_each_frees_its_place() {
        let table = InFlight::default();
        let a = table.enter("k1", 2).unwrap();
        let b = table.enter("k1", 2).unwrap();
        assert!(table.enter("k1", 2).is_none());
        assert!(table.enter("k2", 2).is_some());
        drop(a);
        assert_eq!(table.count("k1"), 1);
        let _c = table.enter("k1", 2).unwrap();
        drop(b);
        assert_eq!(table.count("k2"), 0);
    }
}
