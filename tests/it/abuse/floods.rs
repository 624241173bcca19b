//! Connection floods (issue 10, finding 2).
//!
//! The connection cap is shared by attackers and scrapers: the server gives a held slot back
//! (the longest idle keep-alive connection, else the oldest connection without a finished
//! first request) when a new connection needs one, and closes connections that do not send
//! a first request within `first_request_timeout`. These tests hold a flood open (every
//! connection the server closes is reopened at once) and check that every legitimate scrape
//! succeeds; `connection_floods_figures` prints the p50/p99 side by side with idle.

use super::*;

/// An exporter (stable simulated cluster) served with `opts`.
struct Served {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
    runtime: Arc<bitbucket_zdu_exporter::app::Exporter>,
    _sim: Sim,
}

impl Served {
    async fn start(opts: ServeOptions) -> Served {
        let sim = Sim::stable(3).await;
        let target = TargetConfig::builder("flood", sim.url())
            .poll_interval(Duration::from_secs(1))
            .build()
            .unwrap();
        let config = Config::builder(vec![target])
            .listen_addresses(vec!["127.0.0.1:0".parse().unwrap()])
            .build()
            .unwrap();
        let store = Arc::new(bitbucket_zdu_exporter::tracker::StateStore::in_memory());
        let runtime =
            bitbucket_zdu_exporter::app::Exporter::start(&config, store, None, None).unwrap();
        let router = server::router(runtime.clone(), "/metrics", 64);
        let listeners = server::bind_all(config.web().listen_addresses())
            .await
            .unwrap();
        let addr = listeners[0].local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server::serve_with(
            listeners,
            router,
            async {
                let _ = rx.await;
            },
            Duration::from_secs(2),
            opts,
        ));
        wait_ready(&runtime).await;
        Served {
            addr,
            stop: Some(tx),
            serving,
            runtime,
            _sim: sim,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.serving).await;
        self.runtime.shutdown();
    }
}

/// A connection to `addr` from the source address `from` (any 127/8 address is loopback).
async fn connect_from(from: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// The flooder's address: another client than the scrapers (127.0.0.1).
fn attacker() -> std::net::IpAddr {
    [127, 0, 0, 2].into()
}

/// A flood of connections held open: each one the server closes is reopened at once.
struct Flood {
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Connections the server closed.
    closed: Arc<std::sync::atomic::AtomicUsize>,
    /// Connections established right now (slowloris: head sent in part; idle: one
    /// request answered and kept alive).
    holding: Arc<std::sync::atomic::AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Clone, Copy, PartialEq)]
enum FloodKind {
    /// Sends part of a request head, then nothing.
    Slowloris,
    /// Sends one keep-alive request, reads the answer, then nothing.
    IdleKeepAlive,
}

