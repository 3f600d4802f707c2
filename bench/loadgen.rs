//! Load generator for `bench/throughput.sh`: posts N messages to xrelay's `/msg?wait=1`
//! over keep-alive connections at a given concurrency (each connection has one message in
//! flight until the server acknowledged it: a closed loop that measures what the whole
//! path sustains), receives them as a second XMPP account, and prints throughput and
//! POST-to-arrival latency.
//!
//! usage: loadgen PORT TOKEN RECEIVER_CONFIG COUNT CONCURRENCY

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xrelay::config::Config;
use xrelay::net::conn::Connection;
use xrelay::net::tls;
use xrelay::xmpp::stream::Event;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port, token, receiver_cfg, count, concurrency] = &args[..] else {
        eprintln!("usage: loadgen PORT TOKEN RECEIVER_CONFIG COUNT CONCURRENCY");
        std::process::exit(2);
    };
    let port: u16 = port.parse().expect("port");
    let count: usize = count.parse().expect("count");
    let concurrency: usize = concurrency.parse().expect("concurrency");
    let cfg = Config::load(Path::new(receiver_cfg), None).expect("receiver config");
    let to = cfg.xmpp.jid.to_string();

    let sent: Arc<Vec<Mutex<Option<Instant>>>> =
        Arc::new((0..count).map(|_| Mutex::new(None)).collect());
    let arrived: Arc<Vec<Mutex<Option<Instant>>>> =
        Arc::new((0..count).map(|_| Mutex::new(None)).collect());
    let received = Arc::new(AtomicUsize::new(0));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    {
        let arrived = arrived.clone();
        let received = received.clone();
        std::thread::spawn(move || {
            let trust = tls::client_config(&cfg.xmpp.trust()).expect("tls");
            smol::block_on(async {
                let mut conn = Connection::open(&cfg.xmpp, trust, &mut |_| {})
                    .await
                    .expect("receiver online");
                let _ = conn.send(&xrelay::xmpp::xml::Element::new(
                    "presence",
                    "jabber:client",
                ));
                ready_tx.send(()).unwrap();
                loop {
                    match conn.next_event().await {
                        Ok(Event::Stanza(el)) if el.name() == "message" => {
                            let now = Instant::now();
                            let body = el
                                .get_child("body", "jabber:client")
                                .map(|b| b.text_content());
                            if let Some(i) = body.and_then(|b| {
                                b.strip_prefix("bench ")
                                    .and_then(|n| n.parse::<usize>().ok())
                            }) {
                                if i < arrived.len() {
                                    *arrived[i].lock().unwrap() = Some(now);
                                    received.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(e) => panic!("receiver: {e}"),
                    }
                }
            });
        });
    }
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("receiver online");
    std::thread::sleep(Duration::from_millis(200));

    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let next = next.clone();
            let sent = sent.clone();
            let token = token.clone();
            let to = to.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
                s.set_nodelay(true).unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= sent.len() {
                        break;
                    }
                    let body = format!("bench {i}");
                    let req = format!(
                        "POST /msg/{to}?wait=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
                         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    *sent[i].lock().unwrap() = Some(Instant::now());
                    s.write_all(req.as_bytes()).unwrap();
                    let mut status = String::new();
                    r.read_line(&mut status).unwrap();
                    assert!(status.contains(" 200 "), "post {i}: {status}");
                    let mut len = 0;
                    loop {
                        let mut line = String::new();
                        r.read_line(&mut line).unwrap();
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut buf = vec![0; len];
                    r.read_exact(&mut buf).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let posted = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let got = received.load(Ordering::Relaxed);
    let last = arrived
        .iter()
        .filter_map(|a| *a.lock().unwrap())
        .max()
        .unwrap_or(start);
    let mut lat: Vec<Duration> = sent
        .iter()
        .zip(arrived.iter())
        .filter_map(|(s, a)| {
            Some(
                a.lock()
                    .unwrap()
                    .as_ref()?
                    .saturating_duration_since((*s.lock().unwrap())?),
            )
        })
        .collect();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let total = last.duration_since(start);
    println!(
        "concurrency {concurrency}: {count} posted in {:.2}s, {got} arrived, {:.0} msg/s, p50 {:.2} ms, p99 {:.2} ms",
        posted.as_secs_f64(),
        got as f64 / total.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
    if got < count {
        std::process::exit(1);
    }
}
