//! The scrape cache: every exposition is rendered once per snapshot (per target, per format)
//! and served as prebuilt bytes; its gzip form is built on first request and reused.
//!
//! An exposition is a list of [`Block`]s joined in order:
//!
//! - the **target block**: one target's families, a function of its published
//!   [`TargetSnapshot`], of its config and of the freshness [`Verdict`] at scrape time only.
//!   It is kept in the target's [`TargetCache`] (one per target name, in the server's
//!   [`ScrapeCache`]) under the key (snapshot, config, verdict): a new poll, a reload that
//!   changes the target, or data
//!   getting older than `max_age` (`up` to 0, `reason="stale"`, the cluster series gone)
//!   makes the next scrape render a new one;
//! - the **exporter block**: the exporter's own families and `process_*`, re-rendered when
//!   the targets or the reload status change and otherwise at most once per
//!   [`EXPORTER_MAX_AGE`], so `/proc` is read at most about once a second and
//!   `process_cpu_seconds_total` lags by at most that;
//! - the OpenMetrics `# EOF` marker.
//!
//! `/probe` is the target block; `/metrics` is the exporter block with several targets (or
//! none), and the exporter block then the target block with exactly one, like the
//! registries these replaced.
//!
//! **gzip without recompressing**: each block keeps, built on first use, its own raw-deflate
//! stream ended by a sync flush (so it ends on a byte boundary, references nothing before it
//! and is not final) and the CRC-32 of its text. A gzip body is the fixed 10-byte header, the
//! blocks' deflate streams in order, an empty final block, and a trailer of the combined CRC
//! and the length: one valid gzip member, computed once per exposition, served as the very
//! same bytes afterwards.
//!
//! **Memory**: a target's cache holds one entry, that of the snapshot last served (the first
//! scrape after a poll replaces it): per format asked for, the target block's text and its
//! deflate stream, and the small joined expositions that point at them. Nothing grows with
//! the scrape count; the [`ScrapeCache`] drops the caches of targets a reload removed at the
//! first scrape that sees the new target list.
//!
//! The poller knows nothing of this cache: entries are keyed by the identity of the
//! snapshot they were rendered from, so a published snapshot needs no invalidation.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use prometheus_client::registry::Registry;

use super::exporter::ExporterCollector;
use super::exposition::{render_families, Format, EOF};
use super::SnapshotCollector;
use crate::config::TargetConfig;
use crate::reload::ReloadStatus;
use crate::snapshot::{TargetShared, TargetSnapshot};

/// How long the exporter block (own metrics and `process_*`) is reused at most.
pub const EXPORTER_MAX_AGE: Duration = Duration::from_secs(1);

/// The gzip member header: magic, deflate, no flags, no mtime, no extra flags, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// An empty final deflate block, closing the joined stream.
static DEFLATE_END: LazyLock<Bytes> = LazyLock::new(|| {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(64);
    match c.compress_vec(&[], &mut out, FlushCompress::Finish) {
        Ok(Status::StreamEnd) => Bytes::from(out),
        // Fixed Huffman, BFINAL, end-of-block: what every deflate encoder writes here.
        _ => Bytes::from_static(&[0x03, 0x00]),
    }
});

/// The OpenMetrics end marker as a block.
static EOF_BLOCK: LazyLock<Arc<Block>> = LazyLock::new(|| Block::new(EOF.to_string()));

/// One piece of rendered exposition text, with its deflate stream built on first use.
#[derive(Debug)]
pub struct Block {
    text: Bytes,
    deflated: OnceLock<Option<Deflated>>,
}

#[derive(Debug)]
struct Deflated {
    data: Bytes,
    crc: Crc,
}

impl Block {
    fn new(text: String) -> Arc<Block> {
        Arc::new(Block {
            text: Bytes::from(text),
            deflated: OnceLock::new(),
        })
    }

    /// The text.
    pub fn text(&self) -> &Bytes {
        &self.text
    }

