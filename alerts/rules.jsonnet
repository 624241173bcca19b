// Source of alerts/bitbucket-zdu-alerts.yaml. Render with alerts/render.sh (never edit the YAML).
//
// Top-level argument `config` is deep-merged over config.libsonnet, e.g.
//   jsonnet -J alerts --tla-code-file config=alerts/examples/fast-thresholds.json alerts/rules.jsonnet
// (alerts/render.sh wraps exactly that and turns the JSON into readable YAML).
local defaults = import 'config.libsonnet';
local lib = import 'lib.libsonnet';

function(config={})
  local c = lib.merge(defaults, config);
  local t = c.thresholds;
  local sidecar = std.join(', ', c.perSidecarLabels);
  local gap = c.gapTolerance;
  local C = c.clusterName;
  local sel(extra='') = '{' + lib.matchers([c.selector, extra]) + '}';
  local trim(s) = std.rstripChars(s, '\n');
  local knownClusterStates = 'STABLE|READY_TO_UPGRADE|MIXED|READY_TO_RUN_UPGRADE_TASKS|RUNNING_UPGRADE_TASKS|UPGRADE_TASKS_FAILED';

  // Seconds the cluster has been in `state`, one series per cluster.
  // Per sidecar: now - (persisted) state-entered timestamp, kept only where that sidecar
  // says the cluster is in `state`; last_over_time bridges restarts/failed polls; the
  // sidecar that has seen the state longest wins (a restarted sidecar without a state
  // file restarts its clock, the others do not).
  local clusterTimeInState(state) = trim(|||
    max without (%(sidecar)s) (
        (time() - last_over_time(bitbucket_zdu_cluster_state_entered_timestamp_seconds%(sel)s[%(gap)s]))
      and ignoring (state)
        (last_over_time(bitbucket_zdu_cluster_state%(selState)s[%(gap)s]) == 1)
    )
  ||| % { sidecar: sidecar, gap: gap, sel: sel(), selState: sel('state="%s"' % state) });

  // Seconds each node has been in `state`, one series per (cluster, node_id, node_name).
  // `extra` is an optional further per-sidecar `and` condition on node labels.
  local nodeTimeInState(state, extra='') = trim(|||
    max without (%(sidecar)s) (
        (time() - last_over_time(bitbucket_zdu_node_state_entered_timestamp_seconds%(sel)s[%(gap)s]))
      and ignoring (state)
        (last_over_time(bitbucket_zdu_node_state%(selState)s[%(gap)s]) == 1)%(extra)s
    )
  ||| % { sidecar: sidecar, gap: gap, sel: sel(), selState: sel('state="%s"' % state), extra: extra });

  local afterS(x) = lib.seconds(x.after);

  local alert(name, th, expr, summary, description, extraLabels={}) = {
    alert: name,
    expr: expr,
    'for': th['for'],
    labels: { severity: th.severity } + extraLabels,
    annotations: {
      summary: summary,
      description: description,
      runbook_url: c.runbookUrl + '#' + std.asciiLower(name),
    },
  };

  local dur = '{{ $value | humanizeDuration }}';
  local node = '{{ $labels.node_name }} (id {{ $labels.node_id }})';

  // Validate every duration early (render fails on a typo instead of promtool later).
  local _check = [lib.seconds(t[k]['for']) for k in std.objectFields(t)]
                 + [lib.seconds(t[k].after) for k in std.objectFields(t) if std.objectHas(t[k], 'after')]
                 + [lib.seconds(gap)];

  local rules = [
    // ------------------------------------------------------------------ exporter health
    alert(
      'BitbucketZduExporterDown', t.exporterDown,
      'count without (%s) (up%s == 0) > 0' % [sidecar, sel()],
      'Bitbucket ZDU exporter cannot be scraped on ' + C,
      'Prometheus has failed to scrape {{ $value }} bitbucket-zdu-exporter target(s) of ' + C + ' for more than ' + t.exporterDown['for'] + '. While every exporter of a cluster is down, no other ZDU alert can fire for it.',
    ),
    alert(
      'BitbucketZduExporterAbsent', t.exporterAbsent,
      'absent(up%s)' % sel(),
      'No Bitbucket ZDU exporter is being scraped',
      'Prometheus has discovered no scrape target matching {%s} for more than %s: rolling upgrades are not monitored at all. Check the scrape config / PodMonitor and the selector in alerts/config.libsonnet.' % [c.selector, t.exporterAbsent['for']],
    ),
    alert(
      'BitbucketZduBitbucketUnreachable', t.bitbucketUnreachable,
      trim(|||
        (max without (%(sidecar)s) (bitbucket_zdu_up%(sel)s) == 0)
        unless
        max without (%(sidecar)s, reason) (bitbucket_zdu_last_error_info%(selAuth)s)
      ||| % { sidecar: sidecar, sel: sel(), selAuth: sel('reason=~"unauthorized|forbidden|not_clustered|stale"') }),
      'Bitbucket is unreachable from every ZDU exporter of ' + C,
      'No exporter of ' + C + ' has been able to poll /rest/zdu/cluster for more than ' + t.bitbucketUnreachable['for'] + ' (bitbucket_zdu_up == 0 on every sidecar). The reason (timeout, connect, tls, not_found, server_error, not_json, ...) is in bitbucket_zdu_last_error_info. Cluster and node alerts for this cluster are blind until this is fixed.',
    ),
    alert(
      'BitbucketZduCredentialsRejected', t.credentialsRejected,
      'max without (%s) (bitbucket_zdu_last_error_info%s)' % [sidecar, sel('reason=~"unauthorized|forbidden"')],
      'Bitbucket rejects the ZDU exporter credentials on ' + C + ' ({{ $labels.reason }})',
      '{{ if eq $labels.reason "forbidden" }}Bitbucket answers 403 Forbidden: the exporter user is authenticated but lacks SYS_ADMIN (Admin is not enough).{{ else }}Bitbucket answers 401 Unauthorized: the username/password is wrong, expired or locked, an HTTP access token was used (tokens cannot carry SYS_ADMIN), or the user lacks SYS_ADMIN.{{ end }} At least one exporter of ' + C + ' has been refused for more than ' + t.credentialsRejected['for'] + '; its upgrade data is missing.',
    ),
    alert(
      'BitbucketZduNotClustered', t.notClustered,
      'max without (%s) (bitbucket_zdu_last_error_info%s)' % [sidecar, sel('reason="not_clustered"')],
      'The Bitbucket behind ' + C + ' is not a clustered (Data Center) installation',
      'For more than ' + t.notClustered['for'] + ' Bitbucket has answered the exporter of ' + C + ' with "Rolling upgrades feature requires a clustered installation.": rolling upgrades are impossible on this instance. The exporter probably points at the wrong instance, or clustering is not enabled.',
    ),
    alert(
      'BitbucketZduExporterStale', t.exporterStale,
      'count without (%s) (bitbucket_zdu_last_error_info%s)' % [sidecar, sel('reason="stale"')],
      'Bitbucket ZDU exporter data is stale on ' + C,
      '{{ $value }} exporter(s) of ' + C + ' have reported stale data (reason="stale": no poll has completed within the freshness limit) for more than ' + t.exporterStale['for'] + '. The poll loop is hung or far slower than its interval; restart the exporter.',
    ),

    // ------------------------------------------------------------------ cluster state
    alert(
      'BitbucketZduUpgradeStuckMixed', t.stuckMixed,
      clusterTimeInState('MIXED') + ' > %d' % afterS(t.stuckMixed),
      'Rolling upgrade of ' + C + ' stuck in MIXED for ' + dur,
      'Cluster ' + C + ' has run mixed Bitbucket versions (state MIXED) for ' + dur + ' (threshold ' + t.stuckMixed.after + '). A MIXED cluster cannot be cancelled: upgrade the remaining nodes or roll the upgraded ones back. A node in ERROR also holds the cluster in MIXED.',
    ),
    alert(
      'BitbucketZduUpgradeTasksFailed', t.upgradeTasksFailed,
      clusterTimeInState('UPGRADE_TASKS_FAILED') + ' > %d' % afterS(t.upgradeTasksFailed),
      'Upgrade finalization tasks failed on ' + C,
      'Cluster ' + C + ' has been in UPGRADE_TASKS_FAILED for ' + dur + ': the upgrade tasks run after approve failed, so the upgrade is not finalized. Find the cause in the Bitbucket logs, fix it and retry the upgrade tasks.',
    ),
    alert(
      'BitbucketZduUpgradeTasksRunningTooLong', t.upgradeTasksRunningTooLong,
      clusterTimeInState('RUNNING_UPGRADE_TASKS') + ' > %d' % afterS(t.upgradeTasksRunningTooLong),
      'Upgrade finalization on ' + C + ' running for ' + dur,
      'Cluster ' + C + ' has been in RUNNING_UPGRADE_TASKS for ' + dur + ' (threshold ' + t.upgradeTasksRunningTooLong.after + '; finalization normally takes seconds). A task may be hung: check the Bitbucket logs and database activity.',
    ),
    alert(
      'BitbucketZduAwaitingApproval', t.awaitingApproval,
      clusterTimeInState('READY_TO_RUN_UPGRADE_TASKS') + ' > %d' % afterS(t.awaitingApproval),
      'Upgrade of ' + C + ' waiting for approval for ' + dur,
      'Every live node of ' + C + ' runs the new version, but the upgrade has waited for approval (READY_TO_RUN_UPGRADE_TASKS) for ' + dur + ' (threshold ' + t.awaitingApproval.after + '). Until an admin approves, the upgrade tasks do not run and upgrade mode stays on.',
    ),
    alert(
      'BitbucketZduUpgradeModeIdle', t.upgradeModeIdle,
      clusterTimeInState('READY_TO_UPGRADE') + ' > %d' % afterS(t.upgradeModeIdle),
      'Upgrade mode enabled on ' + C + ' with no node upgraded for ' + dur,
      'Upgrade mode has been enabled on ' + C + ' for ' + dur + ' (threshold ' + t.upgradeModeIdle.after + ') and no node runs a new version yet (READY_TO_UPGRADE). Either continue the upgrade or cancel it; while it is on, a node restarted on another version joins the cluster.',
    ),
    alert(
      'BitbucketZduUnknownClusterState', t.unknownClusterState,
      'max without (%s) (bitbucket_zdu_cluster_state%s) == 1' % [sidecar, sel('state!~"%s"' % knownClusterStates)],
      'Cluster ' + C + ' reports the unknown ZDU state {{ $labels.state }}',
      'For more than ' + t.unknownClusterState['for'] + ' Bitbucket has reported cluster state {{ $labels.state }} for ' + C + ', which these alert rules do not know (newer Bitbucket?). State-based alerts cannot judge this cluster; review the rules.',
    ),
    alert(
      'BitbucketZduVersionSkew', t.versionSkew,
      trim(|||
        max without (%(sidecar)s) (bitbucket_zdu_distinct_versions%(sel)s) > 1
        and
        max without (%(sidecar)s) (bitbucket_zdu_upgrade_mode_enabled%(sel)s) == 0
      ||| % { sidecar: sidecar, sel: sel() }),
      'Cluster ' + C + ' runs {{ $value }} Bitbucket versions with upgrade mode off',
      'The live nodes of ' + C + ' have reported {{ $value }} distinct Bitbucket versions for more than ' + t.versionSkew['for'] + ' while upgrade mode is OFF. Outside upgrade mode Bitbucket does not protect a mixed-version cluster; find the odd node in the node table.',
    ),

    // ------------------------------------------------------------------ nodes
    alert(
      'BitbucketZduNodeError', t.nodeError,
      nodeTimeInState('ERROR') + ' > %d' % afterS(t.nodeError),
      'Node {{ $labels.node_name }} of ' + C + ' in ERROR for ' + dur,
      'Node ' + node + ' of ' + C + ' has been in state ERROR for ' + dur + '. A node in ERROR holds the cluster in MIXED and blocks approve: fix or restart the node, or remove it from the cluster.',
    ),
    alert(
      'BitbucketZduNodeStartingTooLong', t.nodeStarting,
      nodeTimeInState('STARTING') + ' > %d' % afterS(t.nodeStarting),
      'Node {{ $labels.node_name }} of ' + C + ' STARTING for ' + dur,
      'Node ' + node + ' of ' + C + ' has been STARTING for ' + dur + ' (threshold ' + t.nodeStarting.after + '; a healthy start takes 1-5 min). Check its logs for a failed plugin, database or shared-home problem.',
    ),
    alert(
      'BitbucketZduNodeDrainingTooLong', t.nodeDraining,
      nodeTimeInState('DRAINING') + ' > %d' % afterS(t.nodeDraining),
      'Node {{ $labels.node_name }} of ' + C + ' DRAINING for ' + dur,
      'Node ' + node + ' of ' + C + ' has been DRAINING for ' + dur + ' (threshold ' + t.nodeDraining.after + '; the drain grace period is 30s). Users or tasks are not leaving it; check its active users and tasks.',
    ),
    alert(
      'BitbucketZduNodeTerminatingTooLong', t.nodeTerminating,
      nodeTimeInState('TERMINATING') + ' > %d' % afterS(t.nodeTerminating),
      'Node {{ $labels.node_name }} of ' + C + ' TERMINATING for ' + dur,
      'Node ' + node + ' of ' + C + ' has been TERMINATING for ' + dur + ' (threshold ' + t.nodeTerminating.after + '). Its shutdown hangs; take a thread dump, then stop the process.',
    ),
    alert(
      'BitbucketZduNodeLost', t.nodeLost,
      nodeTimeInState('OFFLINE', '\n  and\n    (last_over_time(bitbucket_zdu_node_ghost%s[%s]) == 0)' % [sel(), gap]) + ' > %d' % afterS(t.nodeLost),
      'Node {{ $labels.node_name }} of ' + C + ' OFFLINE for ' + dur,
      'Node ' + node + ' of ' + C + ' has been OFFLINE for ' + dur + ' (threshold ' + t.nodeLost.after + ') and no live node with the same name replaced it (it is not a ghost entry): the cluster has fewer live nodes than when the upgrade started.',
    ),
  ];

  assert std.length(_check) > 0;
  {
    groups: [
      {
        name: c.groupName,
        rules: rules,
      },
    ],
  }
