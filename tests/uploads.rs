//! Files posted to `/msg` and `xrelay send --file` against a real Prosody with
//! `mod_http_file_share` over HTTPS (the test CA): XEP-0363 slot, PUT, announcement with
//! XEP-0066 OOB, the bounds, and hostile bodies.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    http, unique_user, xrelay, Bed, Bot, FileShare, HttpResponse, Message, Prosody, ProsodyOpts,
    TestClient,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const MIB: usize = 1 << 20;

/// One instance with the upload service for this file's tests: images, octet streams and
/// text only (a PDF is refused), up to 16 MiB.
fn server() -> &'static Prosody {
    static P: OnceLock<Prosody> = OnceLock::new();
    P.get_or_init(|| {
        Prosody::start(ProsodyOpts {
            muc: false,
            file_share: Some(FileShare {
                size_limit: 16 * MIB as u64,
                allowed_types: vec![
                    "image/*".into(),
                    "application/octet-stream".into(),
                    "text/plain".into(),
                ],
            }),
            ..ProsodyOpts::default()
        })
    })
}

/// A bot on [`server`] with a `msg` key.
fn relay() -> Bed<'static> {
    Bed::on(server()).key("msg")
}

/// A file of `content_type` posted to `user`.
fn post_file(r: &Bot, user: &str, content_type: &str, body: &[u8]) -> HttpResponse {
    r.post(&format!("/msg/{user}"), content_type, body)
}

/// A request written as given (head and body, `TOKEN` standing for the key), and the
/// answer, if any.
fn raw(r: &Bot, head: &str, body: &[u8], then_close: bool) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let head = head.replace("TOKEN", &r.token);
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    if then_close {
        return String::new();
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A text message still goes through after whatever came before.
fn still_serves(r: &Bot, c: &mut TestClient, user: &str) {
    let res = r.post_text(&format!("/msg/{user}"), "still here");
    assert_eq!(res.status, 202, "{res:?}");
    let m = c.recv_message(WAIT).expect("the next message");
    assert_eq!(
        m.body.as_deref(),
        Some("still here"),
        "nothing else came first"
    );
}

fn receiver() -> (TestClient, String) {
    let p = server();
    let user = unique_user("rcpt");
    p.register(&user, "pw");
    (TestClient::connect(p, &user, "pw"), user)
}

/// `n` bytes that start like a JPEG (SOI, APP0 JFIF) and do not repeat.
fn jpeg(n: usize) -> Vec<u8> {
    let mut out = vec![
        0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0,
    ];
    let mut x: u32 = 0x1234_5678;
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// GET `url` with curl, trusting the test CA; the bytes served.
fn fetch(url: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(server().ca_file())
        .arg(url)
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "{out:?}");
    out.stdout
}

/// The announcement's body and its OOB URL.
fn announcement(c: &mut TestClient) -> (String, String) {
    let m = c.recv_message(WAIT).expect("an announcement");
    let oob = oob_url(&m);
    (m.body.unwrap_or_default(), oob)
}

/// The XEP-0066 URL of a message.
fn oob_url(m: &Message) -> String {
    m.el.child_ns("x", "jabber:x:oob")
        .and_then(|x| x.child_text("url"))
        .unwrap_or_else(|| panic!("no OOB url in {}", m.raw))
        .to_string()
}

fn slot_requests() -> usize {
    server().log().matches("Issuing upload slot").count()
}

fn write_temp(name: &str, data: &[u8]) -> PathBuf {
    let path = server().dir.join(format!("{}-{name}", unique_user("f")));
    std::fs::write(&path, data).unwrap();
    path
}

#[test]
fn a_posted_jpeg_arrives_with_its_url_and_oob_and_the_url_serves_the_same_bytes() {
    let r = relay().start();
    let (mut c, user) = receiver();
    let pic = jpeg(3_000_000);
    let res = r.request(
        "POST",
        &format!("/msg/{user}?wait=1"),
        &[("Content-Type", "image/jpeg")],
        &pic,
    );
    assert_eq!(res.status, 200, "{res:?}");
    let (body, url) = announcement(&mut c);
    assert_eq!(body, url, "the body is the URL");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert!(url.ends_with("image.jpg"), "default name: {url}");
    assert!(fetch(&url) == pic, "the same bytes");
    let auth = format!("Bearer {}", r.token);
    let metrics = http(r.port, "GET", "/metrics", &[("Authorization", &auth)], b"");
    assert!(
        metrics.body.contains("xrelay_uploads_stored_total 1\n"),
        "{}",
        metrics.body
    );
}

#[test]
fn a_curl_form_with_body_and_file_arrives_with_the_text_and_the_url() {
    let r = relay().start();
    let (mut c, user) = receiver();
    let pic = jpeg(3_000_000);
    let path = write_temp("pic.jpg", &pic);
    let out = Command::new("curl")
        .args(["-sS", "-F", "body=hi", "-F"])
        .arg(format!("file=@{}", path.display()))
        .arg("-H")
        .arg(format!("Authorization: Bearer {}", r.token))
        .arg(format!("http://127.0.0.1:{}/msg/{user}", r.port))
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.contains("queued"), "{answer} {out:?}");
    let (body, url) = announcement(&mut c);
    assert_eq!(body, format!("hi\n{url}"));
    assert!(url.contains("pic.jpg"), "the form's file name: {url}");
    assert!(fetch(&url) == pic, "the same bytes");
}

