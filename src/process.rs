//! The standard `process_*` metrics (CPU, memory, file descriptors, start time), read from
//! `/proc/self` at scrape time. On systems without procfs they are simply absent.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use crate::metrics::gauges;

/// Writes the process metrics the Go and Java clients also export.
pub fn encode(enc: &mut DescriptorEncoder<'_>) -> fmt::Result {
    let Ok(me) = procfs::process::Process::myself() else {
        return Ok(());
    };
    let tps = procfs::ticks_per_second() as f64;
    if let Ok(stat) = me.stat() {
        let cpu = (stat.utime + stat.stime) as f64 / tps;
        // A counter of seconds: encode as f64 through a gauge-free path.
        let mut m = enc.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        use prometheus_client::encoding::EncodeMetric;
        prometheus_client::metrics::counter::ConstCounter::new(cpu)
            .encode(m.encode_family(&Vec::<(&str, String)>::new())?)?;
        gauges(
            enc,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            &[(Vec::new(), (stat.rss * procfs::page_size()) as f64)],
        )?;
        gauges(
            enc,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            &[(Vec::new(), stat.vsize as f64)],
        )?;
        if let Ok(boot) = procfs::boot_time_secs() {
            gauges(
                enc,
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                &[(Vec::new(), boot as f64 + stat.starttime as f64 / tps)],
            )?;
        }
    }
    if let Ok(n) = me.fd_count() {
        gauges(
            enc,
            "process_open_fds",
            "Number of open file descriptors.",
            &[(Vec::new(), n as f64)],
        )?;
    }
    if let Ok(limits) = me.limits() {
        if let procfs::process::LimitValue::Value(v) = limits.max_open_files.soft_limit {
            gauges(
                enc,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                &[(Vec::new(), v as f64)],
            )?;
        }
    }
    Ok(())
}
