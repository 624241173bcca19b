// Alerting rules. They read the recording rules of rules.libsonnet (one series per cluster,
// labelled with _config.clusterLabels only), so one cluster gives one alert whatever its
// pods' labels are.
local lib = import 'lib.libsonnet';
{
  prometheusAlerts+:: {
    local c = $._config,
    local t = c.thresholds,
    local CL = c.clusterLabels,
    local C = std.join(', ', CL),
    local Cn = c.clusterName,
    local sel(extra='') = '{' + lib.matchers([c.selector, extra]) + '}',
    local s(d) = lib.seconds(d),
    local dur = '{{ $value | humanizeDuration }}',
    local node = '{{ $labels.node_name }} (id {{ $labels.node_id }})',
    local knownClusterStates = 'STABLE|READY_TO_UPGRADE|MIXED|READY_TO_RUN_UPGRADE_TASKS|RUNNING_UPGRADE_TASKS|UPGRADE_TASKS_FAILED',

    local alert(name, th, expr, summary, description, keepFiringFor=null) = {
      alert: name,
      expr: if std.length(std.findSubstr('\n', expr)) > 0 then std.rstripChars(expr, '\n') + '\n' else expr,
      'for': th['for'],
      labels: { severity: th.severity },
      annotations: {
        summary: summary,
        description: description,
        runbook_url: c.runbookUrl + '#' + std.asciiLower(name),
      },
    } + (if keepFiringFor != null then { keep_firing_for: keepFiringFor } else {}),

    // A state alert that must not resolve while nothing is known about its cluster: the
    // condition `expr` (one series per `by` label set), OR: this alert was pending or firing
    // at the last evaluation and no exporter reports any state of the cluster now
    // (unreachable, down, gone, or just this scrape failed); then the value is `held`,
    // computed from the last known data within _config.unknownHold. Holding a pending alert
    // too means a failed scrape does not restart its `for:` (scrapes failing every k-th time
    // would otherwise keep every alert pending forever).
    local holding(name, by, expr, held) = |||
      %(expr)s
      or
      (
        %(held)s
        and on (%(by)s)
          max by (%(by)s) (ALERTS{alertname="%(name)s"})
        unless on (%(C)s)
          bitbucket_zdu:cluster_state:max
      )
    ||| % { expr: std.rstripChars(expr, '\n'), held: held, by: by, name: name, C: C },
    local H = c.unknownHold,

    // Names of the alerts that hold while unknown (BitbucketZduClusterUnobserved watches them).
    local held = ['BitbucketZduUpgradeStuckMixed', 'BitbucketZduUpgradeStalled', 'BitbucketZduUpgradeTasksFailed', 'BitbucketZduUpgradeTasksRunningTooLong', 'BitbucketZduAwaitingApproval', 'BitbucketZduNodeError', 'BitbucketZduNodeStartingTooLong', 'BitbucketZduNodeDrainingTooLong', 'BitbucketZduNodeTerminatingTooLong', 'BitbucketZduNodeLost'],

    // Seconds the cluster has been in `state` (now / last known), one series per cluster.
    local inState(state) = 'max by (%s) (time() - bitbucket_zdu:cluster_state_entered_timestamp_seconds:min{state="%s"})' % [C, state],
    local inStateHeld(state) = 'max by (%s) (time() - last_over_time(bitbucket_zdu:cluster_state_entered_timestamp_seconds:min{state="%s"}[%s]))' % [C, state, H],
    local clusterStateAlert(name, th, state, summary, description) =
      alert(name, th, holding(name, C, '%s > %d' % [inState(state), s(th.after)], inStateHeld(state)), summary, description),

    local NB = C + ', node_id, node_name',
    local nodeIn(state) = 'max by (%s) (time() - bitbucket_zdu:node_state_entered_timestamp_seconds:min{state="%s"})' % [NB, state],
    local nodeInHeld(state) = 'max by (%s) (time() - last_over_time(bitbucket_zdu:node_state_entered_timestamp_seconds:min{state="%s"}[%s]))' % [NB, state, H],
    local nodeAlert(name, th, state, summary, description, unlessExpr='') =
      alert(name, th, holding(name, NB, '%s > %d%s' % [nodeIn(state), s(th.after), if unlessExpr == '' then '' else '\nunless on (%s, node_name)\n  %s' % [C, unlessExpr]], nodeInHeld(state)), summary, description),

    // Seconds since the last progress: the later of the last node change and entering the
    // cluster state (rules.libsonnet).
    local sinceProgress = 'max by (%s) (time() - bitbucket_zdu:progress_timestamp_seconds:max)' % C,
    local sinceProgressHeld = 'max by (%s) (time() - last_over_time(bitbucket_zdu:progress_timestamp_seconds:max[%s]))' % [C, H],
    // Node names whose users + tasks fell within _config.drainProgressWindow while DRAINING:
    // a long drain that empties is progress, not a stall.
    local drainFalling = '(max_over_time(bitbucket_zdu:draining_node_work:max[%s]) > bitbucket_zdu:draining_node_work:max)' % c.drainProgressWindow,
    // A firing or pending stall alert is kept while Prometheus itself sees no node change
    // (the per-state node counts did not move within _config.noChangeWindow): an exporter
    // that lost its memory (restart without state file) restarts its clocks, but cannot
    // clear the alert. The value is the time since the earliest progress timestamp of the
    // last hour.
    // Prometheus's own view of a stall, whatever the exporters remember: the cluster was in
    // `state` `window` ago, has been in no other state since, and no per-state node count
    // has moved. Value: the exporters' figure, at least `window`.
    local seenStalled(state, window) = |||
      (
        clamp_min(%(since)s, %(secs)d)
        and on (%(C)s)
          (max by (%(C)s) (max_over_time(bitbucket_zdu:cluster_state:max{state="%(state)s"}[5m] offset %(window)s)) == 1)
        and on (%(C)s)
          (max by (%(C)s) (max_over_time(bitbucket_zdu:cluster_state:max{state!="%(state)s"}[%(window)s])) == 0)
        and on (%(C)s)
          (sum by (%(C)s) (changes(bitbucket_zdu:nodes:max[%(window)s])) == 0)
      )
    ||| % { C: C, since: sinceProgress, secs: s(window), state: state, window: window },
    local keptWithoutChange(name, states) = |||
      (
        max by (%(C)s) (time() - min_over_time(bitbucket_zdu:progress_timestamp_seconds:max[1h]))
        and on (%(C)s)
          max by (%(C)s) (ALERTS{alertname="%(name)s"})
        and on (%(C)s)
          (sum by (%(C)s) (changes(bitbucket_zdu:nodes:max[%(w)s])) == 0)
        and on (%(C)s)
          (bitbucket_zdu:cluster_state:max{state=~"%(states)s"} == 1)
      )
    ||| % { C: C, name: name, w: c.noChangeWindow, states: states },

    local absentRules = [
      alert(
        'BitbucketZduExporterAbsent',
        c.exporterAbsent,
        // Only the listed equality matchers: absent() drops a label matched twice.
        'absent(up{%s})' % lib.matchers(['%s="%s"' % [k, cl[k]] for k in std.objectFields(cl)]),
        'No Bitbucket ZDU exporter of ' + Cn + ' is being scraped',
        'Prometheus has had no scrape target of ' + Cn + ' for more than ' + c.exporterAbsent['for'] + ': its rolling upgrades are not monitored at all. Check the scrape config / PodMonitor and _config.selector.',
      )
      for cl in c.exporterAbsent.clusters
    ],

    groups+: [{
      name: c.alertGroupName,
      rules: [
        // ------------------------------------------------------------ exporter health
        alert(
          'BitbucketZduExporterDown',
          t.exporterDown,
          |||
            (
              count by (%(C)s) ((max_over_time(up%(sel)s[%(w)s]) == 0) and up%(sel)s and (up%(sel)s offset %(w)s))
              == on (%(C)s)
              count by (%(C)s) (up%(sel)s)
            )
            or
            count by (%(C)s) ((max_over_time(up%(sel)s[%(long)s]) == 0) and up%(sel)s and (up%(sel)s offset %(long)s))
          ||| % { C: C, sel: sel(), w: t.exporterDown.window, long: t.exporterDown.oneDown },
          'Bitbucket ZDU exporter cannot be scraped on ' + Cn,
          'Prometheus has not scraped {{ $value }} bitbucket-zdu-exporter target(s) of ' + Cn + ' successfully for ' + t.exporterDown.window + ' while no target of that cluster could be scraped, or for ' + t.exporterDown.oneDown + ' (longer than any pod replacement or drain). A sidecar that goes down with its pod during a rolling upgrade is not reported; a scrape failing now and then does not count either.',
          c.healthKeepFiringFor,
        ),
        alert(
          'BitbucketZduBitbucketUnreachable',
          t.bitbucketUnreachable,
          // Read through scrapeGapBridge (found by alerts/verify.sh: Confluence unreachable for
          // 21 min behind a scrape failing every 3rd minute never reached the 3m `for:`).
          |||
            max by (%(C)s) (last_over_time(bitbucket_zdu_up%(sel)s[%(B)s])) == 0
            unless on (%(C)s)
              max by (%(C)s) (last_over_time(bitbucket_zdu_last_error_info%(selR)s[%(B)s]))
          ||| % { C: C, B: c.scrapeGapBridge, sel: sel(), selR: sel('reason=~"unauthorized|forbidden|not_clustered|stale"') },
          'Bitbucket is unreachable from every ZDU exporter of ' + Cn,
          'No exporter of ' + Cn + ' has been able to poll /rest/zdu/cluster for more than ' + t.bitbucketUnreachable['for'] + ' (bitbucket_zdu_up == 0 on every exporter). The reason (timeout, connect, tls, not_found, server_error, not_json, ...) is in bitbucket_zdu_last_error_info; fd_exhausted means the exporter itself ran out of file descriptors and never reached Bitbucket (raise its open-files hard limit, LimitNOFILE=). The state of the cluster is unknown: firing upgrade alerts keep firing until it is known again.',
          c.healthKeepFiringFor,
        ),
        alert(
          'BitbucketZduCredentialsRejected',
          t.credentialsRejected,
          'max by (%s, reason) (last_over_time(bitbucket_zdu_last_error_info%s[%s]))' % [C, sel('reason=~"unauthorized|forbidden"'), c.scrapeGapBridge],
          'Bitbucket rejects the ZDU exporter credentials on ' + Cn + ' ({{ $labels.reason }})',
          '{{ if eq $labels.reason "forbidden" }}Bitbucket answers 403 Forbidden: the exporter user is authenticated but lacks SYS_ADMIN (Admin is not enough).{{ else }}Bitbucket answers 401 Unauthorized: the username/password is wrong, expired or locked, an HTTP access token was used (tokens cannot carry SYS_ADMIN), or the user lacks SYS_ADMIN.{{ end }} At least one exporter of ' + Cn + ' has been refused for more than ' + t.credentialsRejected['for'] + '.',
          c.healthKeepFiringFor,
        ),
        alert(
          'BitbucketZduNotClustered',
          t.notClustered,
          'max by (%s) (last_over_time(bitbucket_zdu_last_error_info%s[%s]))' % [C, sel('reason="not_clustered"'), c.scrapeGapBridge],
          'The Bitbucket behind ' + Cn + ' is not a clustered (Data Center) installation',
          'For more than ' + t.notClustered['for'] + ' Bitbucket has answered the exporter of ' + Cn + ' with "Rolling upgrades feature requires a clustered installation.": rolling upgrades are impossible on this instance.',
        ),
        alert(
          'BitbucketZduExporterStale',
          t.exporterStale,
          'count by (%s) (last_over_time(bitbucket_zdu_last_error_info%s[%s]))' % [C, sel('reason="stale"'), c.scrapeGapBridge],
          'Bitbucket ZDU exporter data is stale on ' + Cn,
          '{{ $value }} exporter(s) of ' + Cn + ' have reported stale data (no poll has completed within the freshness limit) for more than ' + t.exporterStale['for'] + '. The poll loop is hung or far slower than its interval; restart the exporter.',
          c.healthKeepFiringFor,
        ),
        alert(
          'BitbucketZduClusterUnobserved',
          { 'for': t.bitbucketUnreachable['for'], severity: 'warning' },
          |||
            max by (%(C)s) (ALERTS{alertname=~"%(held)s", alertstate="firing"})
            unless on (%(C)s)
              bitbucket_zdu:cluster_state:max
          ||| % { C: C, held: std.join('|', held) },
          'Upgrade alerts of ' + Cn + ' are firing but no exporter reports its state',
          'An upgrade alert of ' + Cn + ' is firing and has been kept firing for ' + t.bitbucketUnreachable['for'] + ' although no exporter reports the cluster state (Bitbucket unreachable, exporters down or gone): nothing is known, so nothing is resolved. See the exporter-health alerts of this cluster for the cause.',
        ),
      ] + absentRules + [
        // ------------------------------------------------------------ cluster state
        alert(
          'BitbucketZduUpgradeStalled',
          t.upgradeStalled,
          holding('BitbucketZduUpgradeStalled', C, |||
            (
                (
                  %(since)s > %(limit)d
                  and on (%(C)s)
                    (bitbucket_zdu:cluster_state:max{state="MIXED"} == 1)
                or
                  %(since)s > %(limitRtu)d
                  and on (%(C)s)
                    (bitbucket_zdu:cluster_state:max{state="READY_TO_UPGRADE"} == 1)
                or
                  %(seenMixed)s
                or
                  %(seenRtu)s
                )
              unless on (%(C)s)
                %(falling)s
            )
            or
            %(kept)s
          ||| % { since: sinceProgress, limit: s(t.upgradeStalled.noProgress), limitRtu: s(t.upgradeStalled.noProgressReadyToUpgrade), C: C, falling: drainFalling, kept: keptWithoutChange('BitbucketZduUpgradeStalled', 'READY_TO_UPGRADE|MIXED'), seenMixed: seenStalled('MIXED', t.upgradeStalled.noProgress), seenRtu: seenStalled('READY_TO_UPGRADE', t.upgradeStalled.noProgressReadyToUpgrade) }, sinceProgressHeld),
          'Upgrade of ' + Cn + ' has made no progress for ' + dur,
          'Upgrade mode is on for ' + Cn + ' and for ' + dur + ' no node has changed state, joined or left, no draining node has lost users or tasks, and the cluster state has not changed (thresholds: ' + t.upgradeStalled.noProgress + ' in MIXED, ' + t.upgradeStalled.noProgressReadyToUpgrade + ' in READY_TO_UPGRADE, counted from entering that state). A healthy upgrade changes a node state every few minutes. Continue with the next node, roll back, or cancel (READY_TO_UPGRADE only).',
        ),
        alert(
          'BitbucketZduUpgradeStuckMixed',
          t.stuckMixed,
          holding('BitbucketZduUpgradeStuckMixed', C, |||
            %(inMixed)s
            and on (%(C)s)
            (
                ((%(since)s > %(noProgress)d or %(seen)s) unless on (%(C)s) %(falling)s)
              or
                (
                  %(inMixed)s > %(maxTotal)d
                  unless on (%(C)s)
                    %(inMixed)s <= %(perNode)d * max by (%(C)s) (max_over_time(bitbucket_zdu:live_nodes:max[2h]))
                )
              or
                %(kept)s
            )
          ||| % { inMixed: inState('MIXED'), since: sinceProgress, noProgress: s(t.stuckMixed.noProgress), maxTotal: s(t.stuckMixed.maxTotal), perNode: s(t.stuckMixed.maxPerNode), C: C, falling: drainFalling, kept: keptWithoutChange('BitbucketZduUpgradeStuckMixed', 'MIXED'), seen: seenStalled('MIXED', t.stuckMixed.noProgress) }, inStateHeld('MIXED')),
          'Rolling upgrade of ' + Cn + ' stuck in MIXED for ' + dur,
          'Cluster ' + Cn + ' has run mixed Bitbucket versions (state MIXED) for ' + dur + ' and for ' + t.stuckMixed.noProgress + ' no node has changed state and no draining node has lost users or tasks (or MIXED has lasted longer than ' + t.stuckMixed.maxTotal + ' and ' + t.stuckMixed.maxPerNode + ' per live node). A MIXED cluster cannot be cancelled: upgrade the remaining nodes or roll the upgraded ones back. A node in ERROR also holds the cluster in MIXED (BitbucketZduNodeError then pages instead of this alert).',
        ),
        clusterStateAlert(
          'BitbucketZduUpgradeTasksFailed',
          t.upgradeTasksFailed,
          'UPGRADE_TASKS_FAILED',
          'Upgrade finalization tasks failed on ' + Cn,
          'Cluster ' + Cn + ' has been in UPGRADE_TASKS_FAILED for ' + dur + ": the upgrade tasks run after approve failed, so the upgrade is not finalized. Find the cause in the Bitbucket logs, fix it, then retry with the retry button of the rolling-upgrade admin page or POST /rest/zdu/retryUpgrade (documented by the ZDU plugin and Atlassian's Confluence rolling-upgrade documentation, not in Bitbucket's REST reference). POST /rest/zdu/approve is refused (409) in this state.",
        ),
        clusterStateAlert(
          'BitbucketZduUpgradeTasksRunningTooLong',
          t.upgradeTasksRunningTooLong,
          'RUNNING_UPGRADE_TASKS',
          'Upgrade finalization on ' + Cn + ' running for ' + dur,
          'Cluster ' + Cn + ' has been in RUNNING_UPGRADE_TASKS for ' + dur + ' (threshold ' + t.upgradeTasksRunningTooLong.after + '; finalization normally takes seconds to minutes). A task may be hung: check the Bitbucket logs and database activity.',
        ),
        clusterStateAlert(
          'BitbucketZduAwaitingApproval',
          t.awaitingApproval,
          'READY_TO_RUN_UPGRADE_TASKS',
          'Upgrade of ' + Cn + ' waiting for approval for ' + dur,
          'Every live node of ' + Cn + ' runs the new version, but the upgrade has waited for approval (READY_TO_RUN_UPGRADE_TASKS) for ' + dur + ' (threshold ' + t.awaitingApproval.after + '). Until an admin approves, the upgrade tasks do not run and upgrade mode stays on.',
        ),
        alert(
          'BitbucketZduUnknownClusterState',
          t.unknownClusterState,
          'bitbucket_zdu:cluster_state:max{state!~"%s"} == 1' % knownClusterStates,
          'Cluster ' + Cn + ' reports the unknown ZDU state {{ $labels.state }}',
          'For more than ' + t.unknownClusterState['for'] + ' Bitbucket has reported cluster state {{ $labels.state }} for ' + Cn + ', which these alert rules do not know (newer Bitbucket?). State-based alerts cannot judge this cluster; review the rules.',
        ),
        alert(
          'BitbucketZduVersionSkew',
          t.versionSkew,
          |||
            bitbucket_zdu:distinct_versions:max > 1
            and on (%(C)s)
              (bitbucket_zdu:upgrade_mode_enabled:max == 0)
          ||| % { C: C },
          'Cluster ' + Cn + ' runs {{ $value }} Bitbucket versions with upgrade mode off',
          'The live nodes of ' + Cn + ' have reported {{ $value }} distinct Bitbucket versions for more than ' + t.versionSkew['for'] + ' while upgrade mode is OFF. Outside upgrade mode Bitbucket does not protect a mixed-version cluster; find the odd node in the node table.',
        ),

        // ------------------------------------------------------------ nodes
        nodeAlert(
          'BitbucketZduNodeError',
          t.nodeError,
          'ERROR',
          'Node {{ $labels.node_name }} of ' + Cn + ' in ERROR for ' + dur,
          'Node ' + node + ' of ' + Cn + ' has been in state ERROR for ' + dur + '. It serves no users; in upgrade mode it also holds the cluster in MIXED, so the upgrade cannot reach approval. Fix or restart the node (its logs say why), or remove it from the cluster.',
        ),
        nodeAlert(
          'BitbucketZduNodeStartingTooLong',
          t.nodeStarting,
          'STARTING',
          'Node {{ $labels.node_name }} of ' + Cn + ' STARTING for ' + dur,
          'Node ' + node + ' of ' + Cn + ' has been STARTING for ' + dur + ' (threshold ' + t.nodeStarting.after + '; a healthy start takes 1-5 min). Check its logs for a failed plugin, database or shared-home problem.',
        ),
        nodeAlert(
          'BitbucketZduNodeDrainingTooLong',
          t.nodeDraining,
          'DRAINING',
          'Node {{ $labels.node_name }} of ' + Cn + ' DRAINING for ' + dur,
          'Node ' + node + ' of ' + Cn + ' has been DRAINING for ' + dur + ' (threshold ' + t.nodeDraining.after + ') and its active users and tasks have not fallen for ' + c.drainProgressWindow + ': they are not leaving it. Check its active users and tasks (long clones, mirror syncs) and the graceful-shutdown timeout.',
          drainFalling,
        ),
        nodeAlert(
          'BitbucketZduNodeTerminatingTooLong',
          t.nodeTerminating,
          'TERMINATING',
          'Node {{ $labels.node_name }} of ' + Cn + ' TERMINATING for ' + dur,
          'Node ' + node + ' of ' + Cn + ' has been TERMINATING for ' + dur + ' (threshold ' + t.nodeTerminating.after + '). Its shutdown hangs; take a thread dump, then stop the process.',
        ),
        alert(
          'BitbucketZduNodeLost',
          t.nodeLost,
          holding('BitbucketZduNodeLost',
                  C + ', node_name',
                  'max by (%s, node_name) (time() - bitbucket_zdu:node_name_offline_since_timestamp_seconds:min) > %d' % [C, s(t.nodeLost.after)],
                  'max by (%s, node_name) (time() - last_over_time(bitbucket_zdu:node_name_offline_since_timestamp_seconds:min[%s]))' % [C, H]),
          'Node {{ $labels.node_name }} of ' + Cn + ' has had no live entry for ' + dur,
          'No live (non-OFFLINE) node entry named {{ $labels.node_name }} has been in ' + Cn + ' for ' + dur + ' (threshold ' + t.nodeLost.after + '): the node is gone and no pod with its name came back. A ghost entry whose replacement is live never counts.',
        ),
        alert(
          'BitbucketZduNodeCrashLooping',
          t.nodeCrashLooping,
          'changes(bitbucket_zdu:node_name_active:max[%s]) >= %d' % [t.nodeCrashLooping.window, t.nodeCrashLooping.changes],
          'Node {{ $labels.node_name }} of ' + Cn + ' keeps restarting',
          'Node {{ $labels.node_name }} of ' + Cn + ' has entered or left ACTIVE {{ $value }} times within ' + t.nodeCrashLooping.window + " (a healthy upgrade of a node is 2). It is crash-looping (an OOM kill or a failing start of the new release?): its restarts look like progress to the stall alerts, so this alert pages instead. Check its logs and the pod's restarts; roll back the node if the new release is at fault.",
        ),
        alert(
          'BitbucketZduNodeMissing',
          t.nodeMissing,
          |||
            max_over_time(bitbucket_zdu:live_nodes:max[%(memory)s])
            - on (%(C)s)
            max_over_time(bitbucket_zdu:live_nodes:max[%(after)s])
            > 0
          ||| % { C: C, memory: t.nodeMissing.memory, after: t.nodeMissing.after },
          '{{ $value }} node(s) of ' + Cn + ' missing',
          'For ' + t.nodeMissing.after + ' ' + Cn + ' has had {{ $value }} live (non-OFFLINE) node entries fewer than at some time in the last ' + t.nodeMissing.memory + ', with or without upgrade mode: a node crashed, was evicted, or was replaced outside upgrade mode and could not rejoin. A deliberate scale-down fires this too until ' + t.nodeMissing.memory + ' have passed; silence it then.',
        ),
      ],
    }],
  },
}
