//! Byte transcripts of whole sessions and of every failure path.

use super::*;
use crate::xmpp::stanza::{MessageType, NS_STANZA_ERRORS};
use crate::xmpp::xml::StreamHeader;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.org' version='1.0'>";
const STARTTLS: &str = "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>\
    <required/></starttls></stream:features>";
const MECHS_PLAIN: &str = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
    <mechanism>PLAIN</mechanism></mechanisms></stream:features>";
const BIND_SM: &str = "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
    <sm xmlns='urn:xmpp:sm:3'/></stream:features>";
const BIND_ONLY: &str =
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>";

fn settings(tls: TlsMode) -> Settings {
    Settings {
        jid: BareJid::parse("bot@example.org").unwrap(),
        password: "pass".into(),
        resource: "xrelay".into(),
        tls,
        max_stanza_bytes: 4096,
        ping_interval: Duration::from_secs(60),
        timeout: Duration::from_secs(10),
        resume: true,
    }
}

/// Drives a client through a transcript at a controllable time.
struct Session {
    c: Client,
    now: Instant,
}

impl Session {
    fn new(tls: TlsMode) -> Self {
        let now = Instant::now();
        Self {
            c: Client::new(settings(tls), now),
            now,
        }
    }

    /// Take what the client wrote.
    fn out(&mut self) -> String {
        let s = String::from_utf8(self.c.pending_output().to_vec()).unwrap();
        let n = self.c.pending_output().len();
        self.c.consume_output(n);
        s
    }

    /// Feed server bytes and collect events until the client needs more input.
    fn feed(&mut self, server: &str) -> Result<Vec<Event>, Error> {
        self.c.handle_input(server.as_bytes(), self.now)?;
        self.drain()
    }

    fn drain(&mut self) -> Result<Vec<Event>, Error> {
        let mut evs = Vec::new();
        while let Some(ev) = self.c.poll_event(self.now)? {
            evs.push(ev);
        }
        Ok(evs)
    }

    fn advance(&mut self, d: Duration) -> Result<Vec<Event>, Error> {
        self.now += d;
        self.drain()
    }

    /// Over direct TLS, past PLAIN authentication and the new stream header.
    fn authenticated() -> Self {
        Self::authenticate(Self::new(TlsMode::Direct))
    }

    /// A stream over direct TLS that will try to resume `prev`, past authentication.
    fn resuming(prev: SmState) -> Self {
        let now = Instant::now();
        Self::authenticate(Self {
            c: Client::resuming(settings(TlsMode::Direct), prev, now),
            now,
        })
    }