#[test]
fn a_file_over_upload_max_bytes_gets_413_before_any_slot_is_requested() {
    let r = relay().section("[upload]\nmax_bytes = 1048576\n").start();
    let (mut c, user) = receiver();
    let before = slot_requests();
    let res = post_file(&r, &user, "image/jpeg", &jpeg(MIB + 1));
    assert_eq!(res.status, 413, "{res:?}");
    assert_eq!(slot_requests(), before, "no slot was asked for");
    still_serves(&r, &mut c, &user);
}

#[test]
fn a_slot_the_server_refuses_gives_502_with_its_condition() {
    let r = relay().start();
    let (mut c, user) = receiver();
    let res = post_file(&r, &user, "application/pdf", b"%PDF-1.4 not really");
    assert_eq!(res.status, 502, "{res:?}");
    assert!(res.body.contains("refused the slot"), "{res:?}");
    still_serves(&r, &mut c, &user);
}

#[test]
fn peak_rss_grows_less_than_1_mib_during_a_10_mib_upload() {
    let r = relay().start();
    let (mut c, user) = receiver();
    // A first small upload finds the service and sets up TLS.
    let warm = post_file(&r, &user, "image/png", &jpeg(50_000));
    assert_eq!(warm.status, 202, "{warm:?}");
    announcement(&mut c);
    let (before, _) = r.daemon.peak_rss_kib_and_sockets();
    let big = jpeg(10 * MIB);
    let res = post_file(&r, &user, "application/octet-stream", &big);
    assert_eq!(res.status, 202, "{res:?}");
    let (_, url) = announcement(&mut c);
    let (after, _) = r.daemon.peak_rss_kib_and_sockets();
    eprintln!("VmHWM before {before} KiB, after {after} KiB");
    assert!(after < before + 1024, "peak RSS {before} -> {after} KiB");
    assert!(fetch(&url) == big, "the same bytes");
}

#[test]
fn xrelay_send_file_uploads_and_announces_with_its_own_login() {
    let r = relay().start();
    let (mut c, user) = receiver();
    let pic = jpeg(200_000);
    let path = write_temp("door.jpg", &pic);
    let out = xrelay(
        &r.cfg,
        &["send", "--file", path.to_str().unwrap(), &user, "door cam"],
    );
    assert!(out.status.success(), "{out:?}");
    let (body, url) = announcement(&mut c);
    assert_eq!(body, format!("door cam\n{url}"));
    assert!(url.ends_with("door.jpg"), "{url}");
    assert!(fetch(&url) == pic, "the same bytes");
}

/// A form of `body=hi` and a file part, with the file's data as given.
fn form(file: &[u8], after_file: &str) -> Vec<u8> {
    let mut out = b"--XB\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\nhi\r\n\
        --XB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\
        Content-Type: image/jpeg\r\n\r\n"
        .to_vec();
    out.extend_from_slice(file);
    out.extend_from_slice(after_file.as_bytes());
    out
}

