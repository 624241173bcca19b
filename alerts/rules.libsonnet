// Recording rules: the per-cluster aggregations that the alerts AND the dashboard read, so
// both show the same numbers. Every rule aggregates `by` _config.clusterLabels (plus the
// rule's own labels): N sidecars of one cluster give one series. Instant selectors only, so
// a series whose target disappeared (a sidecar that died with its pod) stops counting at
// once (Prometheus's staleness markers), not minutes later.
local lib = import 'lib.libsonnet';
{
  prometheusRules+:: {
    local c = $._config,
    local C = std.join(', ', c.clusterLabels),
    local sel(extra='') = '{' + lib.matchers([c.selector, extra]) + '}',
    // The earliest time `by` entered the state it reports now: the minimum of what the
    // exporters report (`reported`, labelled with `state`) and of this rule's own value
    // within _config.enteredBridge, the latter kept only while that state is reported now
    // and no later-entered state of `by` was recorded within the bridge (a state left and
    // re-entered while Prometheus watched starts a new clock). Prometheus's memory, so an
    // exporter restarted without its state file cannot restart the clocks of the state
    // alerts (a pause between two scrapes of up to the bridge is covered).
    local enteredKept(name, by, reported) = |||
      min by (%(by)s, state) (
        %(reported)s
        or
        (
          (
            last_over_time(%(name)s[%(w)s])
            >= on (%(by)s) group_left
            max by (%(by)s) (max_over_time(%(name)s[%(w)s]))
          )
          and on (%(by)s, state)
          (
            %(reported)s
          )
        )
      )
    ||| % { by: by, reported: std.strReplace(reported, '\n', '\n  '), name: name, w: c.enteredBridge },
    local rec(name, expr) = { record: name, expr: if std.length(std.findSubstr('\n', expr)) > 0 then std.rstripChars(expr, '\n') + '\n' else expr },
    groups+: [{
      name: c.recordingGroupName,
      rules: [
        rec('bitbucket_zdu:up:max', 'max by (%s) (bitbucket_zdu_up%s)' % [C, sel()]),
        rec('bitbucket_zdu:cluster_state:max', 'max by (%s, state) (bitbucket_zdu_cluster_state%s)' % [C, sel()]),
        // When the cluster entered each state it is in now (per sidecar: its entered time,
        // labelled with the state it reports); the earliest sidecar wins, so a sidecar
        // restarted without a state file does not restart the clock. Prometheus remembers
        // too (enteredKept): an exporter that lost its memory (the central one rescheduled
        // without a state file) does not restart the clock either.
        rec('bitbucket_zdu:cluster_state_entered_timestamp_seconds:min',
            enteredKept('bitbucket_zdu:cluster_state_entered_timestamp_seconds:min', C, '(bitbucket_zdu_cluster_state%s == 1)\n  * ignoring (state) group_left\n  bitbucket_zdu_cluster_state_entered_timestamp_seconds%s' % [sel(), sel()])),
        // Progress: the last time a node entry changed state (earliest sidecar wins, as above).
        rec('bitbucket_zdu:node_state_last_change_timestamp_seconds:min',
            'min by (%s) (bitbucket_zdu_node_state_last_change_timestamp_seconds%s)' % [C, sel()]),
        rec('bitbucket_zdu:upgrade_mode_enabled:max', 'max by (%s) (bitbucket_zdu_upgrade_mode_enabled%s)' % [C, sel()]),
        rec('bitbucket_zdu:distinct_versions:max', 'max by (%s) (bitbucket_zdu_distinct_versions%s)' % [C, sel()]),
        rec('bitbucket_zdu:nodes_upgraded:max', 'max by (%s) (bitbucket_zdu_nodes_upgraded%s)' % [C, sel()]),
        rec('bitbucket_zdu:nodes:max', 'max by (%s, state) (bitbucket_zdu_nodes%s)' % [C, sel()]),
        rec('bitbucket_zdu:ghost_nodes:max', 'max by (%s) (bitbucket_zdu_ghost_nodes%s)' % [C, sel()]),
        // When each node entry entered the state it is in now (earliest exporter wins, and
        // Prometheus remembers: enteredKept).
        rec('bitbucket_zdu:node_state_entered_timestamp_seconds:min',
            enteredKept('bitbucket_zdu:node_state_entered_timestamp_seconds:min', C + ', node_id, node_name', '(bitbucket_zdu_node_state%s == 1)\n  * ignoring (state) group_left\n  bitbucket_zdu_node_state_entered_timestamp_seconds%s' % [sel(), sel()])),
        rec('bitbucket_zdu:node_name_offline_since_timestamp_seconds:min',
            'min by (%s, node_name) (bitbucket_zdu_node_name_offline_since_timestamp_seconds%s)' % [C, sel()]),
        // Progress: the later of the last node change and entering the current cluster state
        // (switching upgrade mode on after days of STABLE is not "days without progress").
        // A sidecar restarted without state file counts its first answer as a change; the
        // stall alerts also look at Prometheus's own history for that case (alerts.libsonnet).
        rec('bitbucket_zdu:progress_timestamp_seconds:max',
            // The LATEST sidecar wins here: a sidecar that saw a node change proves progress,
            // while one whose memory predates its pod's restart has not seen it.
            'max by (%s) ({__name__=~"bitbucket_zdu_node_state_last_change_timestamp_seconds|bitbucket_zdu:cluster_state_entered_timestamp_seconds:min", %s})' % [C, c.selector]),
        // Users + tasks left on each DRAINING node (by name; the largest any exporter reports).
        // Falling values are progress too (alerts.libsonnet).
        rec('bitbucket_zdu:draining_node_work:max',
            'max by (%s, node_name) (\n  (bitbucket_zdu_node_active_users%s + bitbucket_zdu_node_active_tasks%s)\n  * ignoring (state)\n  (bitbucket_zdu_node_state%s == 1)\n)' % [C, sel(), sel(), sel('state="DRAINING"')]),
        // 1 while some node name has an ACTIVE entry, 0 while it has entries but none ACTIVE:
        // counts restarts in Prometheus's own history (a crash loop), whatever the exporter
        // remembers.
        rec('bitbucket_zdu:node_name_active:max',
            'max by (%s, node_name) (bitbucket_zdu_node_state%s)' % [C, sel('state="ACTIVE"')]),
        // Live (not OFFLINE) node entries per cluster: the membership the NodeMissing alert
        // compares with the recent past; works with upgrade mode off too.
        rec('bitbucket_zdu:live_nodes:max',
            'max by (%s) (sum without (state) (bitbucket_zdu_nodes%s))' % [C, sel('state!="OFFLINE"')]),
        // Transitions in the last 2 minutes (the exporter pre-creates every pair at 0, so a
        // first transition is an increase too). Dashboard annotations.
        rec('bitbucket_zdu:cluster_state_transitions:increase2m',
            'max by (%s, from, to) (increase(bitbucket_zdu_cluster_state_transitions_total%s[2m]))' % [C, sel()]),
      ],
    }],
  },
}