    fn deflated(&self) -> Option<&Deflated> {
        self.deflated
            .get_or_init(|| {
                let data = deflate_segment(&self.text);
                if data.is_none() {
                    tracing::error!("gzip compression of the metrics failed; serving them plain");
                }
                let mut crc = Crc::new();
                crc.update(&self.text);
                data.map(|data| Deflated {
                    data: Bytes::from(data),
                    crc,
                })
            })
            .as_ref()
    }

    /// Bytes held: the text and, once built, the deflate stream.
    pub fn held_bytes(&self) -> usize {
        self.text.len()
            + self
                .deflated
                .get()
                .and_then(|d| d.as_ref())
                .map_or(0, |d| d.data.len())
    }
}

/// `input` as a raw deflate stream ended by a sync flush (non-final, byte-aligned).
fn deflate_segment(input: &[u8]) -> Option<Vec<u8>> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(input.len() / 8 + 64);
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let consumed = usize::try_from(c.total_in()).ok()?;
        c.compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
            .ok()?;
        // Done when all input is in and the flush did not fill the output buffer.
        if c.total_in() == input.len() as u64 && out.len() < out.capacity() {
            return Some(out);
        }
    }
}

/// A complete exposition: blocks joined in order, plain or gzip.
#[derive(Debug)]
pub struct Exposition {
    format: Format,
    parts: Vec<Arc<Block>>,
    gzip_trailer: OnceLock<Option<Bytes>>,
}

impl Exposition {
    fn new(format: Format, mut parts: Vec<Arc<Block>>) -> Arc<Exposition> {
        if format == Format::OpenMetrics {
            parts.push(EOF_BLOCK.clone());
        }
        Arc::new(Exposition {
            format,
            parts,
            gzip_trailer: OnceLock::new(),
        })
    }

    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The plain body, as the pieces to write in order.
    pub fn plain(&self) -> Vec<Bytes> {
        self.parts.iter().map(|p| p.text.clone()).collect()
    }

    /// The gzip body, as the pieces to write in order; None if compression failed.
    pub fn gzip(&self) -> Option<Vec<Bytes>> {
        let trailer = self
            .gzip_trailer
            .get_or_init(|| {
                let mut crc = Crc::new();
                let mut len: u64 = 0;
                for p in &self.parts {
                    crc.combine(&p.deflated()?.crc);
                    len += p.text.len() as u64;
                }
                let mut t = Vec::with_capacity(8);
                t.extend_from_slice(&crc.sum().to_le_bytes());
                // ISIZE is the length modulo 2^32.
                t.extend_from_slice(&(len as u32).to_le_bytes());
                Some(Bytes::from(t))
            })
            .as_ref()?;
        let mut out = Vec::with_capacity(self.parts.len() + 3);
        out.push(Bytes::from_static(&GZIP_HEADER));
        for p in &self.parts {
            out.push(p.deflated()?.data.clone());
        }
        out.push(DEFLATE_END.clone());
        out.push(trailer.clone());
        Some(out)
    }

    /// The plain body as one string (for tests and tools).
    pub fn to_text(&self) -> String {
        self.parts
            .iter()
            .map(|p| String::from_utf8_lossy(&p.text))
            .collect()
    }
}

/// Freshness at scrape time: whether the cluster data and the responder data are fresh.
/// Together with the snapshot it decides the target block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// True when the last `/cluster` poll succeeded and is within the freshness limit.
    pub(crate) cluster: bool,
    /// True when the last `/state` poll succeeded and is within the freshness limit.
    pub(crate) responder: bool,
}

impl Verdict {
    /// The verdict on `snap` at `now`.
    pub fn of(snap: &TargetSnapshot, now: Instant) -> Verdict {
        Verdict {
            cluster: snap.health(now).is_up(),
            responder: snap.fresh_responder(now).is_some(),
        }
    }
}

