//! The mock Bitbucket upstream: raw TCP (so it can misbehave at the byte level), optionally
//! wrapped in TLS, answering good `/rest/zdu/*` bodies or failing as a [`Fault`] says, and
//! recording every request it receives.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A good `/rest/zdu/cluster` answer: two ACTIVE nodes on 8.19.0.
pub const CLUSTER_JSON: &str = r#"{"upgradeModeEnabled":false,"state":"STABLE","originalVersion":null,"nodes":[{"id":"a1","name":"bitbucket-0","ipAddress":"10.0.0.10","state":"ACTIVE","tasksTotal":3,"activeUserCount":20,"buildNumber":"8019000","version":"8.19.0","local":true,"portNumber":5701,"links":[]},{"id":"b2","name":"bitbucket-1","ipAddress":"10.0.0.11","state":"ACTIVE","tasksTotal":4,"activeUserCount":27,"buildNumber":"8019000","version":"8.19.0","local":false,"portNumber":5701,"links":[]}],"links":[]}"#;
/// A good `/rest/zdu/state` answer.
pub const STATE_JSON: &str = r#"{"state":"STABLE","buildInfo":{"id":"a1","name":"bitbucket-0","ipAddress":"10.0.0.10","state":"ACTIVE","tasksTotal":3,"activeUserCount":20,"buildNumber":"8019000","version":"8.19.0","local":true,"portNumber":5701}}"#;
/// Body size of [`Fault::Huge`].
pub const HUGE: u64 = 50 * 1024 * 1024;

/// What the mock upstream does with the next request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answers `/cluster` and `/state` correctly.
    Good,
    /// Reads the request and never answers (until the client gives up and closes).
    Hang,
    /// Answers correctly, but only after this long.
    Slow(Duration),
    /// Sends the headers, then the body one byte every 100 ms.
    Trickle,
    /// Reads the request, then resets the connection (RST).
    Reset,
    /// Announces a body, sends part of it and closes.
    CutMidBody,
    /// This status with this JSON body.
    Status(u16, &'static str),
    /// 200 with this content type (None: no header) and body.
    Body(Option<&'static str>, &'static str),
    /// 200 with 50 MB of valid-looking JSON, chunked (no length) or with Content-Length.
    Huge { chunked: bool },
    /// 302 to `<base>/moved<path>`; requests for `/moved...` get the good answer.
    Redirect(String),
    /// The inner fault on `/state` only; `/cluster` answers correctly.
    StateOnly(Box<Fault>),
    /// The inner fault on `/cluster` only; `/state` answers correctly.
    ClusterOnly(Box<Fault>),
    /// Whatever the script answers, given the request's number (from 0) and its head.
    Scripted(Script),
}

/// An answer of a [`Fault::Scripted`] mock.
#[derive(Debug, Clone)]
pub struct Canned {
    /// The status code.
    pub status: u16,
    /// The Content-Type, if any.
    pub content_type: Option<String>,
    /// Extra header lines, each ending in CRLF.
    pub extra_headers: String,
    /// The body.
    pub body: String,
}

/// What a scripted mock answers: request number (from 0) and request head → answer.
pub type ScriptFn = dyn Fn(usize, &str) -> Canned + Send + Sync;

/// The function behind [`Fault::Scripted`].
#[derive(Clone)]
pub struct Script(pub Arc<ScriptFn>);

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Script")
    }
}

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request method.
    pub method: String,
    /// The request path (with the query).
    pub path: String,
    /// The Authorization header, if any.
    pub authorization: Option<String>,
}

/// A mock Bitbucket on loopback, misbehaving as its current [`Fault`] says. Its accept loop
/// runs until the test's runtime ends.
#[derive(Clone)]
pub struct Mock {
    /// Where it listens.
    pub addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    /// The `/cluster` and `/state` bodies of a good answer.
    good: Arc<Mutex<(String, String)>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Bytes of body each huge answer managed to send before the client hung up.
    pub huge_sent: Arc<Mutex<Vec<u64>>>,
    tls: Option<Arc<Mutex<Arc<rustls::ServerConfig>>>>,
}

