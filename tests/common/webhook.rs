//! A real HTTP/1.1 server for webhook tests, plain or TLS (the test PKI's leaf), one thread
//! per connection. It records every request and answers with what the test's handler says.

use super::certs::certs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the endpoint saw it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// A header's value (case-insensitive name).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics if it is not).
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// The body as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What the endpoint answers.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// Waited before answering.
    pub delay: Duration,
}

impl Reply {
    /// A status with no body.
    pub(crate) fn status(status: u16) -> Self {
        Self {
            status,
            content_type: None,
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// 200 with `body` of type `content_type`.
    pub(crate) fn with(content_type: &str, body: &str) -> Self {
        Self {
            status: 200,
            content_type: Some(content_type.to_string()),
            body: body.as_bytes().to_vec(),
            delay: Duration::ZERO,
        }
    }

    /// This reply with another status.
    pub(crate) fn code(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// This reply after `delay`.
    pub(crate) fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// A running endpoint; it lives until the test process ends.
pub(crate) struct Endpoint {
    pub port: u16,
    pub tls: bool,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Endpoint {
    /// Starts an endpoint on 127.0.0.1 answering with `handler`.
    pub(crate) fn start(
        tls: bool,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the endpoint");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let config = tls.then(server_config);
        let recorded = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (handler, recorded, config) =
                    (handler.clone(), recorded.clone(), config.clone());
                std::thread::spawn(move || {
                    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
                    match config {
                        Some(cfg) => {
                            let Ok(server) = ServerConnection::new(cfg) else {
                                return;
                            };
                            serve(StreamOwned::new(server, conn), &handler, &recorded);
                        }
                        None => serve(conn, &handler, &recorded),
                    }
                });
            }
        });
        Self {
            port,
            tls,
            requests,
        }
    }

    /// The URL of `path` on this endpoint.
    pub(crate) fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    /// The requests so far.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn server_config() -> Arc<ServerConfig> {
    let c = certs();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&c.cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(&c.key).unwrap();
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    Arc::new(config)
}

fn serve<S: Read + Write>(mut s: S, handler: &Handler, recorded: &Mutex<Vec<Recorded>>) {
    let Some(req) = read_request(&mut s) else {
        return;
    };
    recorded.lock().unwrap().push(req.clone());
    let reply = handler(&req);
    std::thread::sleep(reply.delay);
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    if let Some(ct) = &reply.content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    // The client may hang up early (a refused large body): not an error here.
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(&reply.body);
    let _ = s.flush();
}

fn read_request<S: Read>(s: &mut S) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).ok().filter(|&n| n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Recorded {
        method,
        path,
        headers,
        body,
    })
}