fn form_head(path: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer TOKEN\r\n\
         Content-Type: multipart/form-data; boundary=XB\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// Nothing was announced: the next message the receiver gets is the text that follows.
fn nothing_announced(r: &Bot, c: &mut TestClient, user: &str) {
    still_serves(r, c, user);
}

/// A form whose file part is followed by `after_file` (all of it declared in
/// `Content-Length`) gets 400, and nothing is announced.
fn form_is_refused(after_file: &str) {
    let r = relay().start();
    let (mut c, user) = receiver();
    let body = form(&jpeg(100_000), after_file);
    let head = form_head(&format!("/msg/{user}"), body.len());
    let answer = raw(&r, &head, &body, false);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    nothing_announced(&r, &mut c, &user);
}

#[test]
fn a_truncated_form_is_refused_and_nothing_is_announced() {
    // The closing delimiter is cut short.
    form_is_refused("\r\n--XB");
}

#[test]
fn a_form_whose_file_is_not_last_is_refused_and_nothing_is_announced() {
    form_is_refused(
        "\r\n--XB\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nlate\r\n--XB--\r\n",
    );
}

/// The head of a raw JPEG post to `user` declaring `length` bytes.
fn jpeg_head(user: &str, length: usize) -> String {
    format!(
        "POST /msg/{user} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer TOKEN\r\n\
         Content-Type: image/jpeg\r\nContent-Length: {length}\r\n\r\n"
    )
}

#[test]
fn a_body_shorter_than_its_content_length_is_answered_and_nothing_is_announced() {
    let r = relay().http("read_timeout = \"2s\"\n").start();
    let (mut c, user) = receiver();
    let pic = jpeg(100_000);
    let head = jpeg_head(&user, pic.len() + 5000);
    // The client waits with the rest: the minimum body rate ends it.
    let answer = raw(&r, &head, &pic, false);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408") || answer.contains(" 400 "),
        "{answer}"
    );
    nothing_announced(&r, &mut c, &user);
}

#[test]
fn a_client_gone_mid_upload_announces_nothing() {
    let mut r = relay().start();
    let (mut c, user) = receiver();
    let pic = jpeg(2_000_000);
    let head = jpeg_head(&user, pic.len());
    raw(&r, &head, &pic[..pic.len() / 2], true);
    r.daemon.wait_for("failed", WAIT);
    nothing_announced(&r, &mut c, &user);
}

#[test]
fn a_raw_file_without_content_length_gets_411() {
    let r = relay().start();
    let (mut c, user) = receiver();
    let head = format!(
        "POST /msg/{user} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer TOKEN\r\n\
         Content-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let answer = raw(&r, &head, b"5\r\nhello\r\n0\r\n\r\n", false);
    assert!(answer.starts_with("HTTP/1.1 411"), "{answer}");
    nothing_announced(&r, &mut c, &user);
}

#[test]
fn a_file_for_a_server_without_upload_service_gets_502() {
    let r = Bed::new().key("msg").start();
    let res = post_file(&r, "someone", "image/png", b"x");
    assert_eq!(res.status, 502, "{res:?}");
    assert!(res.body.contains("no file upload service"), "{res:?}");
}

#[test]
fn a_file_while_the_stream_is_offline_gets_503_with_retry_after() {
    let mut p = Prosody::start(ProsodyOpts {
        muc: false,
        ..ProsodyOpts::default()
    });
    let mut r = Bed::on(&p).key("msg").start();
    p.stop();
    r.daemon.wait_for("disconnected", WAIT);
    let res = post_file(&r, "someone", "image/png", b"x");
    assert_eq!(res.status, 503, "{res:?}");
    assert!(res.header("Retry-After").is_some(), "{res:?}");
}

#[test]
fn a_second_upload_while_one_runs_gets_503_with_retry_after() {
    // The first body pauses on purpose: no minimum rate.
    let r = relay().http("min_body_rate = 0\n").start();
    let (mut c, user) = receiver();
    let pic = jpeg(200_000);
    let head = jpeg_head(&user, pic.len()).replace("TOKEN", &r.token);
    // The first upload holds the only place while its body trickles in.
    let mut first = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    first.write_all(head.as_bytes()).unwrap();
    first.write_all(&pic[..1000]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let res = post_file(&r, &user, "image/jpeg", &pic);
    assert_eq!(res.status, 503, "{res:?}");
    assert!(res.header("Retry-After").is_some(), "{res:?}");
    first.write_all(&pic[1000..]).unwrap();
    let (_, url) = announcement(&mut c);
    assert!(fetch(&url) == pic, "the first upload completes");
}

#[test]
fn a_file_over_the_services_own_limit_gets_413() {
    let r = relay().section("[upload]\nmax_bytes = 33554432\n").start();
    let (mut c, user) = receiver();
    let res = post_file(&r, &user, "image/jpeg", &jpeg(16 * MIB + 1));
    assert_eq!(res.status, 413, "{res:?}");
    assert!(
        res.body.contains("16777216"),
        "the service's limit: {res:?}"
    );
    still_serves(&r, &mut c, &user);
}

#[test]
fn an_octet_stream_named_in_the_query_gets_the_type_of_its_name_and_the_header_text() {
    let r = relay().start();
    let (mut c, user) = receiver();
    let png = jpeg(10_000);
    let res = r.request(
        "POST",
        &format!("/msg/{user}?filename=snap.png"),
        &[
            ("Content-Type", "application/octet-stream"),
            ("Message", "garden"),
        ],
        &png,
    );
    assert_eq!(res.status, 202, "{res:?}");
    let (body, url) = announcement(&mut c);
    assert_eq!(body, format!("garden\n{url}"));
    assert!(url.ends_with("/snap.png"), "{url}");
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{content_type}",
            "--cacert",
        ])
        .arg(server().ca_file())
        .arg(&url)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "image/png", "{out:?}");
}