    fn authenticate(mut s: Self) -> Self {
        s.feed(HEADER).unwrap();
        s.feed(MECHS_PLAIN).unwrap();
        s.feed("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
            .unwrap();
        s.feed(HEADER).unwrap();
        s
    }

    /// Log in over direct TLS with PLAIN; `features` are the post-auth features.
    fn online(features: &str, sm_reply: Option<&str>) -> Self {
        let mut s = Self::new(TlsMode::Direct);
        s.feed(HEADER).unwrap();
        assert!(s.feed(MECHS_PLAIN).unwrap().is_empty());
        s.out();
        s.feed("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
            .unwrap();
        s.out();
        s.feed(HEADER).unwrap();
        s.feed(features).unwrap();
        let bind = s.out();
        let mut evs = answer_bind(&mut s, &bind);
        if let Some(reply) = sm_reply {
            assert_eq!(
                one(&s.out()),
                one("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
            );
            evs = s.feed(reply).unwrap();
        }
        assert!(matches!(evs.as_slice(), [Event::Online { .. }]), "{evs:?}");
        s.out();
        s
    }
}

/// Answer the bind request the client wrote (`request`) with the bound JID.
fn answer_bind(s: &mut Session, request: &str) -> Vec<Event> {
    let id = attr(request, "id");
    s.feed(&format!(
        "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <jid>bot@example.org/xrelay</jid></bind></iq>"
    ))
    .unwrap()
}

/// What the client wrote, read back with the crate's own framer.
#[derive(Debug, PartialEq)]
struct Wire {
    /// The stream header it opened, if it did.
    header: Option<StreamHeader>,
    /// Its top-level elements, in order.
    elements: Vec<Element>,
    /// Whether it closed its stream.
    closed: bool,
}

/// Parses what the client wrote; output that continues an open stream is read inside one.
fn wire(out: &str) -> Wire {
    let mut framer = Framer::new(1 << 20);
    if !out.starts_with("<?xml") {
        framer
            .feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
            .unwrap();
        assert!(matches!(
            framer.next_event(),
            Ok(Some(StreamEvent::Open(_)))
        ));
    }
    framer.feed(out.as_bytes()).unwrap();
    let mut w = Wire {
        header: None,
        elements: Vec::new(),
        closed: false,
    };
    while let Some(ev) = framer.next_event().unwrap_or_else(|e| panic!("{e}: {out}")) {
        match ev {
            StreamEvent::Open(header) => w.header = Some(header),
            StreamEvent::Element(e) => w.elements.push(e),
            StreamEvent::Close => w.closed = true,
            StreamEvent::Skipped(skipped) => panic!("{skipped:?}: {out}"),
        }
    }
    w
}

/// The one element the client wrote, and nothing else.
fn one(out: &str) -> Element {
    let w = wire(out);
    assert!(w.header.is_none() && !w.closed, "{out}");
    let [e] = <[Element; 1]>::try_from(w.elements).unwrap_or_else(|_| panic!("{out}"));
    e
}

/// The stream header the client wrote.
fn header(out: &str) -> StreamHeader {
    wire(out)
        .header
        .unwrap_or_else(|| panic!("no stream header: {out}"))
}

/// Attribute `name` of the one element the client wrote.
fn attr(out: &str, name: &str) -> String {
    one(out)
        .get_attr(name)
        .unwrap_or_else(|| panic!("no {name} in {out}"))
        .to_string()
}

/// The text of `e`'s child `child` and its child `grandchild`, both in `ns`.
fn grandchild_text(e: &Element, child: &str, grandchild: &str, ns: &str) -> Option<String> {
    e.get_child(child, ns)?
        .get_child(grandchild, ns)
        .map(Element::text_content)
}

#[test]
fn a_starttls_login_goes_through_tls_plain_bind_and_stream_management() {
    let mut s = Session::new(TlsMode::StartTls);
    let hello = header(&s.out());
    assert_eq!(hello.get("to"), Some("example.org"));
    assert_eq!(hello.get("from"), None, "no from before TLS");
    assert!(s.feed(HEADER).unwrap().is_empty());
    assert!(s.feed(STARTTLS).unwrap().is_empty());
    assert_eq!(
        one(&s.out()),
        one("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    );
    let evs = s
        .feed("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .unwrap();
    assert_eq!(evs, vec![Event::StartTls]);
    assert!(
        s.c.poll_timeout().is_none(),
        "the shell times the handshake"
    );
    s.c.tls_established(s.now);
    assert_eq!(header(&s.out()).get("from"), Some("bot@example.org"));
    s.feed(HEADER).unwrap();
    s.feed(MECHS_PLAIN).unwrap();
    let auth = one(&s.out());
    assert!(auth.is("auth", NS_SASL), "{auth:?}");
    assert_eq!(auth.get_attr("mechanism"), Some("PLAIN"));
    // base64("\0bot\0pass")
    assert_eq!(auth.text_content(), "AGJvdABwYXNz");
    assert_eq!(s.c.mechanism(), Some(Mechanism::Plain));
    s.feed("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .unwrap();
    let restart = wire(&s.out());
    assert!(restart.header.is_some() && restart.elements.is_empty());
    s.feed(HEADER).unwrap();
    s.feed(BIND_SM).unwrap();
    let bind = s.out();
    let request = one(&bind);
    assert!(request.is("iq", NS_CLIENT), "{bind}");
    assert_eq!(request.get_attr("type"), Some("set"));
    assert_eq!(
        grandchild_text(&request, "bind", "resource", NS_BIND).as_deref(),
        Some("xrelay")
    );
    answer_bind(&mut s, &bind);
    assert_eq!(
        one(&s.out()),
        one("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
    );
    let evs = s.feed("<enabled xmlns='urn:xmpp:sm:3'/>").unwrap();
    assert_eq!(
        evs,
        vec![Event::Online {
            jid: Jid::parse("bot@example.org/xrelay").unwrap(),
            sm: true,
            resumption: Resumption::None,
        }]
    );
}

#[test]
fn one_byte_at_a_time_gives_the_same_result() {
    let mut whole = Session::new(TlsMode::Direct);
    whole.out();
    assert!(whole
        .feed(&format!("{HEADER}{MECHS_PLAIN}"))
        .unwrap()
        .is_empty());
    let mut s = Session::new(TlsMode::Direct);
    s.out();
    let mut evs = Vec::new();
    for b in format!("{HEADER}{MECHS_PLAIN}").bytes() {
        s.c.handle_input(&[b], s.now).unwrap();
        evs.extend(s.drain().unwrap());
    }
    assert!(evs.is_empty());
    let auth = one(&s.out());
    assert_eq!(auth.text_content(), "AGJvdABwYXNz");
    assert_eq!(auth, one(&whole.out()));
}

#[test]
fn stream_management_asks_one_ack_at_a_time_and_counts_inbound_stanzas() {
    let mut s = Session::online(BIND_SM, Some("<enabled xmlns='urn:xmpp:sm:3'/>"));
    let to = Jid::parse("alice@example.org").unwrap();
    let m = stanza::message(&to, MessageType::Chat, "m1", "hi", None);
    assert_eq!(s.c.send(&m), Ok(1));
    assert_eq!(s.c.send(&m), Ok(2));
    s.c.request_ack(s.now);
    assert_eq!(
        wire(&s.out()).elements,
        vec![m.clone(), m, one("<r xmlns='urn:xmpp:sm:3'/>")]
    );
    // A second request while one is outstanding waits for the answer.
    s.c.request_ack(s.now);
    assert_eq!(s.out(), "");
    assert_eq!(
        s.feed("<a xmlns='urn:xmpp:sm:3' h='1'/>").unwrap(),
        vec![Event::Acked(1)]
    );
    assert_eq!(one(&s.out()), one("<r xmlns='urn:xmpp:sm:3'/>"));
    assert_eq!(
        s.feed("<a xmlns='urn:xmpp:sm:3' h='2'/>").unwrap(),
        vec![Event::Acked(2)]
    );
    // Inbound stanzas are counted, including pings answered by the state machine.
    let evs = s
        .feed(
            "<message from='alice@example.org/x' type='chat'><body>yo</body></message>\
             <iq type='get' id='p1' from='example.org'><ping xmlns='urn:xmpp:ping'/></iq>\
             <r xmlns='urn:xmpp:sm:3'/>",
        )
        .unwrap();
    assert!(matches!(evs.as_slice(), [Event::Stanza(m)] if m.name() == "message"));
    let out = wire(&s.out()).elements;
    let [pong, ack] = <[Element; 2]>::try_from(out).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(pong.is("iq", NS_CLIENT), "{pong:?}");
    assert_eq!(pong.get_attr("type"), Some("result"));
    assert_eq!(pong.get_attr("id"), Some("p1"));
    assert_eq!(ack, one("<a xmlns='urn:xmpp:sm:3' h='2'/>"));
    assert_eq!(
        s.feed("<a xmlns='urn:xmpp:sm:3' h='9'/>"),
        Err(Error::AckTooHigh)
    );
}

#[test]
fn acks_by_ping_without_stream_management() {
    let mut s = Session::online(BIND_ONLY, None);
    let to = Jid::parse("alice@example.org").unwrap();
    let seq =
        s.c.send(&stanza::message(&to, MessageType::Chat, "m1", "hi", None))
            .unwrap();
    s.out();
    s.c.request_ack(s.now);
    let ping = s.out();
    assert!(one(&ping).get_child("ping", NS_PING).is_some(), "{ping}");
    let id = attr(&ping, "id");
    let evs = s
        .feed(&format!("<iq type='result' id='{id}' from='example.org'/>"))
        .unwrap();
    assert_eq!(evs, vec![Event::Acked(seq + 1)]);
    // Nothing left to confirm: no new probe.
    s.c.request_ack(s.now);
    assert_eq!(s.out(), "");
}

#[test]
fn a_refused_stream_management_enable_still_goes_online() {
    let s = Session::online(
        BIND_SM,
        Some("<failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>"),
    );
    assert!(s.c.is_online());
}

#[test]
fn mandatory_session_is_established() {
    let mut s = Session::authenticated();
    s.out();
    s.feed(
        "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
         <session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>",
    )
    .unwrap();
    let id = attr(&s.out(), "id");
    s.feed(&format!(
        "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <jid>bot@example.org/r</jid></bind></iq>"
    ))
    .unwrap();
    let session = s.out();
    assert!(
        one(&session).get_child("session", NS_SESSION).is_some(),
        "{session}"
    );
    let id = attr(&session, "id");
    let evs = s.feed(&format!("<iq type='result' id='{id}'/>")).unwrap();
    assert!(matches!(evs.as_slice(), [Event::Online { sm: false, .. }]));
}

#[test]
fn an_idle_stream_is_pinged_and_a_missing_reply_ends_it_without_a_closing_tag() {
    let mut s = Session::online(BIND_ONLY, None);
    let interval = Duration::from_secs(60);
    assert_eq!(s.c.poll_timeout(), Some(s.now + interval));
    assert!(s.advance(interval).unwrap().is_empty());
    let ping = s.out();
    assert!(one(&ping).get_child("ping", NS_PING).is_some(), "{ping}");
    let id = attr(&ping, "id");
    // The reply keeps the stream alive and is not passed to the application.
    assert!(s
        .feed(&format!("<iq type='result' id='{id}'/>"))
        .unwrap()
        .is_empty());
    assert!(s.advance(interval).unwrap().is_empty());
    assert!(one(&s.out()).get_child("ping", NS_PING).is_some());
    assert_eq!(s.c.poll_timeout(), Some(s.now + Duration::from_secs(10)));
    assert_eq!(s.advance(Duration::from_secs(10)), Err(Error::PingTimeout));
    // A dead link gets no closing tag: arriving late, it would end a session that the
    // next connection resumes.
    assert_eq!(s.out(), "");
}

#[test]
fn login_step_times_out() {
    let mut s = Session::new(TlsMode::StartTls);
    s.feed(HEADER).unwrap();
    assert!(s.advance(Duration::from_secs(9)).unwrap().is_empty());
    let err = s.advance(Duration::from_secs(1)).unwrap_err();
    assert_eq!(err, Error::LoginTimeout);
    assert_eq!(err.step(), Step::Stream);
}

#[test]
fn a_clean_close_ends_our_stream_and_the_servers_answer_ends_the_session() {
    let mut s = Session::online(BIND_ONLY, None);
    s.c.close(s.now);
    let closing = wire(&s.out());
    assert!(closing.closed && closing.elements.is_empty(), "{closing:?}");
    assert_eq!(
        s.c.send(&Element::new("presence", NS_CLIENT)),
        Err(SendError::NotOnline)
    );
    assert_eq!(s.feed("</stream:stream>").unwrap(), vec![Event::Closed]);
}

#[test]
fn a_close_the_server_never_answers_ends_after_the_timeout() {
    let mut s = Session::online(BIND_ONLY, None);
    s.c.close(s.now);
    assert_eq!(
        s.advance(Duration::from_secs(10)).unwrap(),
        vec![Event::Closed]
    );
}

#[test]
fn refuses_to_continue_without_starttls() {
    let mut s = Session::new(TlsMode::StartTls);
    s.out();
    s.feed(HEADER).unwrap();
    let err = s.feed(MECHS_PLAIN).unwrap_err();
    assert_eq!(err, Error::TlsNotOffered);
    assert_eq!(err.step(), Step::Tls);
    assert!(wire(&s.out()).closed);
}

#[test]
fn a_refused_starttls_is_tls_refused() {
    let mut s = Session::new(TlsMode::StartTls);
    s.feed(HEADER).unwrap();
    s.feed(STARTTLS).unwrap();
    let err = s
        .feed("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .unwrap_err();
    assert_eq!(err, Error::TlsRefused);
}

#[test]
fn plain_is_never_sent_without_tls() {
    // Loopback plaintext mode: PLAIN is not used without TLS.
    let mut s = Session::new(TlsMode::Plain);
    s.feed(HEADER).unwrap();
    let err = s.feed(MECHS_PLAIN).unwrap_err();
    assert!(matches!(err, Error::Sasl(_)), "{err:?}");
    assert_eq!(err.step(), Step::Authentication);
    let out = wire(&s.out());
    assert!(
        !out.elements.iter().any(|e| e.is("auth", NS_SASL)),
        "{out:?}"
    );
}

#[test]
fn auth_failure_reports_condition_and_text() {
    let mut s = Session::new(TlsMode::Direct);
    s.feed(HEADER).unwrap();
    s.feed(MECHS_PLAIN).unwrap();
    let err = s
        .feed(
            "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/>\
             <text xml:lang='en'>Invalid username or password</text></failure>",
        )
        .unwrap_err();
    assert_eq!(
        err,
        Error::AuthFailed {
            condition: "not-authorized".into(),
            text: Some("Invalid username or password".into())
        }
    );
    assert_eq!(err.step(), Step::Authentication);
}

#[test]
fn a_refused_bind_fails_at_the_bind_step_with_its_condition() {
    let mut s = Session::authenticated();
    s.out();
    s.feed(BIND_ONLY).unwrap();
    let id = attr(&s.out(), "id");
    let err = s
        .feed(&format!(
            "<iq type='error' id='{id}'><error type='cancel'>\
             <conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        ))
        .unwrap_err();
    assert_eq!(err, Error::Bind(BindError::Refused("conflict".into())));
    assert_eq!(err.step(), Step::Bind);
}

#[test]
fn features_without_bind_fail_at_the_bind_step() {
    let mut s = Session::authenticated();
    let err = s.feed("<stream:features/>").unwrap_err();
    assert_eq!(err.step(), Step::Bind);
}

#[test]
fn a_server_stream_error_is_reported_with_its_condition_and_text() {
    let mut s = Session::online(BIND_ONLY, None);
    let err = s
        .feed(
            "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Replaced by new connection</text>\
             </stream:error>",
        )
        .unwrap_err();
    assert_eq!(
        err,
        Error::StreamError {
            condition: "conflict".into(),
            text: Some("Replaced by new connection".into())
        }
    );
}

#[test]
fn an_unexpected_server_close_is_an_error_and_closes_our_stream() {
    let mut s = Session::online(BIND_ONLY, None);
    assert_eq!(s.feed("</stream:stream>"), Err(Error::ServerClosed));
    assert!(wire(&s.out()).closed);
}

#[test]
fn oversized_incoming_message_is_skipped_and_counted_and_stream_stays_up() {
    let mut s = Session::online(BIND_SM, Some("<enabled xmlns='urn:xmpp:sm:3'/>"));
    let big = format!(
        "<message from='eve@example.org/x' type='chat'><body>{}</body></message>",
        "x".repeat(8192)
    );
    let evs = s.feed(&format!("{big}<r xmlns='urn:xmpp:sm:3'/>")).unwrap();
    let [Event::Skipped(skipped)] = evs.as_slice() else {
        panic!("{evs:?}");
    };
    assert_eq!(skipped.from.as_deref(), Some("eve@example.org/x"));
    assert_eq!(skipped.bytes, big.len());
    assert_eq!(one(&s.out()), one("<a xmlns='urn:xmpp:sm:3' h='1'/>"));
    assert!(s.c.is_online());
    let evs = s
        .feed("<message from='a@example.org/y'><body>k</body></message>")
        .unwrap();
    assert!(matches!(evs.as_slice(), [Event::Stanza(_)]), "{evs:?}");
}

#[test]
fn oversized_iq_request_is_answered_with_policy_violation() {
    let mut s = Session::online(BIND_ONLY, None);
    let big = format!(
        "<iq type='set' id='big1' from='eve@example.org/x'><q xmlns='urn:q'>{}</q></iq>",
        "x".repeat(8192)
    );
    let evs = s.feed(&big).unwrap();
    assert!(matches!(evs.as_slice(), [Event::Skipped(_)]), "{evs:?}");
    let out = s.out();
    let reply = one(&out);
    assert!(reply.is("iq", NS_CLIENT), "{out}");
    assert_eq!(
        (
            reply.get_attr("to"),
            reply.get_attr("id"),
            reply.get_attr("type")
        ),
        (Some("eve@example.org/x"), Some("big1"), Some("error"))
    );
    let error = reply.get_child("error", NS_CLIENT).expect("an <error/>");
    assert!(
        error
            .get_child("policy-violation", NS_STANZA_ERRORS)
            .is_some(),
        "{out}"
    );
    assert!(s.c.is_online());
}

#[test]
fn oversized_features_end_the_stream_with_policy_violation() {
    let mut s = Session::new(TlsMode::Direct);
    s.feed(HEADER).unwrap();
    let big = format!(
        "<stream:features><x xmlns='urn:x'>{}</x></stream:features>",
        "x".repeat(8192)
    );
    let err = match s.c.handle_input(big.as_bytes(), s.now) {
        Err(e) => e,
        Ok(()) => s.drain().unwrap_err(),
    };
    assert!(matches!(err, Error::Xml(_)), "{err:?}");
    let out = wire(&s.out());
    let [error] = out.elements.as_slice() else {
        panic!("{out:?}");
    };
    assert!(error.is("error", NS_STREAM), "{error:?}");
    assert!(error
        .get_child("policy-violation", NS_STREAM_ERRORS)
        .is_some());
    assert!(out.closed, "{out:?}");
}

#[test]
fn malformed_and_unexpected_input_are_typed_errors() {
    let cases = [
        format!("{HEADER}<stream:features><a></b></stream:features>"),
        format!("{HEADER}<!-- comment -->"),
        format!("{HEADER}{HEADER}"),
        format!("{HEADER}<iq type='result' id='x'/>"),
        format!("{HEADER}<stream:features></stream:features>"),
        "<stream:stream xmlns='jabber:client' xmlns:stream='wrong'>".to_string(),
        format!("{HEADER}\u{0}"),
        format!("{HEADER}</stream:stream>"),
    ];
    for case in cases {
        let mut s = Session::new(TlsMode::StartTls);
        let r =
            s.c.handle_input(case.as_bytes(), s.now)
                .and_then(|()| s.drain());
        assert!(r.is_err(), "{case:?} gave {r:?}");
        assert!(wire(&s.out()).closed, "{case:?}");
        // After an error the machine stays quiet.
        assert_eq!(s.c.poll_event(s.now), Ok(None));
    }
}

#[test]
fn truncated_input_waits_for_more() {
    let mut s = Session::new(TlsMode::StartTls);
    for cut in 1..HEADER.len() {
        let mut t = Session::new(TlsMode::StartTls);
        assert_eq!(t.feed(&HEADER[..cut]), Ok(vec![]), "cut at {cut}");
    }
    s.feed(HEADER).unwrap();
    assert_eq!(s.feed(&STARTTLS[..20]), Ok(vec![]));
}

#[test]
fn send_before_online_is_refused() {
    let mut s = Session::new(TlsMode::StartTls);
    assert_eq!(
        s.c.send(&Element::new("presence", NS_CLIENT)),
        Err(SendError::NotOnline)
    );
    s.c.request_ack(s.now);
    let out = wire(&s.out());
    assert!(!out.elements.iter().any(|e| e.is("r", NS_SM)), "{out:?}");
}

#[test]
fn output_is_bounded() {
    let mut s = Session::online(BIND_ONLY, None);
    let to = Jid::parse("alice@example.org").unwrap();
    let m = stanza::message(&to, MessageType::Chat, "m", &"x".repeat(1000), None);
    let mut sent = 0;
    while s.c.send(&m).is_ok() {
        sent += 1;
        assert!(sent < 1000, "never pushed back");
    }
    assert_eq!(s.c.send(&m), Err(SendError::Full));
    assert!(s.c.pending_output().len() < MAX_PENDING_OUTPUT + 2000);
    s.out();
    assert!(s.c.send(&m).is_ok());
}

const ENABLED_RESUMABLE: &str =
    "<enabled xmlns='urn:xmpp:sm:3' id='sm-1' resume='true' max='600'/>";

fn message(n: u32) -> Element {
    let to = Jid::parse("alice@example.org").unwrap();
    stanza::message(&to, MessageType::Chat, &format!("m{n}"), "hi", None)
}

/// An online stream with resumable stream management that sent five stanzas (two acked)
/// and handled three inbound ones, then broke.
fn broken_session() -> SmState {
    let mut s = Session::online(BIND_SM, Some(ENABLED_RESUMABLE));
    for n in 1..=5 {
        assert_eq!(s.c.send(&message(n)), Ok(u64::from(n)));
    }
    assert_eq!(
        s.feed("<a xmlns='urn:xmpp:sm:3' h='2'/>").unwrap(),
        vec![Event::Acked(2)]
    );
    s.feed(
        "<message from='alice@example.org/x' type='chat'><body>1</body></message>\
         <presence from='alice@example.org/x'/>\
         <message from='alice@example.org/x' type='chat'><body>2</body></message>",
    )
    .unwrap();
    s.out();
    let state = s.c.sm_state().expect("resumable");
    assert_eq!(
        (state.inbound, state.last_h, state.seq, state.acked),
        (3, 2, 5, 2)
    );
    assert_eq!(state.id, "sm-1");
    state
}

#[test]
fn resume_success_resends_only_what_the_server_did_not_get() {
    let mut s = Session::resuming(broken_session());
    s.out();
    // The features offer stream management: resume instead of binding, reporting h.
    assert!(s.feed(BIND_SM).unwrap().is_empty());
    assert_eq!(
        one(&s.out()),
        one("<resume xmlns='urn:xmpp:sm:3' h='3' previd='sm-1'/>")
    );
    assert!(!s.c.is_online());
    // The server processed four of our five stanzas.
    let evs = s
        .feed("<resumed xmlns='urn:xmpp:sm:3' h='4' previd='sm-1'/>")
        .unwrap();
    assert_eq!(
        evs,
        vec![Event::Online {
            jid: Jid::parse("bot@example.org/xrelay").unwrap(),
            sm: true,
            resumption: Resumption::Resumed { acked: 4 },
        }]
    );
    assert_eq!(s.out(), "", "no bind, no enable, no presence");
    // Stanza 5 is sent again and numbered on from the server's h.
    assert_eq!(s.c.send(&message(5)), Ok(5));
    s.c.request_ack(s.now);
    assert_eq!(
        wire(&s.out()).elements,
        vec![message(5), one("<r xmlns='urn:xmpp:sm:3'/>")]
    );
    assert_eq!(
        s.feed("<a xmlns='urn:xmpp:sm:3' h='5'/>").unwrap(),
        vec![Event::Acked(5)]
    );
    // The state survives a second break, with the same id.
    let again = s.c.sm_state().unwrap();
    assert_eq!((again.id.as_str(), again.seq, again.acked), ("sm-1", 5, 5));
}

#[test]
fn inbound_h_counts_on_across_resumption() {
    let mut s = Session::resuming(broken_session());
    s.feed(BIND_SM).unwrap();
    s.feed("<resumed xmlns='urn:xmpp:sm:3' h='5' previd='sm-1'/>")
        .unwrap();
    s.out();
    // The server asks before resending anything: we handled three.
    s.feed("<r xmlns='urn:xmpp:sm:3'/>").unwrap();
    assert_eq!(one(&s.out()), one("<a xmlns='urn:xmpp:sm:3' h='3'/>"));
    // It resends the stanza we never got, then asks again.
    let evs = s
        .feed(
            "<message from='alice@example.org/x' type='chat'><body>3</body></message>\
             <r xmlns='urn:xmpp:sm:3'/>",
        )
        .unwrap();
    assert!(
        matches!(evs.as_slice(), [Event::Stanza(m)] if m.get_child("body", NS_CLIENT).is_some_and(|b| b.text_content() == "3"))
    );
    assert_eq!(one(&s.out()), one("<a xmlns='urn:xmpp:sm:3' h='4'/>"));
    assert_eq!(s.c.sm_state().unwrap().inbound, 4);
}

#[test]
fn counters_wrap_at_two_to_the_32() {
    let prev = SmState {
        id: "w".into(),
        jid: Jid::parse("bot@example.org/xrelay").unwrap(),
        inbound: u32::MAX,
        last_h: u32::MAX - 1,
        seq: 10,
        acked: 6,
    };
    let mut s = Session::resuming(prev);
    s.out();
    s.feed(BIND_SM).unwrap();
    let resume = one(&s.out());
    assert!(resume.is("resume", NS_SM), "{resume:?}");
    assert_eq!(resume.get_attr("h"), Some(u32::MAX.to_string().as_str()));
    let evs = s
        .feed("<resumed xmlns='urn:xmpp:sm:3' h='1' previd='w'/>")
        .unwrap();
    assert!(matches!(
        evs.as_slice(),
        [Event::Online {
            resumption: Resumption::Resumed { acked: 9 },
            ..
        }]
    ));
    // Inbound wraps too.
    s.feed("<presence from='alice@example.org/x'/><r xmlns='urn:xmpp:sm:3'/>")
        .unwrap();
    assert_eq!(one(&s.out()), one("<a xmlns='urn:xmpp:sm:3' h='0'/>"));
}

#[test]
fn resumed_with_an_impossible_or_missing_h_is_an_error() {
    let mut s = Session::resuming(broken_session());
    s.feed(BIND_SM).unwrap();
    assert_eq!(
        s.feed("<resumed xmlns='urn:xmpp:sm:3' h='9' previd='sm-1'/>"),
        Err(Error::AckTooHigh)
    );
    let mut s = Session::resuming(broken_session());
    s.feed(BIND_SM).unwrap();
    assert!(matches!(
        s.feed("<resumed xmlns='urn:xmpp:sm:3' previd='sm-1'/>"),
        Err(Error::Protocol(_))
    ));
}

/// After `<failed/>`: bind, enable, online as a new session numbered on from the old one.
fn bind_new_session(s: &mut Session) -> Vec<Event> {
    let bind = s.out();
    assert_eq!(
        grandchild_text(&one(&bind), "bind", "resource", NS_BIND).as_deref(),
        Some("xrelay"),
        "{bind}"
    );
    answer_bind(s, &bind);
    assert_eq!(
        one(&s.out()),
        one("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
    );
    s.feed("<enabled xmlns='urn:xmpp:sm:3' id='sm-2' resume='true'/>")
        .unwrap()
}

#[test]
fn resume_failure_binds_a_new_session() {
    let mut s = Session::resuming(broken_session());
    s.out();
    s.feed(BIND_SM).unwrap();
    s.out();
    let evs = s
        .feed(
            "<failed xmlns='urn:xmpp:sm:3'>\
             <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>",
        )
        .unwrap();
    assert!(evs.is_empty());
    let evs = bind_new_session(&mut s);
    assert!(
        matches!(
            evs.as_slice(),
            [Event::Online {
                sm: true,
                resumption: Resumption::Failed { acked: None },
                ..
            }]
        ),
        "{evs:?}"
    );
    // New numbers follow the old ones; the new session counts h from zero both ways.
    assert_eq!(s.c.send(&message(3)), Ok(6));
    s.feed("<r xmlns='urn:xmpp:sm:3'/>").unwrap();
    assert_eq!(
        wire(&s.out()).elements.last(),
        Some(&one("<a xmlns='urn:xmpp:sm:3' h='0'/>"))
    );
    assert_eq!(
        s.feed("<a xmlns='urn:xmpp:sm:3' h='1'/>").unwrap(),
        vec![Event::Acked(6)]
    );
    assert_eq!(s.c.sm_state().unwrap().id, "sm-2");
}

#[test]
fn resume_failure_with_h_says_what_the_old_session_got() {
    let mut s = Session::resuming(broken_session());
    s.feed(BIND_SM).unwrap();
    s.out();
    s.feed(
        "<failed xmlns='urn:xmpp:sm:3' h='3'>\
         <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>",
    )
    .unwrap();
    let evs = bind_new_session(&mut s);
    assert!(matches!(
        evs.as_slice(),
        [Event::Online {
            resumption: Resumption::Failed { acked: Some(3) },
            ..
        }]
    ));
}

/// Everything goes out again.
#[test]
fn a_resume_failure_with_an_h_above_what_was_sent_is_not_believed() {
    let mut s = Session::resuming(broken_session());
    s.feed(BIND_SM).unwrap();
    s.out();
    s.feed("<failed xmlns='urn:xmpp:sm:3' h='77'/>").unwrap();
    let evs = bind_new_session(&mut s);
    assert!(matches!(
        evs.as_slice(),
        [Event::Online {
            resumption: Resumption::Failed { acked: None },
            ..
        }]
    ));
}

#[test]
fn a_server_without_stream_management_gets_a_new_session() {
    let mut s = Session::resuming(broken_session());
    s.out();
    s.feed(BIND_ONLY).unwrap();
    let bind = s.out();
    let evs = answer_bind(&mut s, &bind);
    assert!(matches!(
        evs.as_slice(),
        [Event::Online {
            sm: false,
            resumption: Resumption::Failed { acked: None },
            ..
        }]
    ));
    assert!(s.c.sm_state().is_none());
    // Acknowledgement by ping still works, numbered on.
    assert_eq!(s.c.send(&message(1)), Ok(6));
    s.out();
    s.c.request_ack(s.now);
    let id = attr(&s.out(), "id");
    assert_eq!(
        s.feed(&format!("<iq type='result' id='{id}'/>")).unwrap(),
        vec![Event::Acked(7)]
    );
}

#[test]
fn no_resumption_without_the_servers_consent() {
    // The server enabled stream management without resumption.
    let s = Session::online(BIND_SM, Some("<enabled xmlns='urn:xmpp:sm:3'/>"));
    assert!(s.c.sm_state().is_none());
}

#[test]
fn resumption_off_asks_for_a_plain_enable() {
    let now = Instant::now();
    let mut s = Session::authenticate(Session {
        c: Client::new(
            Settings {
                resume: false,
                ..settings(TlsMode::Direct)
            },
            now,
        ),
        now,
    });
    s.out();
    s.feed(BIND_SM).unwrap();
    let bind = s.out();
    answer_bind(&mut s, &bind);
    assert_eq!(one(&s.out()), one("<enable xmlns='urn:xmpp:sm:3'/>"));
}

#[test]
fn a_clean_close_is_not_resumable_but_a_broken_link_is() {
    let mut s = Session::online(BIND_SM, Some(ENABLED_RESUMABLE));
    s.c.send(&message(1)).unwrap();
    s.out();
    // A stream error still closes the stream (the server ended it anyway)...
    let mut t = Session::online(BIND_SM, Some(ENABLED_RESUMABLE));
    t.feed("<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>")
        .unwrap_err();
    assert!(wire(&t.out()).closed);
    // ...while a dead link keeps its state for the next connection.
    s.advance(Duration::from_secs(60)).unwrap();
    s.out();
    s.advance(Duration::from_secs(10)).unwrap_err();
    assert_eq!(s.out(), "");
    assert_eq!(s.c.sm_state().unwrap().seq, 2, "the message and the ping");
}

#[test]
fn settings_debug_does_not_print_the_password() {
    let shown = format!("{:?}", settings(TlsMode::Direct));
    assert!(!shown.contains("pass\""), "{shown}");
    assert!(shown.contains("bot@example.org"), "{shown}");
}

#[test]
fn a_stream_header_before_the_tls_handshake_is_unexpected() {
    let mut s = Session::new(TlsMode::StartTls);
    s.feed(HEADER).unwrap();
    s.feed(STARTTLS).unwrap();
    let evs = s
        .feed("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .unwrap();
    assert_eq!(evs, [Event::StartTls]);
    assert_eq!(
        s.feed(HEADER),
        Err(Error::Protocol(Violation::UnexpectedHeader))
    );
}

#[test]
fn a_stanza_instead_of_the_features_is_an_unexpected_element() {
    let mut s = Session::new(TlsMode::StartTls);
    s.feed(HEADER).unwrap();
    assert_eq!(
        s.feed("<iq type='result' id='x'/>"),
        Err(Error::Protocol(Violation::UnexpectedElement))
    );
}

#[test]
fn a_stranger_element_during_authentication_ends_the_login() {
    let mut s = Session::new(TlsMode::Direct);
    s.feed(HEADER).unwrap();
    s.feed(MECHS_PLAIN).unwrap();
    let err = s
        .feed("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .unwrap_err();
    assert_eq!(err, Error::Protocol(Violation::UnexpectedAuthElement));
    assert_eq!(err.step(), Step::Stream);
}

#[test]
fn an_ack_without_a_valid_h_ends_the_stream() {
    let mut s = Session::online(BIND_SM, Some("<enabled xmlns='urn:xmpp:sm:3'/>"));
    assert_eq!(
        s.feed("<a xmlns='urn:xmpp:sm:3' h='x'/>"),
        Err(Error::Protocol(Violation::AckWithoutH))
    );
}

#[test]
fn features_without_binding_after_login_are_a_bind_step_error() {
    let mut s = Session::authenticated();
    let err = s.feed("<stream:features/>").unwrap_err();
    assert_eq!(err, Error::Bind(BindError::NotOffered));
    assert_eq!(err.step(), Step::Bind);
}

/// The error a bind request answered with `<iq type='result'>{inner}</iq>` gives.
fn bind_result_error(inner: &str) -> Error {
    let mut s = Session::authenticated();
    s.out();
    s.feed(BIND_ONLY).unwrap();
    let id = attr(&s.out(), "id");
    s.feed(&format!("<iq type='result' id='{id}'>{inner}</iq>"))
        .unwrap_err()
}

#[test]
fn a_bind_result_without_a_jid_is_a_bind_step_error() {
    let err = bind_result_error("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>");
    assert_eq!(err, Error::Bind(BindError::NoJid));
    assert_eq!(err.step(), Step::Bind);
}

#[test]
fn a_bind_result_with_an_invalid_jid_is_a_bind_step_error() {
    let err = bind_result_error(
        "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>@example.org</jid></bind>",
    );
    assert_eq!(
        err,
        Error::Bind(BindError::InvalidJid(JidError::EmptyLocal))
    );
    assert_eq!(err.step(), Step::Bind);
}

#[test]
fn a_refused_session_is_a_bind_step_error() {
    let mut s = Session::authenticated();
    s.out();
    s.feed(
        "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
         <session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>",
    )
    .unwrap();
    let bind = s.out();
    answer_bind(&mut s, &bind);
    let id = attr(&s.out(), "id");
    let err = s
        .feed(&format!(
            "<iq type='error' id='{id}'><error type='wait'>\
             <internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        ))
        .unwrap_err();
    assert_eq!(
        err,
        Error::Bind(BindError::SessionRefused("internal-server-error".into()))
    );
    assert_eq!(err.step(), Step::Bind);
}

#[test]
fn errors_read_as_the_documented_log_lines() {
    for (err, text) in [
        (
            Error::LoginTimeout,
            "timed out waiting for the server during login",
        ),
        (Error::PingTimeout, "timed out waiting for a ping reply"),
        (
            Error::Bind(BindError::Refused("conflict".into())),
            "resource binding failed: conflict",
        ),
        (
            Error::Bind(BindError::SessionRefused("forbidden".into())),
            "resource binding failed: session: forbidden",
        ),
        (
            Error::Protocol(Violation::UnexpectedHeader),
            "protocol error: unexpected stream header",
        ),
    ] {
        assert_eq!(err.to_string(), text);
    }
}