impl Mock {
    /// A plain-HTTP mock on `ip`, answering well.
    pub async fn start(ip: &str) -> std::io::Result<Mock> {
        Self::start_inner(TcpListener::bind((ip, 0)).await?, None)
    }

    /// A TLS mock on `127.0.0.1` with this server configuration, answering well.
    pub async fn start_tls(config: Arc<rustls::ServerConfig>) -> Mock {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_inner(l, Some(Arc::new(Mutex::new(config)))).unwrap()
    }

    /// A mock accepting on `listener` (TLS when `tls` is set).
    pub fn start_inner(
        listener: TcpListener,
        tls: Option<Arc<Mutex<Arc<rustls::ServerConfig>>>>,
    ) -> std::io::Result<Mock> {
        let mock = Mock {
            addr: listener.local_addr()?,
            fault: Arc::new(Mutex::new(Fault::Good)),
            good: Arc::new(Mutex::new((CLUSTER_JSON.into(), STATE_JSON.into()))),
            seen: Arc::new(Mutex::new(Vec::new())),
            huge_sent: Arc::new(Mutex::new(Vec::new())),
            tls,
        };
        let m = mock.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let m = m.clone();
                tokio::spawn(async move { m.connection(stream).await });
            }
        });
        Ok(mock)
    }

    /// A mock on `127.0.0.1` that answers `cluster` and `state` (200, JSON) to every request
    /// for a path ending in `/cluster` or `/state`.
    pub async fn answering(cluster: &str, state: &str) -> Mock {
        let m = Mock::start("127.0.0.1").await.unwrap();
        *m.good.lock().unwrap() = (cluster.to_string(), state.to_string());
        m
    }

    /// A mock on `127.0.0.1` whose every answer comes from `script`.
    pub async fn scripted(script: impl Fn(usize, &str) -> Canned + Send + Sync + 'static) -> Mock {
        let m = Mock::start("127.0.0.1").await.unwrap();
        m.set(Fault::Scripted(Script(Arc::new(script))));
        m
    }

    /// What to do with the next requests.
    pub fn set(&self, f: Fault) {
        *self.fault.lock().unwrap() = f;
    }

    /// The server certificate of the next TLS handshakes.
    pub fn set_tls(&self, config: Arc<rustls::ServerConfig>) {
        *self.tls.as_ref().expect("a TLS mock").lock().unwrap() = config;
    }

    /// `http://addr` or `https://addr`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    async fn connection(self, mut stream: TcpStream) {
        if let Some(tls) = &self.tls {
            let config = tls.lock().unwrap().clone();
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            // A failed handshake (the client refused the certificate) just ends here.
            if let Ok(s) = acceptor.accept(stream).await {
                self.serve(s).await;
            }
            return;
        }
        let Some((path, head)) = self.read_request(&mut stream).await else {
            return;
        };
        if matches!(self.fault_for(&path), Fault::Reset) {
            let _ = stream.set_zero_linger();
            drop(stream);
            return;
        }
        self.answer(stream, &path, &head).await;
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&self, mut s: S) {
        if let Some((path, head)) = self.read_request(&mut s).await {
            self.answer(s, &path, &head).await;
        }
    }

    fn fault_for(&self, path: &str) -> Fault {
        match self.fault.lock().unwrap().clone() {
            Fault::StateOnly(inner) if path.ends_with("/rest/zdu/state") => *inner,
            Fault::StateOnly(_) => Fault::Good,
            Fault::ClusterOnly(inner) if path.ends_with("/rest/zdu/cluster") => *inner,
            Fault::ClusterOnly(_) => Fault::Good,
            Fault::Redirect(_) if path.starts_with("/moved") => Fault::Good,
            f => f,
        }
    }

    /// Reads and records one request head (at most 64 KiB); returns its path and the head.
    async fn read_request<S: AsyncRead + Unpin>(&self, s: &mut S) -> Option<(String, String)> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 || buf.len() > 64 * 1024 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let method = head.split_whitespace().next()?.to_string();
        let path = head.split_whitespace().nth(1)?.to_string();
        let authorization = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("authorization")
                    .then(|| v.trim().to_string())
            })
            .filter(|v| !v.is_empty());
        self.seen.lock().unwrap().push(Seen {
            method,
            path: path.clone(),
            authorization,
        });
        Some((path, head))
    }

    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(&self, mut s: S, path: &str, head: &str) {
        let bodies = self.good.lock().unwrap().clone();
        let good = |path: &str| -> (u16, String) {
            if path.ends_with("/cluster") {
                (200, bodies.0.clone())
            } else if path.ends_with("/state") {
                (200, bodies.1.clone())
            } else {
                (404, String::new())
            }
        };
        match self.fault_for(path) {
            Fault::Good => {
                let (status, body) = good(path);
                let _ = write_response(&mut s, status, Some("application/json"), &body, "").await;
            }
            Fault::Hang => {
                // Hold the connection until the client closes it.
                let mut sink = [0u8; 1024];
                while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
            }
            Fault::Slow(d) => {
                tokio::time::sleep(d).await;
                let (status, body) = good(path);
                let _ = write_response(&mut s, status, Some("application/json"), &body, "").await;
            }
            Fault::Trickle => {
                let (_, body) = good(path);
                let head = json_head(body.len());
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for b in body.bytes() {
                    if s.write_all(&[b]).await.is_err() || s.flush().await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Fault::Reset => {} // handled on the raw stream
            Fault::CutMidBody => {
                let (_, body) = good(path);
                let head = json_head(body.len());
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body.as_bytes()[..body.len() / 2]).await;
                let _ = s.flush().await;
                let _ = s.shutdown().await;
            }
            Fault::Status(status, body) => {
                let ct = (!body.is_empty()).then_some("application/json;charset=UTF-8");
                let _ = write_response(&mut s, status, ct, body, "").await;
            }
            Fault::Body(ct, body) => {
                let _ = write_response(&mut s, 200, ct, body, "").await;
            }
            Fault::Huge { chunked } => {
                let sent = stream_huge(&mut s, chunked).await;
                self.huge_sent.lock().unwrap().push(sent);
            }
            Fault::Redirect(base) => {
                let head = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {base}/moved{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.shutdown().await;
            }
            Fault::StateOnly(_) | Fault::ClusterOnly(_) => unreachable!("resolved by fault_for"),
            Fault::Scripted(script) => {
                let n = self.seen.lock().unwrap().len().saturating_sub(1);
                let c = (script.0)(n, head);
                let ct = c.content_type.as_deref();
                let _ = write_response(&mut s, c.status, ct, &c.body, &c.extra_headers).await;
            }
        }
    }
}

/// The head of a 200 JSON answer of `len` bytes.
fn json_head(len: usize) -> String {
    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
}

async fn write_response<S: AsyncWrite + Unpin>(
    s: &mut S,
    status: u16,
    content_type: Option<&str>,
    body: &str,
    extra_headers: &str,
) -> std::io::Result<()> {
    let ct = content_type
        .map(|c| format!("Content-Type: {c}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status} X\r\n{ct}{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    s.flush().await?;
    s.shutdown().await
}

/// Streams a 50 MB `/cluster`-shaped JSON document; returns the body bytes the client took
/// before it hung up.
async fn stream_huge<S: AsyncWrite + Unpin>(s: &mut S, chunked: bool) -> u64 {
    let head = if chunked {
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_string()
    } else {
        format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {HUGE}\r\nConnection: close\r\n\r\n")
    };
    if s.write_all(head.as_bytes()).await.is_err() {
        return 0;
    }
    let node = r#"{"id":"n","name":"bitbucket-0","ipAddress":"10.0.0.10","state":"ACTIVE","version":"8.19.0"},"#;
    let mut piece = String::from(r#"{"nodes":["#);
    while piece.len() < 64 * 1024 {
        piece.push_str(node);
    }
    let mut sent = 0u64;
    while sent < HUGE {
        let data = piece.as_bytes();
        let ok = if chunked {
            let mut frame = format!("{:x}\r\n", data.len()).into_bytes();
            frame.extend_from_slice(data);
            frame.extend_from_slice(b"\r\n");
            s.write_all(&frame).await
        } else {
            s.write_all(data).await
        };
        if ok.is_err() {
            return sent;
        }
        sent += data.len() as u64;
        if piece.starts_with('{') {
            piece = piece[r#"{"nodes":["#.len()..].to_string();
        }
    }
    sent
}
