//! Criterion benchmark of one poll as the exporter makes it (issue 17's idle-CPU goal): both
//! upstream calls over a kept-alive loopback connection, decoding, the tracker and the
//! published snapshot, for an 8-node cluster in a rolling upgrade.
//!
//! - `same_answer`: the upstream answers the same bytes every poll, as an idle cluster does;
//!   the answers are not decoded again and the tracker is skipped (`client::memo`).
//! - `changed_answer`: the `/cluster` answer differs from the previous one every poll (one
//!   node's user count), so every poll decodes it and folds it into the tracker: the cost of a
//!   poll without that shortcut.
//!
//! The time reported is the CPU time of the thread that polls (`/proc/thread-self/schedstat`),
//! not the wall time: the upstream is another thread of this process and its work, and any
//! wait for it to be scheduled on a busy machine, are left out. That is what a poll costs the
//! exporter. Compare the two as a ratio within one run.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// CPU time this thread has run, from `/proc/thread-self/schedstat` (nanoseconds, first field).
fn thread_cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let ns = s.split_whitespace().next().and_then(|f| f.parse().ok());
    Duration::from_nanos(ns.expect("schedstat's first field"))
}

use bitbucket_zdu_exporter::client::ZduClient;
use bitbucket_zdu_exporter::config::TargetConfig;
use bitbucket_zdu_exporter::poller::Poller;
use bitbucket_zdu_exporter::simulator::SimCluster;
use bitbucket_zdu_exporter::snapshot::TargetShared;
use bitbucket_zdu_exporter::tracker::{StateStore, Tracker};
use criterion::{criterion_group, criterion_main, Criterion};

const NODES: usize = 8;

/// Two `/cluster` bodies that differ in one node's user count, and the `/state` body.
fn bodies() -> ([Vec<u8>; 2], Vec<u8>) {
    let mut c = SimCluster::new(NODES, "8.19.0");
    c.start().unwrap();
    c.nodes[0].version = Some("8.19.1".into());
    let mut v = c.cluster_json(Some(0), "http://localhost:7990");
    let a = serde_json::to_vec(&v).unwrap();
    v["nodes"][0]["activeUserCount"] = serde_json::json!(12345);
    let b = serde_json::to_vec(&v).unwrap();
    let state = serde_json::json!({"state": "MIXED", "buildInfo": v["nodes"][1].clone()});
    ([a, b], serde_json::to_vec(&state).unwrap())
}

/// An upstream on loopback serving each connection's requests in turn (keep-alive). With
/// `alternate`, every other `/cluster` answer is the second body.
fn upstream(alternate: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (cluster, state) = bodies();
    let shared = Arc::new((cluster, state, AtomicUsize::new(0)));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let shared = shared.clone();
            std::thread::spawn(move || serve(stream, &shared, alternate));
        }
    });
    addr
}

fn serve(mut s: TcpStream, b: &([Vec<u8>; 2], Vec<u8>, AtomicUsize), alternate: bool) {
    let _ = s.set_nodelay(true);
    let (mut buf, mut chunk) = (Vec::new(), [0u8; 4096]);
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk) {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        let cluster = buf[..end].windows(9).any(|w| w == b"/cluster ");
        buf.drain(..end);
        let body = if !cluster {
            &b.1
        } else if alternate {
            &b.0[b.2.fetch_add(1, Ordering::Relaxed) % 2]
        } else {
            &b.0[0]
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if s.write_all(head.as_bytes()).is_err() || s.write_all(body).is_err() {
            return;
        }
    }
}

fn poller(addr: SocketAddr) -> Poller {
    let target = TargetConfig::builder("bench", format!("http://{addr}"))
        .timeout(Duration::from_secs(10))
        .poll_interval(Duration::from_secs(30))
        .build()
        .unwrap();
    let shared = TargetShared::new(target.clone(), &Tracker::default());
    let client = ZduClient::new(target).unwrap();
    Poller::new(client, shared, Arc::new(StateStore::in_memory()))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("poll");
    for (name, alternate) in [("same_answer", false), ("changed_answer", true)] {
        let mut p = poller(upstream(alternate));
        rt.block_on(p.poll_once());
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = thread_cpu();
                for _ in 0..iters {
                    rt.block_on(p.poll_once());
                }
                thread_cpu() - start
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
