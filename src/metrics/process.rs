//! The process group: the standard `process_*` metrics (CPU, memory, file descriptors, start
//! time), read from `/proc/self` when the exporter block is rendered: at most once per
//! [`EXPORTER_MAX_AGE`](crate::metrics::cache::EXPORTER_MAX_AGE) (1 s), so
//! `process_cpu_seconds_total` may lag by up to that. On systems without procfs they are simply
//! absent. Their descriptors are in [`crate::metrics::catalogue`].

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::catalogue::{
    PROCESS_CPU, PROCESS_MAX_FDS, PROCESS_OPEN_FDS, PROCESS_RESIDENT_MEMORY, PROCESS_START_TIME,
    PROCESS_VIRTUAL_MEMORY,
};
use super::{counters, gauges, unlabelled};

/// Writes the process metrics the Go and Java clients also export.
pub fn encode(enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let Ok(me) = procfs::process::Process::myself() else {
        return Ok(());
    };
    let tps = procfs::ticks_per_second() as f64;
    if let Ok(stat) = me.stat() {
        let cpu = (stat.utime + stat.stime) as f64 / tps;
        counters(enc, PROCESS_CPU.own(), &unlabelled(cpu))?;
        let rss = (stat.rss * procfs::page_size()) as f64;
        gauges(enc, PROCESS_RESIDENT_MEMORY.own(), &unlabelled(rss))?;
        gauges(
            enc,
            PROCESS_VIRTUAL_MEMORY.own(),
            &unlabelled(stat.vsize as f64),
        )?;
        if let Ok(boot) = procfs::boot_time_secs() {
            let start = boot as f64 + stat.starttime as f64 / tps;
            gauges(enc, PROCESS_START_TIME.own(), &unlabelled(start))?;
        }
    }
    if let Ok(n) = me.fd_count() {
        gauges(enc, PROCESS_OPEN_FDS.own(), &unlabelled(n as f64))?;
    }
    if let Ok(limits) = me.limits() {
        if let procfs::process::LimitValue::Value(v) = limits.max_open_files.soft_limit {
            gauges(enc, PROCESS_MAX_FDS.own(), &unlabelled(v as f64))?;
        }
    }
    Ok(())
}