/// One value per format, each made on first use.
#[derive(Debug)]
struct PerFormat<T>(enum_map::EnumMap<Format, OnceLock<T>>);

impl<T> Default for PerFormat<T> {
    fn default() -> Self {
        PerFormat(enum_map::EnumMap::from_fn(|_| OnceLock::new()))
    }
}

impl<T> PerFormat<T> {
    fn get_or_init(&self, format: Format, init: impl FnOnce() -> T) -> &T {
        self.0[format].get_or_init(init)
    }

    fn made(&self) -> impl Iterator<Item = &T> {
        self.0.values().filter_map(OnceLock::get)
    }
}

/// A target's cached expositions: those of the snapshot and verdict last served.
#[derive(Debug, Default)]
pub struct TargetCache {
    current: Mutex<Option<Arc<TargetEntry>>>,
}

#[derive(Debug)]
struct TargetEntry {
    snapshot: Weak<TargetSnapshot>,
    /// The target's config (a reload may change it without a new snapshot yet).
    config: Weak<TargetConfig>,
    verdict: Verdict,
    /// The instant the blocks are rendered at (within the verdict, any gives the same text).
    at: Instant,
    blocks: PerFormat<Arc<Block>>,
    probe: PerFormat<Arc<Exposition>>,
    /// `/metrics` with this target as the only one: joined with that exporter entry.
    with_exporter: Mutex<Option<Joined>>,
}

/// What a target block is rendered from: the published snapshot and the target's config.
type Inputs = (Arc<TargetSnapshot>, Arc<TargetConfig>);

fn inputs(shared: &TargetShared) -> Inputs {
    (shared.snapshot.load_full(), shared.config.load_full())
}

/// Expositions joining one exporter entry's block with a target entry's.
type Joined = (Weak<ExporterEntry>, Arc<PerFormat<Arc<Exposition>>>);

impl TargetEntry {
    /// The target block in `format`; `inputs` are those this entry was made for.
    fn block(&self, inputs: &Inputs, format: Format) -> Arc<Block> {
        debug_assert!(Weak::ptr_eq(&self.snapshot, &Arc::downgrade(&inputs.0)));
        self.blocks
            .get_or_init(format, || {
                let mut r = Registry::default();
                r.register_collector(Box::new(SnapshotCollector {
                    snapshot: inputs.0.clone(),
                    config: inputs.1.clone(),
                    now: self.at,
                }));
                Block::new(render_families(&r, format))
            })
            .clone()
    }
}

impl TargetCache {
    /// The entry for `inputs` at `now`, made (and replacing the previous one) when the
    /// snapshot, the config or the freshness verdict changed.
    fn entry(&self, inputs: &Inputs, now: Instant) -> Arc<TargetEntry> {
        let verdict = Verdict::of(&inputs.0, now);
        let snapshot = Arc::downgrade(&inputs.0);
        let config = Arc::downgrade(&inputs.1);
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = cur.as_ref() {
            if Weak::ptr_eq(&e.snapshot, &snapshot)
                && Weak::ptr_eq(&e.config, &config)
                && e.verdict == verdict
            {
                return e.clone();
            }
        }
        let e = Arc::new(TargetEntry {
            snapshot,
            config,
            verdict,
            at: now,
            blocks: PerFormat::default(),
            probe: PerFormat::default(),
            with_exporter: Mutex::new(None),
        });
        *cur = Some(e.clone());
        e
    }

    /// Bytes of exposition text and gzip streams this cache holds.
    pub fn held_bytes(&self) -> usize {
        let cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        cur.as_ref()
            .map_or(0, |e| e.blocks.made().map(|b| b.held_bytes()).sum())
    }
}

/// The server's one scrape cache: the exporter block and `/metrics` as a whole, and one
/// [`TargetCache`] per target name, pruned when the target list changes.
#[derive(Debug)]
pub struct ScrapeCache {
    source: ExporterSource,
    exporter: ExporterCache,
    targets: Mutex<TargetCaches>,
}

