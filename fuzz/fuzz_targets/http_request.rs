//! Whole HTTP connections through the listener's request path: hyper's parser, the Host
//! check, routing, authentication (with the limiter and the per-key cap), body reading and
//! the `/msg`, `/rest`, `/invites_api`, `/invite/…`, `/health` and `/metrics` answers, with
//! a closed outbox standing in for the stream.
//!
//! Input: byte 0 picks how many bytes each socket read returns (1 to 64) and the client's
//! address; the rest is what the client sends, then end of file. `KEY` in it is replaced
//! by a valid API key, so the fuzzer reaches what lies behind authentication.
//!
//! Invariants: no panic; whatever is written back is HTTP/1.x answers; the connection ends
//! soon after its input does (no answer waits for a timer).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use smol::io::{AsyncRead, AsyncWrite};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use xrelay::app::App;
use xrelay::http::{serve_connection, Conn};

/// The client's bytes, handed out `chunk` at a time; the answers are kept for checking.
struct Client<'a> {
    input: &'a [u8],
    chunk: usize,
    output: Vec<u8>,
}

impl AsyncRead for Client<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let n = self.input.len().min(self.chunk).min(buf.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for Client<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Keep the start of the answers; the rest only needs to be accepted.
        let room = 64 * 1024usize.saturating_sub(self.output.len());
        let keep = buf.len().min(room);
        self.output.extend_from_slice(&buf[..keep]);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

struct Shared {
    app: Rc<App>,
    token: String,
}

thread_local! {
    static SHARED: Shared = {
        static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
        let dir = DIR.get_or_init(|| {
            let d = std::env::temp_dir().join(format!("xrelay-fuzz-http-{}", std::process::id()));
            std::fs::create_dir_all(&d).unwrap();
            d
        });
        let (app, token) = xrelay::fuzzing::http_app(dir).unwrap();
        Shared { app: Rc::new(app), token }
    };
}

fuzz_target!(|data: &[u8]| {
    let [first, rest @ ..] = data else {
        return;
    };
    SHARED.with(|s| {
        let input = common::replace(rest, b"KEY", s.token.as_bytes());
        let mut client = Client {
            input: &input,
            chunk: usize::from(first & 0x3f) + 1,
            output: Vec::new(),
        };
        let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, first >> 6));
        let conn = Rc::new(Conn::default());
        let serve = serve_connection(&mut client, s.app.clone(), peer, conn);
        // Every read is ready, so the connection ends without waiting for a timer (a
        // wait would show as a libFuzzer timeout).
        smol::block_on(serve);
        let out = &client.output;
        assert!(out.is_empty() || out.starts_with(b"HTTP/1."), "{:?}", String::from_utf8_lossy(&out[..out.len().min(200)]));
    });
});
