// The ONE configuration of the bitbucket-zdu monitoring mixin: selectors, the cluster labels
// every rule and panel aggregates by, thresholds and opt-in switches. Used as
//
//   (import 'mixin.libsonnet') + { _config+:: { clusterLabels: ['namespace', 'cluster'] } }
//
// or, without writing jsonnet, with an override file (JSON or jsonnet) deep-merged over
// `_config` by alerts/render.sh --config FILE (std.mergePatch: objects merge, lists replace).
// Durations use Prometheus syntax (s, m, h, d, w; e.g. "90s", "1h30m"). The justification of
// every number is in docs/runbooks.md.
{
  _config+:: {
    // PromQL label matchers (without braces) that select this exporter's series and its
    // scrape targets (`up`). With a kubernetes-pods job use e.g. 'container="zdu-exporter"'.
    selector: 'job=~".*bitbucket-zdu.*"',

    // THE labels that identify one Bitbucket cluster. Every rule and every dashboard panel
    // aggregates `by` exactly these, so N sidecars of one cluster (one per Bitbucket pod)
    // give one series, one alert, one page. Every other label is dropped, including per-pod
    // labels a kubernetes-pods relabelling copies in (pod, instance,
    // controller_revision_hash, statefulset_kubernetes_io_pod_name, ...). A label listed here
    // that a series lacks is simply empty. Add the label your scrape config uses to tell
    // clusters apart (e.g. app_kubernetes_io_instance).
    clusterLabels: ['job', 'namespace', 'cluster'],

    // Go-template snippet naming the cluster in summaries/descriptions.
    clusterName: '{{ with $labels.cluster }}{{ . }}{{ else }}{{ $labels.job }}{{ end }}{{ with $labels.namespace }} (namespace {{ . }}){{ end }}',

    // Base of the runbook_url annotation; "#<alertname lower-cased>" is appended.
    runbookUrl: 'https://github.com/bitbucket-zdu-exporter/bitbucket-zdu-exporter/blob/main/docs/runbooks.md',

    // Rule group names (recording rules first: alerts read them).
    recordingGroupName: 'bitbucket-zdu.rules',
    alertGroupName: 'bitbucket-zdu',

    // While a cluster's state is unknown (every exporter of it unreachable, down or gone),
    // a firing cluster-state alert keeps firing instead of resolving ("nothing known" is not
    // "fixed"), for at most this long after the last known state. The exporter-health alerts
    // say why nothing is known.
    unknownHold: '6h',

    // Bridges short gaps for exporter-health alerts (Prometheus >= 2.42 keep_firing_for):
    // a flapping Bitbucket or a restarting exporter does not resolve and re-page.
    healthKeepFiringFor: '5m',

    // The recorded "entered this state" timestamps (cluster and node) keep their earlier
    // value across a gap of up to this long in what the exporters report: an exporter
    // rescheduled without its state file restarts its own clocks, not the alerts'.
    enteredBridge: '10m',

    // Alerts that read an exporter's raw series under a `for:` take each series' last value
    // within this window (last_over_time): one failed scrape (isolated, or a target failing
    // every k-th scrape) leaves a one-minute hole that would reset every pending `for:`, so a
    // dead node behind a flapping scrape never paged (found by alerts/verify.sh). A value
    // that changes is seen at once; only a vanished series is held this long.
    scrapeGapBridge: '3m',

    // Users + tasks of a DRAINING node that fell within this window are progress (stall
    // and DrainingTooLong alerts do not fire).
    drainProgressWindow: '10m',
    // A firing stall alert is kept while the per-state node counts have not changed within
    // this window in Prometheus's own history, whatever the exporter remembers.
    noChangeWindow: '15m',

    thresholds: {
      // --- exporter / connectivity -------------------------------------------------
      // No target of the cluster scraped successfully for `window`, or one target not for
      // `oneDown` (longer than a drain plus a pod restart: a broken sidecar, not an upgrade).
      exporterDown: { window: '5m', oneDown: '90m', 'for': '0m', severity: 'warning' },
      // Must stay shorter than the time a state alert would need to resolve: it fires
      // while the held state alert is still firing, so on-call sees why.
      bitbucketUnreachable: { 'for': '3m', severity: 'warning' },
      credentialsRejected: { 'for': '5m', severity: 'warning' },
      notClustered: { 'for': '10m', severity: 'warning' },
      exporterStale: { 'for': '5m', severity: 'warning' },

      // --- cluster state -----------------------------------------------------------
      // Progress: no node entry changed state (or appeared/disappeared) for `noProgress`
      // while upgrade mode waits for nodes (READY_TO_UPGRADE or MIXED).
      // In READY_TO_UPGRADE the limit is longer: admins often idle there before the first drain.
      upgradeStalled: { noProgress: '20m', noProgressReadyToUpgrade: '70m', 'for': '2m', severity: 'warning' },
      // The page: MIXED and no progress for the longer `noProgress`, or MIXED longer than
      // its budget whatever the progress (a node flapping forever is not progress): `maxTotal`,
      // or `maxPerNode` per live node (the most seen within 2h) when that is longer. A healthy
      // node takes at most a drain (up to 60m), a restart and a pause before the next one, so
      // a healthy 12-node upgrade with long drains (up to ~16h MIXED) never pages.
      stuckMixed: { noProgress: '45m', maxTotal: '8h', maxPerNode: '90m', 'for': '2m', severity: 'critical' },
      upgradeTasksFailed: { after: '1m', 'for': '2m', severity: 'critical' },
      upgradeTasksRunningTooLong: { after: '15m', 'for': '2m', severity: 'warning' },
      awaitingApproval: { after: '1h', 'for': '2m', severity: 'warning' },
      unknownClusterState: { 'for': '15m', severity: 'info' },
      versionSkew: { 'for': '10m', severity: 'critical' },

      // --- nodes ---------------------------------------------------------------------
      nodeError: { after: '2m', 'for': '2m', severity: 'critical' },
      nodeStarting: { after: '15m', 'for': '2m', severity: 'warning' },
      nodeDraining: { after: '5m', 'for': '2m', severity: 'warning' },
      nodeTerminating: { after: '5m', 'for': '2m', severity: 'warning' },
      // No live node entry with this NAME for `after` (a ghost's age never counts).
      nodeLost: { after: '30m', 'for': '5m', severity: 'warning' },
      // A node name that entered or left ACTIVE `changes` times within `window`.
      nodeCrashLooping: { window: '30m', changes: 4, 'for': '0m', severity: 'critical' },
      // Fewer live node entries for `after` than at some time within `memory` (STABLE too).
      nodeMissing: { after: '15m', memory: '6h', 'for': '0m', severity: 'warning' },
    },

    // Opt-in: "no exporter of this cluster is scraped at all". absent() only has the labels
    // of its equality matchers, so the alert exists only for clusters listed here, each with
    // the labels that route it, e.g. [{ job: 'bitbucket-zdu', cluster: 'prod' }]: equality
    // matchers on `up` that select that cluster's scrape targets (_config.selector is not
    // added, since absent() keeps only labels matched once).
    // Empty (default): no such rule, so a Prometheus that loads the rules without any
    // Bitbucket never fires it.
    exporterAbsent: { clusters: [], 'for': '15m', severity: 'warning' },

    // Alertmanager inhibit rules (rendered into alerts/alertmanager.example.yml; copy them
    // into your alertmanager.yml): the alert naming a root cause silences the alerts that are
    // only its consequences, for the same cluster (equal on clusterLabels), so one cause gives
    // one page. alerts/verify.sh applies exactly these.
    inhibitRules: [
      {
        // A node in ERROR or crash-looping holds the cluster in MIXED: no second page for it.
        source: 'BitbucketZduNodeError|BitbucketZduNodeCrashLooping',
        target: 'BitbucketZduUpgradeStuckMixed|BitbucketZduUpgradeStalled|BitbucketZduNodeStartingTooLong|BitbucketZduNodeLost|BitbucketZduNodeMissing',
      },
      {
        // The page for a stuck MIXED upgrade replaces the earlier stall warning.
        source: 'BitbucketZduUpgradeStuckMixed',
        target: 'BitbucketZduUpgradeStalled',
      },
      {
        // A missing node explains the stall of an upgrade waiting for it.
        source: 'BitbucketZduNodeMissing|BitbucketZduNodeLost',
        target: 'BitbucketZduUpgradeStalled',
      },
      {
        // Nothing is observed because Bitbucket or the exporter is down: that alert is the page.
        source: 'BitbucketZduBitbucketUnreachable|BitbucketZduExporterDown',
        target: 'BitbucketZduClusterUnobserved',
      },
    ],

    // Dashboard.
    dashboard: {
      uid: 'bitbucket-zdu-overview',
      title: 'Bitbucket rolling upgrade (ZDU)',
      refresh: '30s',
    },
  },
}
