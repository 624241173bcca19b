// THE one place for every selector, label convention and threshold used by the
// bitbucket-zdu-exporter alert rules (and by the dashboard's colour thresholds).
//
// Change a value here and re-render with `alerts/render.sh > alerts/bitbucket-zdu-alerts.yaml`,
// or keep this file untouched and pass an override file (JSON or jsonnet, deep-merged
// over this object with std.mergePatch):
//
//   alerts/render.sh --config my-overrides.json > /etc/prometheus/rules/bitbucket-zdu.yaml
//
// Durations use Prometheus syntax with the units s, m, h, d, w (e.g. "90s", "1h30m").
// An alert whose rule has `after` fires once the condition has held for `after`
// (measured from the exporter's *_state_entered_timestamp_seconds, so it survives an
// exporter restart) and then for a further `for` window: total = after + for.
// The justification of every number is in docs/runbooks.md.
{
  // PromQL label matchers (without braces) that select this exporter's series and its
  // scrape targets (`up`). Use the job name(s) of your scrape config / PodMonitor.
  selector: 'job=~".*bitbucket-zdu.*"',

  // Labels that differ between the N sidecars (one per Bitbucket pod / node) that all
  // export the SAME cluster-level series. Rules aggregate them away
  // (`max without (...)`) so one cluster yields one alert. Every other target label
  // (job, cluster, namespace, ...) is kept and identifies the cluster.
  // Add e.g. "kubernetes_pod_name" or "container_id" if your relabelling creates them.
  perSidecarLabels: ['instance', 'pod'],

  // How long the last value of a series is carried over a gap (exporter restart,
  // sidecar restarting with its pod, a few failed polls). Keeps pending/firing alerts
  // from resetting when the exporter restarts mid-upgrade. Must exceed the exporter's
  // restart time plus two scrape intervals; keep it well below the smallest `after`.
  gapTolerance: '5m',

  // Go-template snippet naming the cluster in summaries/descriptions. Convention: the
  // `cluster` target label if you relabel one in, else `job`; plus `namespace` if set.
  clusterName: '{{ with $labels.cluster }}{{ . }}{{ else }}{{ $labels.job }}{{ end }}{{ with $labels.namespace }} (namespace {{ . }}){{ end }}',

  // Base of the runbook_url annotation; "#<alertname lower-cased>" is appended.
  runbookUrl: 'https://github.com/bitbucket-zdu-exporter/bitbucket-zdu-exporter/blob/main/docs/runbooks.md',

  // Name of the single rule group.
  groupName: 'bitbucket-zdu',

  thresholds: {
    // --- exporter / connectivity -------------------------------------------------
    exporterDown: { 'for': '5m', severity: 'warning' },
    exporterAbsent: { 'for': '15m', severity: 'warning' },
    bitbucketUnreachable: { 'for': '10m', severity: 'warning' },
    credentialsRejected: { 'for': '5m', severity: 'warning' },
    notClustered: { 'for': '10m', severity: 'warning' },
    exporterStale: { 'for': '5m', severity: 'warning' },

    // --- cluster state -----------------------------------------------------------
    stuckMixed: { after: '1h', 'for': '2m', severity: 'critical' },
    upgradeTasksFailed: { after: '1m', 'for': '2m', severity: 'critical' },
    upgradeTasksRunningTooLong: { after: '15m', 'for': '2m', severity: 'warning' },
    awaitingApproval: { after: '1h', 'for': '2m', severity: 'warning' },
    upgradeModeIdle: { after: '1h', 'for': '2m', severity: 'warning' },
    unknownClusterState: { 'for': '15m', severity: 'info' },
    versionSkew: { 'for': '10m', severity: 'critical' },

    // --- nodes ---------------------------------------------------------------------
    nodeError: { after: '2m', 'for': '2m', severity: 'critical' },
    nodeStarting: { after: '15m', 'for': '2m', severity: 'warning' },
    nodeDraining: { after: '5m', 'for': '2m', severity: 'warning' },
    nodeTerminating: { after: '5m', 'for': '2m', severity: 'warning' },
    nodeLost: { after: '30m', 'for': '5m', severity: 'warning' },
  },
}
