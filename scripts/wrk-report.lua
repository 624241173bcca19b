-- wrk's done() hook for scripts/bench.sh: one machine-readable line instead of wrk's text
-- report, "WRK_REPORT req/s p50_ms p99_ms errors" (errors: socket errors of every kind and
-- non-2xx/3xx answers). wrk measures latency in microseconds and the duration likewise.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK_REPORT %.0f %.3f %.3f %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout + e.status))
end