/// The per-target caches and the target list they were pruned against.
#[derive(Debug, Default)]
struct TargetCaches {
    list: Weak<Vec<Arc<TargetShared>>>,
    by_name: HashMap<String, Arc<TargetCache>>,
}

impl ScrapeCache {
    /// An empty cache of what `source` renders.
    pub fn new(source: ExporterSource) -> Self {
        ScrapeCache {
            source,
            exporter: ExporterCache::default(),
            targets: Mutex::new(TargetCaches::default()),
        }
    }

    /// A cache of one target alone (no reload status, an in-memory state file): what a
    /// bench or a test that drives a poller by hand scrapes through.
    pub fn of_target(shared: Arc<TargetShared>) -> Self {
        ScrapeCache::new(ExporterSource {
            status: Arc::new(ReloadStatus::new()),
            targets: Arc::new(ArcSwap::from_pointee(vec![shared])),
            store: Arc::new(crate::tracker::StateStore::in_memory()),
        })
    }

    /// The per-target caches, those of targets no longer listed dropped first when the list
    /// changed since the last call.
    fn caches(&self, list: &Arc<Vec<Arc<TargetShared>>>) -> MutexGuard<'_, TargetCaches> {
        let mut caches = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        if !Weak::ptr_eq(&caches.list, &Arc::downgrade(list)) {
            let listed = |name: &String| list.iter().any(|t| t.config.load().name() == name);
            caches.by_name.retain(|name, _| listed(name));
            caches.list = Arc::downgrade(list);
        }
        caches
    }

    /// The cache of `shared`'s target.
    fn target(&self, shared: &TargetShared) -> Arc<TargetCache> {
        let mut caches = self.caches(&self.source.targets.load_full());
        let name = shared.config.load().name().to_string();
        caches.by_name.entry(name).or_default().clone()
    }

    /// `/probe?target=`: the target's exposition in `format`, at `now`.
    pub fn probe(&self, shared: &TargetShared, format: Format, now: Instant) -> Arc<Exposition> {
        let inputs = inputs(shared);
        let entry = self.target(shared).entry(&inputs, now);
        entry
            .probe
            .get_or_init(format, || {
                Exposition::new(format, vec![entry.block(&inputs, format)])
            })
            .clone()
    }

    /// `/metrics` in `format` at `now`: the exporter's own metrics, followed by the target's
    /// when exactly one is configured.
    pub fn metrics(&self, format: Format, now: Instant) -> Arc<Exposition> {
        let targets = self.source.targets.load_full();
        // Prunes the caches of removed targets even when no probe follows.
        drop(self.caches(&targets));
        let only = match targets.as_slice() {
            [only] => Some(self.target(only)),
            _ => None,
        };
        self.exporter
            .metrics(&self.source, &targets, only.as_deref(), format, now)
    }

    /// Bytes of exposition text and gzip streams held for the target named `name`.
    pub fn held_bytes(&self, name: &str) -> usize {
        let caches = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        caches.by_name.get(name).map_or(0, |c| c.held_bytes())
    }
}

/// The cache of `/metrics`: the exporter block, and `/metrics` as a whole.
#[derive(Debug, Default)]
struct ExporterCache {
    current: Mutex<Option<Arc<ExporterEntry>>>,
}

#[derive(Debug)]
struct ExporterEntry {
    targets: Weak<Vec<Arc<TargetShared>>>,
    reload: (bool, u64),
    rendered_at: Instant,
    blocks: PerFormat<Arc<Block>>,
    /// `/metrics` with several targets or none: the exporter block alone.
    alone: PerFormat<Arc<Exposition>>,
}

/// Where the exporter block's values come from.
#[derive(Debug, Clone)]
pub struct ExporterSource {
    /// The outcome of the last configuration (re)load.
    pub status: Arc<ReloadStatus>,
    /// The configured targets.
    pub targets: Arc<ArcSwap<Vec<Arc<TargetShared>>>>,
    /// The state file (its error count).
    pub store: Arc<crate::tracker::StateStore>,
}

