//! The exporter's own HTTP server under abuse, on loopback, with bounded load that stops by
//! itself: a flood of concurrent scrapers while the poller runs, slowloris connections that
//! never finish their headers, more connections than the cap, oversized and too many
//! headers, then a graceful shutdown with connections still open. Checks answers (200 or
//! 503, never a hang), closes, bounded memory, and that /metrics stays fast; prints the
//! figures. Timing asserts are generous bounds only: this runs on a noisy 2-core box.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use bitbucket_zdu_exporter::config::{Config, TargetConfig};
use bitbucket_zdu_exporter::server::{self, ServeOptions};
use bitbucket_zdu_exporter::simulator::{Scenario, SimulateArgs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_CONNECTIONS: usize = 128;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `GET /metrics` on a fresh connection with extra header lines; returns the status and the
/// time to the full reply.
async fn get(addr: SocketAddr, headers: &[String]) -> std::io::Result<(u16, Duration)> {
    let t = Instant::now();
    let reply = http_get(addr, "/metrics", headers).await?;
    Ok((reply.status, t.elapsed()))
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn probe(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (status, t) = get(addr, &[]).await.expect("probe scrape");
        assert!(status == 200 || status == 503, "probe got {status}");
        out.push(t);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    out
}

/// Opens `n` connections that send part of a request head and then nothing.
async fn slowloris(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut v = Vec::new();
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("write");
        v.push(s);
    }
    v
}

/// Waits until the server has closed every connection; returns how long that took.
async fn all_closed(conns: Vec<TcpStream>, limit: Duration) -> Duration {
    let t = Instant::now();
    let waits = conns.into_iter().map(|mut s| async move {
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue, // e.g. a 408 before the close
            }
        }
    });
    tokio::time::timeout(limit, futures_util::future::join_all(waits))
        .await
        .expect("slow connections were not closed by the header read timeout");
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_under_abuse() {
    bitbucket_zdu_exporter::client::install_crypto_provider();
    // A simulated cluster in upgrade, polled every 100 ms so polls run during the flood.
    let sim = Sim::start(SimulateArgs {
        scenario: Scenario::RollingUpgrade,
        speed: 20.0,
        ..SimulateArgs::default()
    })
    .await;
    let sim_addr = sim.addr;
    let driver = sim.sim.spawn_driver();
    let interval = Duration::from_millis(100);
    // No explicit timeout: the 10s default is clamped to the 100ms interval.
    let target = TargetConfig::builder("abuse", format!("http://{sim_addr}/"))
        .poll_interval(interval)
        .max_age(Duration::from_secs(5))
        .build()
        .unwrap();
    let config = Config::builder(vec![target])
        .listen_addresses(vec!["127.0.0.1:0".parse().unwrap()])
        .max_requests(1)
        .build()
        .unwrap();
    let store = Arc::new(bitbucket_zdu_exporter::tracker::StateStore::in_memory());
    let runtime = bitbucket_zdu_exporter::app::Exporter::start(&config, store, None, None).unwrap();
    // max_requests 1: two scrapes rendering at once already shows the cap (503, no queue).
    let router = server::router(runtime.clone(), "/metrics", 1);
    let listeners = server::bind_all(config.web().listen_addresses())
        .await
        .unwrap();
    let addr = listeners[0].local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let grace = Duration::from_secs(2);
    let serving = tokio::spawn(server::serve_with(
        listeners,
        router,
        async {
            let _ = stop_rx.await;
        },
        grace,
        ServeOptions {
            header_read_timeout: HEADER_TIMEOUT,
            first_request_timeout: HEADER_TIMEOUT,
            max_header_bytes: 8 * 1024,
            max_headers: 64,
            max_connections: MAX_CONNECTIONS,
            web_config: None,
        },
    ));
    wait_ready(&runtime).await;

    // Idle baseline.
    let _ = probe(addr, 10).await;
    let rss_start = rss_kib();
    let mut idle = probe(addr, 60).await;
    let idle_p50 = pct(&mut idle, 0.5);

    // 1. Flood: 48 concurrent scrapers, 30 requests each, while the probe measures.
    let flood_start = Instant::now();
    let scrapers: Vec<_> = (0..48)
        .map(|_| {
            tokio::spawn(async move {
                let (mut ok, mut busy) = (0u32, 0u32);
                for _ in 0..30 {
                    match get(addr, &[]).await.expect("scrape under flood") {
                        (200, _) => ok += 1,
                        (503, _) => busy += 1,
                        (s, _) => panic!("unexpected status {s} under flood"),
                    }
                }
                (ok, busy)
            })
        })
        .collect();
    let mut flood_probe = probe(addr, 40).await;
    let (mut n200, mut n503) = (0, 0);
    for s in scrapers {
        let (a, b) = s.await.unwrap();
        n200 += a;
        n503 += b;
    }
    let flood_time = flood_start.elapsed();
    let flood_p50 = pct(&mut flood_probe, 0.5);
    let flood_p99 = pct(&mut flood_probe, 0.99);
    assert!(n200 > 0);
    assert!(
        flood_p99 < Duration::from_secs(3),
        "p99 under flood {flood_p99:?}"
    );

    // 2. Slowloris below the connection cap: scrapes stay fast, the slow ones get closed.
    let slow = slowloris(addr, MAX_CONNECTIONS - 28).await;
    let mut slow_probe = probe(addr, 20).await;
    let slow_p50 = pct(&mut slow_probe, 0.5);
    let closed_after = all_closed(slow, HEADER_TIMEOUT * 6).await;
    assert!(
        slow_p50 < Duration::from_secs(1),
        "p50 under slowloris {slow_p50:?}"
    );

    // 3. Slowloris above the cap: new connections wait in the accept queue, bounded by the
    //    header read timeout, instead of the server taking unbounded connections.
    let slow = slowloris(addr, MAX_CONNECTIONS + 20).await;
    let (status, capped_wait) = get(addr, &[]).await.expect("scrape past the cap");
    assert!(status == 200 || status == 503);
    assert!(
        capped_wait < HEADER_TIMEOUT * 6,
        "scrape waited {capped_wait:?} behind the connection cap"
    );
    all_closed(slow, HEADER_TIMEOUT * 8).await;

    // 4. Oversized and too many headers.
    let big = [format!("X-Big: {}", "a".repeat(64 * 1024))];
    let (status, _) = get(addr, &big).await.expect("oversized header");
    assert_eq!(status, 431, "oversized header");
    let many: Vec<String> = (0..100).map(|i| format!("X-H{i}: v")).collect();
    let (status, _) = get(addr, &many).await.expect("too many headers");
    assert_eq!(status, 431, "too many headers");

    // Memory: whatever the above cost, it is bounded (and mostly the allocator's).
    let rss_end = rss_kib();
    let mut after = probe(addr, 40).await;
    let after_p50 = pct(&mut after, 0.5);

    // 5. Graceful shutdown with slow connections open: done within the grace period.
    let slow = slowloris(addr, 20).await;
    let t = Instant::now();
    let _ = stop_tx.send(());
    tokio::time::timeout(grace + Duration::from_secs(3), serving)
        .await
        .expect("serve did not return after the grace period")
        .unwrap()
        .unwrap();
    let shutdown_time = t.elapsed();
    drop(slow);
    runtime.shutdown();
    driver.abort();
    drop(sim);

    let ratio = |a: Duration| a.as_secs_f64() / idle_p50.as_secs_f64().max(1e-6);
    eprintln!(
        "abuse figures:\n  idle p50 {idle_p50:?}\n  flood: {n200}x200 {n503}x503 in {flood_time:?}; probe p50 {flood_p50:?} ({:.1}x idle), p99 {flood_p99:?}\n  slowloris ({} conns): probe p50 {slow_p50:?} ({:.1}x idle); all closed after {closed_after:?} (header timeout {HEADER_TIMEOUT:?})\n  past the connection cap ({MAX_CONNECTIONS}): scrape answered after {capped_wait:?}\n  after abuse: probe p50 {after_p50:?} ({:.1}x idle)\n  RSS {rss_start} KiB -> {rss_end} KiB (+{} KiB)\n  shutdown with 20 slow connections open: {shutdown_time:?} (grace {grace:?})",
        ratio(flood_p50),
        MAX_CONNECTIONS - 28,
        ratio(slow_p50),
        ratio(after_p50),
        rss_end.saturating_sub(rss_start),
    );
    assert!(
        rss_end.saturating_sub(rss_start) < 128 * 1024,
        "RSS grew from {rss_start} to {rss_end} KiB"
    );
}

mod floods;