impl Flood {
    /// `n` connections of `kind` to `addr` from the source address `from`.
    fn start(addr: SocketAddr, from: std::net::IpAddr, n: usize, kind: FloodKind) -> Flood {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
        let stop = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(AtomicUsize::new(0));
        let holding = Arc::new(AtomicUsize::new(0));
        let tasks = (0..n)
            .map(|_| {
                let (stop, closed, holding) = (stop.clone(), closed.clone(), holding.clone());
                tokio::spawn(async move {
                    while !stop.load(SeqCst) {
                        let Ok(mut s) = connect_from(from, addr).await else {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        };
                        let mut buf = vec![0u8; 4096];
                        let established = match kind {
                            FloodKind::Slowloris => s
                                .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                                .await
                                .is_ok(),
                            FloodKind::IdleKeepAlive => {
                                let mut got = Vec::new();
                                let sent = s
                                    .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
                                    .await
                                    .is_ok();
                                while sent && !got.ends_with(b"Healthy.\n") {
                                    match s.read(&mut buf).await {
                                        Ok(0) | Err(_) => break,
                                        Ok(k) => got.extend_from_slice(&buf[..k]),
                                    }
                                }
                                got.ends_with(b"Healthy.\n")
                            }
                        };
                        if !established {
                            closed.fetch_add(1, SeqCst);
                            continue;
                        }
                        holding.fetch_add(1, SeqCst);
                        // Hold until the server closes it (or the test ends).
                        loop {
                            tokio::select! {
                                r = s.read(&mut buf) => match r {
                                    Ok(0) | Err(_) => break,
                                    Ok(_) => continue,
                                },
                                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                                    if stop.load(SeqCst) {
                                        break;
                                    }
                                }
                            }
                        }
                        holding.fetch_sub(1, SeqCst);
                        if !stop.load(SeqCst) {
                            closed.fetch_add(1, SeqCst);
                        }
                    }
                })
            })
            .collect();
        Flood {
            stop,
            closed,
            holding,
            tasks,
        }
    }

    fn closed(&self) -> usize {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn holding(&self) -> usize {
        self.holding.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits (up to `limit`) until `n` connections are held at once.
    async fn established(&self, n: usize, limit: Duration) {
        let t = Instant::now();
        while self.holding() < n && t.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn end(self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// `n` legitimate scrapes of `/metrics`, one after the other, each on a new connection with
/// a 15 s bound; returns how many answered 200 and the times of those.
async fn scrapes(addr: SocketAddr, n: usize) -> (usize, Vec<Duration>) {
    let mut times = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        if let Ok(Ok(r)) =
            tokio::time::timeout(Duration::from_secs(15), http_get(addr, "/metrics", &[])).await
        {
            if r.status == 200 && r.body.contains("bitbucket_zdu_up 1") {
                times.push(t.elapsed());
            }
        }
    }
    (times.len(), times)
}

fn small_cap() -> ServeOptions {
    ServeOptions {
        // Long timeouts: only making room at the cap can let the scrapes through quickly.
        header_read_timeout: Duration::from_secs(60),
        first_request_timeout: Duration::from_secs(60),
        max_connections: 8,
        ..ServeOptions::default()
    }
}

/// At the cap, an idle keep-alive connection is closed when a new connection needs its
/// slot, and the new one is served at once (not after a header or idle timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_makes_room_at_the_cap() {
    let s = Served::start(small_cap()).await;
    let flood = Flood::start(s.addr, attacker(), 8, FloodKind::IdleKeepAlive);
    flood.established(8, Duration::from_secs(10)).await;
    assert_eq!(
        flood.holding(),
        8,
        "8 idle keep-alive connections fill the cap"
    );
    let (ok, times) = scrapes(s.addr, 20).await;
    eprintln!(
        "idle keep-alive at the cap: {ok}/20 scrapes, {} idle closed, times {times:?}",
        flood.closed()
    );
    assert_eq!(
        ok, 20,
        "every scrape past a cap full of idle connections succeeds"
    );
    assert!(
        flood.closed() >= 20,
        "an idle connection was closed for each scrape: {}",
        flood.closed()
    );
    assert!(
        times.iter().all(|t| *t < Duration::from_secs(10)),
        "{times:?}"
    );
    flood.end().await;
    s.stop().await;
}

/// At the cap, the oldest connection that never finished a first request makes room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_connection_makes_room_at_the_cap() {
    let s = Served::start(small_cap()).await;
    let flood = Flood::start(s.addr, attacker(), 12, FloodKind::Slowloris);
    flood.established(12, Duration::from_secs(10)).await;
    let (ok, times) = scrapes(s.addr, 20).await;
    eprintln!(
        "slowloris at the cap: {ok}/20 scrapes, {} slow closed, times {times:?}",
        flood.closed()
    );
    assert_eq!(
        ok, 20,
        "every scrape past a cap full of slowloris connections succeeds"
    );
    assert!(
        flood.closed() >= 20,
        "slow connections were closed: {}",
        flood.closed()
    );
    assert!(
        times.iter().all(|t| *t < Duration::from_secs(10)),
        "{times:?}"
    );
    flood.end().await;
    s.stop().await;
}

/// A connection that sends no complete first request within `first_request_timeout` is
/// closed, though the per-request header timeout is much longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_request_has_a_short_deadline() {
    let s = Served::start(ServeOptions {
        header_read_timeout: Duration::from_secs(60),
        first_request_timeout: Duration::from_millis(500),
        ..ServeOptions::default()
    })
    .await;
    let slow = slowloris(s.addr, 10).await;
    let closed_after = all_closed(slow, Duration::from_secs(10)).await;
    eprintln!("first-request deadline 500ms: 10 slow connections closed after {closed_after:?}");
    // A keep-alive connection that made a request is not held to it.
    let mut ka = TcpStream::connect(s.addr).await.unwrap();
    ka.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = ka.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    ka.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = ka.read_to_end(&mut rest).await;
    assert!(
        String::from_utf8_lossy(&rest).contains("Healthy."),
        "second request on the kept-alive connection"
    );
    s.stop().await;
}

/// The figures for docs/reliability.md: 200 scrapes idle, under 600 slowloris connections
/// and under 512 idle keep-alive connections (each held open: closed ones are reopened at
/// once), with the default limits (cap 512, first request 3 s, header timeout 10 s). Every
/// scrape must succeed; the p50/p99 are printed, not asserted (a noisy 2-core box).
/// `cargo test --release --test abuse connection_floods_figures -- --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_floods_figures() {
    let s = Served::start(ServeOptions::default()).await;
    let n = 200;
    let (ok, mut idle) = scrapes(s.addr, n).await;
    assert_eq!(ok, n);
    let report = |name: &str, v: &mut Vec<Duration>, base: (Duration, Duration)| {
        let (p50, p99) = (pct(v, 0.5), pct(v, 0.99));
        eprintln!(
            "  {name:<28} p50 {p50:>10.2?} ({:>5.1}x)  p99 {p99:>10.2?} ({:>5.1}x)  max {:>10.2?}",
            p50.as_secs_f64() / base.0.as_secs_f64(),
            p99.as_secs_f64() / base.1.as_secs_f64(),
            v.iter().max().unwrap(),
        );
    };
    let base = (pct(&mut idle, 0.5), pct(&mut idle, 0.99));
    eprintln!("connection floods ({n} sequential scrapes of /metrics, new connection each):");
    report("idle", &mut idle, base);

    for (name, from, kind, conns) in [
        ("600 slowloris held", attacker(), FloodKind::Slowloris, 600),
        (
            "512 idle keep-alive held",
            attacker(),
            FloodKind::IdleKeepAlive,
            512,
        ),
        (
            "600 slowloris, same address",
            [127, 0, 0, 1].into(),
            FloodKind::Slowloris,
            600,
        ),
        (
            "512 idle k-a, same address",
            [127, 0, 0, 1].into(),
            FloodKind::IdleKeepAlive,
            512,
        ),
    ] {
        let flood = Flood::start(s.addr, from, conns, kind);
        flood.established(conns, Duration::from_secs(30)).await;
        // A slowloris connection counts as held once the kernel accepted it: give the server
        // a moment to take them all, so the scrapes below meet a full cap.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (ok, mut times) = scrapes(s.addr, n).await;
        let (held, closed) = (flood.holding(), flood.closed());
        flood.end().await;
        report(name, &mut times, base);
        eprintln!("    {ok}/{n} scrapes answered; {held} flood connections open at the end, {closed} closed by the server");
        assert_eq!(ok, n, "every scrape under the flood ({name}) succeeds");
    }
    s.stop().await;
}
