//! Criterion benchmarks of the two hot paths: decoding a `/cluster` answer and rendering a
//! target's metrics for a scrape, for cluster sizes from a typical 3 nodes to an unusual 48
//! (with ghosts). Compare figures as ratios within one run (e.g. OpenMetrics vs text 0.0.4,
//! 48 vs 3 nodes): absolute times on a shared 2-core machine are noise.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use bitbucket_zdu_exporter::config::TargetConfig;
use bitbucket_zdu_exporter::metrics::TargetCollector;
use bitbucket_zdu_exporter::model::Cluster;
use bitbucket_zdu_exporter::server::{render, Format};
use bitbucket_zdu_exporter::simulator::SimCluster;
use bitbucket_zdu_exporter::snapshot::{ClusterObservation, TargetShared};
use bitbucket_zdu_exporter::tracker::Tracker;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use prometheus_client::registry::Registry;

fn cluster_json(nodes: usize) -> String {
    let mut c = SimCluster::new(nodes.min(12), "8.19.0");
    while c.nodes.len() < nodes {
        let mut n = c.nodes[c.nodes.len() % 12].clone();
        n.id = format!("extra-{}", c.nodes.len());
        n.name = format!("bitbucket-{}", c.nodes.len());
        c.nodes.push(n);
    }
    c.start().unwrap();
    c.nodes[0].version = Some("8.19.1".into());
    serde_json::to_string(&c.cluster_json(Some(0), "http://localhost:7990")).unwrap()
}

fn shared_for(json: &str) -> Arc<TargetShared> {
    let target = TargetConfig::builder("bench", "http://localhost:7990/")
        .timeout(std::time::Duration::from_secs(10))
        .poll_interval(std::time::Duration::from_secs(30))
        .max_age(std::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    let shared = TargetShared::new(target, &Tracker::default());
    let cluster: Cluster = serde_json::from_str(json).unwrap();
    let mut tracked = Tracker::default();
    let (view, _) = ClusterObservation::observe(cluster, &mut tracked, 1_800_000_000.0);
    let mut snap = (**shared.snapshot.load()).clone();
    snap.first_poll_done = true;
    snap.cluster = Some(Arc::new(view));
    snap.cluster_at = Some(Instant::now());
    shared.snapshot.store(Arc::new(snap));
    shared
}

fn bench(c: &mut Criterion) {
    let mut decode = c.benchmark_group("decode_cluster");
    for nodes in [3usize, 6, 48] {
        let json = cluster_json(nodes);
        decode.bench_with_input(BenchmarkId::from_parameter(nodes), &json, |b, json| {
            b.iter(|| black_box(serde_json::from_str::<Cluster>(json).unwrap()))
        });
    }
    decode.finish();

    let mut group = c.benchmark_group("render_scrape");
    for nodes in [3usize, 6, 48] {
        let shared = shared_for(&cluster_json(nodes));
        for (label, format) in [
            ("text004", Format::Text004),
            ("openmetrics", Format::OpenMetrics),
        ] {
            group.bench_with_input(BenchmarkId::new(label, nodes), &shared, |b, shared| {
                b.iter(|| {
                    let mut r = Registry::default();
                    r.register_collector(Box::new(TargetCollector::new(shared.clone())));
                    black_box(render(&r, format))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