impl ExporterCache {
    fn entry(
        &self,
        src: &ExporterSource,
        targets: &Arc<Vec<Arc<TargetShared>>>,
        now: Instant,
    ) -> Arc<ExporterEntry> {
        let (ok, ts) = src.status.get();
        let reload = (ok, ts.to_bits());
        let weak = Arc::downgrade(targets);
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = cur.as_ref() {
            if Weak::ptr_eq(&e.targets, &weak)
                && e.reload == reload
                && now.saturating_duration_since(e.rendered_at) < EXPORTER_MAX_AGE
            {
                return e.clone();
            }
        }
        let e = Arc::new(ExporterEntry {
            targets: weak,
            reload,
            rendered_at: now,
            blocks: PerFormat::default(),
            alone: PerFormat::default(),
        });
        *cur = Some(e.clone());
        e
    }

    /// `/metrics` in `format` at `now`: the exporter's own metrics, followed by the target's
    /// when exactly one is configured (`only`, its cache).
    fn metrics(
        &self,
        src: &ExporterSource,
        targets: &Arc<Vec<Arc<TargetShared>>>,
        only: Option<&TargetCache>,
        format: Format,
        now: Instant,
    ) -> Arc<Exposition> {
        let exporter = self.entry(src, targets, now);
        let block = || {
            exporter
                .blocks
                .get_or_init(format, || {
                    let mut r = Registry::default();
                    r.register_collector(Box::new(ExporterCollector {
                        status: src.status.clone(),
                        targets: src.targets.clone(),
                        store: src.store.clone(),
                    }));
                    Block::new(render_families(&r, format))
                })
                .clone()
        };
        let (Some(cache), [only]) = (only, targets.as_slice()) else {
            return exporter
                .alone
                .get_or_init(format, || Exposition::new(format, vec![block()]))
                .clone();
        };
        let inputs = inputs(only);
        let target = cache.entry(&inputs, now);
        let joined = {
            let mut w = target
                .with_exporter
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let weak = Arc::downgrade(&exporter);
            match w.as_ref() {
                Some((e, j)) if Weak::ptr_eq(e, &weak) => j.clone(),
                _ => {
                    let j = Arc::new(PerFormat::default());
                    *w = Some((weak, j.clone()));
                    j
                }
            }
        };
        joined
            .get_or_init(format, || {
                Exposition::new(format, vec![block(), target.block(&inputs, format)])
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(chunks: &[Bytes]) -> String {
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let mut out = String::new();
        flate2::read::GzDecoder::new(&all[..])
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn joined_gzip_decodes_to_the_joined_text() {
        let big: String = (0..20_000)
            .map(|i| format!("series_{i}{{a=\"{}\"}} {i}\n", i % 7))
            .collect();
        for parts in [
            vec![],
            vec![Block::new(String::new())],
            vec![Block::new("a 1\n".into())],
            vec![Block::new("a 1\n".into()), Block::new(big.clone())],
            vec![
                Block::new(big.clone()),
                Block::new(String::new()),
                Block::new(big),
            ],
        ] {
            for format in Format::ALL {
                let e = Exposition::new(format, parts.clone());
                let text = e.to_text();
                let plain: Vec<u8> = e.plain().iter().flat_map(|c| c.to_vec()).collect();
                assert_eq!(plain, text.as_bytes());
                let gz = e.gzip().unwrap();
                assert_eq!(gunzip(&gz), text);
                // Served again: the very same bytes, nothing recompressed.
                let again = e.gzip().unwrap();
                for (a, b) in gz.iter().zip(&again) {
                    assert_eq!(a.as_ptr(), b.as_ptr());
                }
                assert_eq!(format == Format::OpenMetrics, text.ends_with(EOF));
            }
        }
    }
}