#[test]
fn bytes_past_the_content_length_are_not_part_of_the_file_and_get_400() {
    let r = relay().start();
    let (mut c, user) = receiver();
    let pic = jpeg(60_000);
    // Declares 50,000 bytes and sends 60,000: the file is the declared bytes; the rest
    // is read as a next request, which is not HTTP.
    let answer = raw(&r, &jpeg_head(&user, 50_000), &pic, false);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    assert!(answer.contains("HTTP/1.1 400"), "{answer}");
    let (_, url) = announcement(&mut c);
    assert!(fetch(&url) == pic[..50_000], "exactly the declared bytes");
    still_serves(&r, &mut c, &user);
}

#[test]
fn an_upload_over_its_timeout_gets_504_and_nothing_is_announced() {
    let r = relay()
        .http("min_body_rate = 0\n")
        .section("[upload]\ntimeout = \"1s\"\n")
        .start();
    let (mut c, user) = receiver();
    let pic = jpeg(100_000);
    // The body stops after 1,000 bytes and the connection stays open.
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let head = jpeg_head(&user, pic.len()).replace("TOKEN", &r.token);
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&pic[..1000]).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    nothing_announced(&r, &mut c, &user);
}

/// `xrelay send --file` (with `text` when given) to a daemon on a trusted unix socket: the
/// file goes through the daemon, not a login of the command's own.
fn send_file_through_the_socket(text: Option<&str>, name: &str) -> (String, String, Vec<u8>) {
    let dir = server().dir.join(unique_user("sock"));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("xrelay.sock");
    let mut b = Bed::on(server())
        .listen(&format!("unix:{}", sock.display()))
        .http("unix_trust = true")
        .start();
    let cfg = b.cfg.clone();
    let daemon = &mut b.daemon;
    let (mut c, user) = receiver();
    let data = jpeg(300_000);
    let path = write_temp(name, &data);
    let mut args = vec!["send", "--file", path.to_str().unwrap(), &user];
    args.extend(text);
    let out = xrelay(&cfg, &args);
    assert!(out.status.success(), "{out:?}\n{}", daemon.log());
    daemon.wait_for("stored", WAIT);
    let m = c.recv_message(WAIT).expect("an announcement");
    // Sent by the daemon's own session, not by a login of `send`'s.
    assert!(!m.from.contains("-send-"), "from {}", m.from);
    let url = oob_url(&m);
    (m.body.unwrap_or_default(), url, data)
}

#[test]
fn send_file_through_the_daemons_socket_sends_a_form_with_the_text() {
    let (body, url, data) = send_file_through_the_socket(Some("door cam"), "door.jpg");
    assert_eq!(body, format!("door cam\n{url}"));
    assert!(url.ends_with("door.jpg"), "{url}");
    assert!(fetch(&url) == data, "the same bytes");
}

#[test]
fn send_file_through_the_daemons_socket_without_text_names_the_raw_file() {
    // A .txt file: text/plain, a file only because the request names it.
    let (body, url, data) = send_file_through_the_socket(None, "notes.txt");
    assert_eq!(body, url);
    assert!(url.ends_with("notes.txt"), "{url}");
    assert!(fetch(&url) == data, "the same bytes");
}
