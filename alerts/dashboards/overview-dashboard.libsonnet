// The Grafana dashboard of the mixin, as a function of _config. Plain jsonnet (no grafonnet)
// so it builds with Debian's jsonnet 0.18. Panels read the recording rules of
// rules.libsonnet for everything per cluster (state, entered time, versions, progress), so
// they show the numbers the alerts use, and group every query by _config.clusterLabels.
local lib = import '../lib.libsonnet';
function(config)
  local ds = { type: 'prometheus', uid: '${datasource}' };
  // Raw exporter series: job, cluster and exporter (instance) variables. Recorded per-cluster
  // series (bitbucket_zdu:*) carry only the cluster labels: job and cluster.
  local S = 'job=~"$job", cluster=~"$cluster", instance=~"$instance"';
  local sel(extra='') = '{' + lib.matchers([S, extra]) + '}';
  local R = 'job=~"$job", cluster=~"$cluster"';
  local rsel(extra='') = '{' + lib.matchers([R, extra]) + '}';
  local C = std.join(', ', config.clusterLabels);  // labels that identify the cluster in `by` clauses
  local th = config.thresholds;

  local clusterStates = ['STABLE', 'READY_TO_UPGRADE', 'MIXED', 'READY_TO_RUN_UPGRADE_TASKS', 'RUNNING_UPGRADE_TASKS', 'UPGRADE_TASKS_FAILED'];
  local clusterColors = ['green', 'blue', 'orange', 'purple', 'yellow', 'red'];
  // Node states of the product (products.libsonnet sets dashboardNodeStates for the others).
  local productStates = if std.objectHas(config, 'dashboardNodeStates') then config.dashboardNodeStates else null;
  local nodeStates = if productStates != null then productStates.states else ['ACTIVE', 'STARTING', 'DRAINING', 'TERMINATING', 'OFFLINE', 'ERROR'];
  local nodeColors = if productStates != null then productStates.colors else ['green', 'blue', 'yellow', 'orange', 'text', 'red'];
  local nodeStatesText = if productStates != null then productStates.text else 'ACTIVE green, STARTING blue, DRAINING yellow, TERMINATING orange, OFFLINE grey, ERROR red.';

  // One numeric series per group from 0/1 state series: state i -> i, unknown -> 9.
  local encode(metric, states, extraSel='') =
    std.join('\n  or\n', [
      '  (%s%s == 1) * %d' % [metric, sel(lib.matchers([extraSel, 'state="%s"' % states[i]])), i]
      for i in std.range(0, std.length(states) - 1)
    ] + ['  (%s%s == 1) * 9' % [metric, sel(lib.matchers([extraSel, 'state!~"%s"' % std.join('|', states)]))]]);

  // Same for a recorded per-cluster series (job/cluster selector only).
  local encodeR(metric, states) =
    std.join('\n  or\n', [
      '  (%s%s == 1) * %d' % [metric, rsel('state="%s"' % states[i]), i]
      for i in std.range(0, std.length(states) - 1)
    ] + ['  (%s%s == 1) * 9' % [metric, rsel('state!~"%s"' % std.join('|', states))]]);

  local mappings(states, colors) = [{
    type: 'value',
    options: {
      [std.toString(i)]: { text: states[i], color: colors[i], index: i }
      for i in std.range(0, std.length(states) - 1)
    } + { '9': { text: 'UNKNOWN', color: 'purple', index: 9 } },
  }];

  local target(expr, legend='', instant=false, format='time_series', refId='A') = {
    datasource: ds,
    expr: expr,
    legendFormat: legend,
    instant: instant,
    range: !instant,
    format: format,
    refId: refId,
  };

  local panel(type, title, description, targets, x, y, w, h, fieldConfig={}, options={}, extra={}) = {
    type: type,
    title: title,
    description: description,
    datasource: ds,
    targets: targets,
    gridPos: { x: x, y: y, w: w, h: h },
    fieldConfig: { defaults: {}, overrides: [] } + fieldConfig,
    options: options,
  } + extra;

  local row(title, y) = {
    type: 'row',
    title: title,
    collapsed: false,
    gridPos: { x: 0, y: y, w: 24, h: 1 },
    panels: [],
  };

  local stat(title, description, targets, x, y, w, h=4, defaults={}, textMode='auto') =
    panel('stat',
          title,
          description,
          targets,
          x,
          y,
          w,
          h,
          { defaults: { color: { mode: 'thresholds' } } + defaults },
          { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, textMode: textMode, colorMode: 'background', graphMode: 'none' });

  local timeseries(title, description, targets, x, y, w, h=8, unit='short', extraOptions={}) =
    panel('timeseries',
          title,
          description,
          targets,
          x,
          y,
          w,
          h,
          { defaults: { unit: unit, custom: { lineWidth: 1, fillOpacity: 10, showPoints: 'never' } } },
          { legend: { displayMode: 'table', placement: 'right', calcs: ['lastNotNull', 'max'] }, tooltip: { mode: 'multi', sort: 'desc' } } + extraOptions);

  local timeline(title, description, targets, x, y, w, h, maps) =
    panel('state-timeline',
          title,
          description,
          targets,
          x,
          y,
          w,
          h,
          { defaults: { mappings: maps, color: { mode: 'thresholds' }, thresholds: { mode: 'absolute', steps: [{ color: 'text', value: null }] } } },
          { showValue: 'auto', mergeValues: true, rowHeight: 0.8, legend: { showLegend: false } });

  local clusterStateExpr = 'max by (%s) (\n%s\n)' % [C, encodeR('bitbucket_zdu:cluster_state:max', clusterStates)];
  local nodeStateExpr = 'max by (%s, node_name) (\n  (\n%s\n  )\n  unless ignoring (state)\n  (bitbucket_zdu_node_ghost%s == 1)\n)' % [C, encode('bitbucket_zdu_node_state', nodeStates), sel()];

  local secs(d) = lib.seconds(d);
  // Thresholds of the "time in state" stat for the series of one state (legend "<cluster> <state>").
  local stateColour(state, steps) = {
    matcher: { id: 'byRegexp', options: '.* %s$' % state },
    properties: [{ id: 'thresholds', value: { mode: 'absolute', steps: steps } }],
  };

  local panels = [
    row('Upgrade at a glance', 0),
    stat('Cluster state',
         'ZDU state of the cluster (GET /rest/zdu/cluster -> state). Path of a healthy upgrade: STABLE -> READY_TO_UPGRADE -> MIXED -> READY_TO_RUN_UPGRADE_TASKS -> RUNNING_UPGRADE_TASKS -> STABLE.',
         [target(clusterStateExpr, '{{cluster}} {{job}}', true)],
         0,
         1,
         6,
         4,
         { mappings: mappings(clusterStates, clusterColors), noValue: 'no data (exporter down?)' },
         'value'),
    stat('Time in current state',
         'How long the cluster has been in its current ZDU state (recorded bitbucket_zdu:cluster_state_entered_timestamp_seconds:min, which survives exporter restarts with --state.file). Coloured per state: STABLE is never red; READY_TO_UPGRADE and MIXED turn orange/red at the stalled/stuck thresholds (which are about progress, see the "Last progress" panel), RUNNING_UPGRADE_TASKS and READY_TO_RUN_UPGRADE_TASKS at their alert thresholds, UPGRADE_TASKS_FAILED is always red.',
         [target('max by (%s, state) (time() - bitbucket_zdu:cluster_state_entered_timestamp_seconds:min%s)' % [C, rsel()], '{{cluster}} {{state}}', true)],
         6,
         1,
         4,
         4,
         { unit: 's', thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }] } } + {},
         'value_and_name') + { fieldConfig+: { overrides: [
      stateColour('STABLE', [{ color: 'green', value: null }]),
      stateColour('READY_TO_UPGRADE', [{ color: 'blue', value: null }, { color: 'orange', value: secs(th.upgradeStalled.noProgress) }]),
      stateColour('MIXED', [{ color: 'blue', value: null }, { color: 'orange', value: secs(th.upgradeStalled.noProgress) }, { color: 'red', value: secs(th.stuckMixed.maxTotal) }]),
      stateColour('READY_TO_RUN_UPGRADE_TASKS', [{ color: 'purple', value: null }, { color: 'orange', value: secs(th.awaitingApproval.after) }]),
      stateColour('RUNNING_UPGRADE_TASKS', [{ color: 'yellow', value: null }, { color: 'red', value: secs(th.upgradeTasksRunningTooLong.after) }]),
      stateColour('UPGRADE_TASKS_FAILED', [{ color: 'red', value: null }]),
    ] } },
    stat('Upgrade mode',
         'Whether rolling-upgrade mode is enabled (upgradeModeEnabled). While on, nodes may rejoin on a new version.',
         [target('max by (%s) (bitbucket_zdu:upgrade_mode_enabled:max%s)' % [C, rsel()], '', true)],
         10,
         1,
         3,
         4,
         { mappings: [{ type: 'value', options: { '0': { text: 'OFF', color: 'green', index: 0 }, '1': { text: 'ON', color: 'blue', index: 1 } } }] }),
    stat('Nodes upgraded',
         'Live nodes already running a version other than the original one, out of all nodes that took part when the upgrade started (node entries minus ghost entries).',
         [
           target('max by (%s) (bitbucket_zdu:nodes_upgraded:max%s)' % [C, rsel()], 'upgraded', true, refId='A'),
           target('sum by (%s) (bitbucket_zdu:nodes:max%s) - on (%s) max by (%s) (bitbucket_zdu:ghost_nodes:max%s)' % [C, rsel(), C, C, rsel()], 'of nodes', true, refId='B'),
         ],
         13,
         1,
         4,
         4,
         { color: { mode: 'fixed', fixedColor: 'blue' } },
         'value_and_name'),
    stat('Original version',
         'The version the cluster ran when upgrade mode was enabled (originalVersion). Empty while upgrade mode is off.',
         [target('max by (%s, version) (bitbucket_zdu_original_version_info%s)' % [C, sel()], '{{version}}', true)],
         17,
         1,
         3,
         4,
         { noValue: 'upgrade mode off', color: { mode: 'fixed', fixedColor: 'text' } },
         'name'),
    stat('Distinct versions',
         'Number of different Bitbucket versions among live (non-OFFLINE) nodes. More than 1 is expected only during an upgrade.',
         [target('max by (%s) (bitbucket_zdu:distinct_versions:max%s)' % [C, rsel()], '', true)],
         20,
         1,
         2,
         4,
         { thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }, { color: 'orange', value: 2 }] } }),
    stat('Ghost entries',
         'OFFLINE node entries whose name is used by a live node (a pod that came back with a new IP). Normal on Kubernetes during an upgrade; they disappear after approve or cancel and never alert.',
         [target('max by (%s) (bitbucket_zdu:ghost_nodes:max%s)' % [C, rsel()], '', true)],
         22,
         1,
         2,
         4,
         { color: { mode: 'fixed', fixedColor: 'text' } }),
    stat('Nodes by state',
         'Node entries per cluster and state, ghosts included (recorded bitbucket_zdu:nodes:max). One value per cluster: clusters are never added up.',
         [target('max by (%s, state) (bitbucket_zdu:nodes:max%s)' % [C, rsel()], '{{cluster}} {{state}}', true)],
         0,
         5,
         8,
         4,
         { color: { mode: 'fixed', fixedColor: 'blue' } },
         'value_and_name'),
    panel('table',
          'Firing ZDU alerts',
          'Alerts of this rule set currently firing for the selected cluster (Prometheus ALERTS series). Runbooks: docs/runbooks.md.',
          [target('max by (%s, alertname, severity, node_name, reason) (ALERTS{alertname=~"BitbucketZdu.*", alertstate="firing", job=~"$job", cluster=~"$cluster", instance=~"$instance|"})' % C, '', true, 'table')],
          8,
          5,
          8,
          4,
          {},
          { showHeader: true, footer: { show: false } },
          { transformations: [{ id: 'organize', options: { excludeByName: { Time: true, Value: true } } }] }),
    stat('Last progress',
         'Time since a node of the cluster last changed state, joined or left (recorded bitbucket_zdu:node_state_last_change_timestamp_seconds:min). BitbucketZduUpgradeStalled warns at %s without progress in READY_TO_UPGRADE or MIXED, BitbucketZduUpgradeStuckMixed pages at %s in MIXED. Only meaningful while upgrade mode is on.' % [th.upgradeStalled.noProgress, th.stuckMixed.noProgress],
         [target('max by (%s) (time() - bitbucket_zdu:node_state_last_change_timestamp_seconds:min%s) and on (%s) (max by (%s) (bitbucket_zdu:upgrade_mode_enabled:max%s) == 1)' % [C, rsel(), C, C, rsel()], '{{cluster}}', true)],
         16,
         5,
         8,
         4,
         { unit: 's', noValue: 'upgrade mode off', thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }, { color: 'orange', value: secs(th.upgradeStalled.noProgress) }, { color: 'red', value: secs(th.stuckMixed.noProgress) }] } },
         'value_and_name'),

    row('What can I do now', 9),
    panel('table',
          'Allowed actions',
          'What the Bitbucket ZDU API accepts in the current state (every other call answers 409): start from STABLE, cancel from READY_TO_UPGRADE only, approve from READY_TO_RUN_UPGRADE_TASKS, retry (approve again) from UPGRADE_TASKS_FAILED. In MIXED nothing can be called: upgrade the remaining nodes or roll upgraded ones back. Ready-to-paste calls: docs/runbooks.md.',
          [target('max by (%s, state) (bitbucket_zdu:cluster_state:max%s == 1)' % [C, rsel()], '', true, 'table')],
          0,
          10,
          12,
          5,
          { overrides: [{ matcher: { id: 'byName', options: 'state' }, properties: [{ id: 'mappings', value: [{ type: 'value', options: {
            STABLE: { text: 'STABLE: nothing to do (start = POST /rest/zdu/start begins an upgrade)', color: 'green', index: 0 },
            READY_TO_UPGRADE: { text: 'READY_TO_UPGRADE: upgrade the first node, or cancel (POST /rest/zdu/cancel)', color: 'blue', index: 1 },
            MIXED: { text: 'MIXED: no API call possible; upgrade the next node or roll one back (cancel and approve refused)', color: 'orange', index: 2 },
            READY_TO_RUN_UPGRADE_TASKS: { text: 'READY_TO_RUN_UPGRADE_TASKS: approve (POST /rest/zdu/approve), or roll a node back', color: 'purple', index: 3 },
            RUNNING_UPGRADE_TASKS: { text: 'RUNNING_UPGRADE_TASKS: wait; no call possible', color: 'yellow', index: 4 },
            UPGRADE_TASKS_FAILED: { text: 'UPGRADE_TASKS_FAILED: fix the cause, then retry (POST /rest/zdu/approve)', color: 'red', index: 5 },
          } }] }, { id: 'custom.displayMode', value: 'color-background' }] }] },
          { showHeader: true, footer: { show: false } },
          { transformations: [{ id: 'organize', options: { excludeByName: { Time: true, Value: true } } }] }),
    panel('table',
          'Next node to stop',
          'Live (not OFFLINE, not a ghost) nodes still on the original version, least busy first (users + tasks). "safe to stop" = both 0: drain done. Use the node id in node-level calls (GET /rest/zdu/nodes/{id}).',
          [target(|||
            sort(
              max by (%(C)s, node_name, node_id) (
                (bitbucket_zdu_node_active_users%(sel)s + on (%(all)s) bitbucket_zdu_node_active_tasks%(sel)s)
                and on (%(all)s)
                  (bitbucket_zdu_node_state%(selOff)s == 0)
                and on (%(all)s)
                  (bitbucket_zdu_node_ghost%(sel)s == 0)
                and on (%(all)s)
                  (
                    bitbucket_zdu_node_info%(sel)s
                    * on (%(allNoNode)s) group_left
                    bitbucket_zdu_original_version_info%(sel)s
                  )
              )
            )
          ||| % { C: C, sel: sel(), selOff: sel('state="OFFLINE"'), all: 'job, instance, node_id, node_name', allNoNode: 'job, instance, version' }, '', true, 'table')],
          12,
          10,
          12,
          5,
          { overrides: [{ matcher: { id: 'byName', options: 'users + tasks' }, properties: [{ id: 'mappings', value: [{ type: 'value', options: { '0': { text: '0 (safe to stop)', color: 'green', index: 0 } } }] }, { id: 'custom.displayMode', value: 'color-text' }] }] },
          { showHeader: true, sortBy: [{ displayName: 'users + tasks', desc: false }], footer: { show: false } },
          { transformations: [{ id: 'organize', options: { excludeByName: { Time: true }, renameByName: { Value: 'users + tasks' } } }] }),

    row('Cluster and nodes over time', 15),
    timeline('Cluster state over time',
             'The cluster ZDU state over the selected range. Red = UPGRADE_TASKS_FAILED, orange = MIXED.',
             [target(clusterStateExpr, 'cluster state')],
             0,
             16,
             24,
             4,
             mappings(clusterStates, clusterColors)),
    timeline('Node state over time',
             'State of every node over time, ghost entries hidden. ' + nodeStatesText,
             [target(nodeStateExpr, '{{node_name}}')],
             0,
             20,
             24,
             7,
             mappings(nodeStates, nodeColors)),
    timeline('Version per node',
             'Bitbucket version each node runs (bitbucket_zdu_node_info; OFFLINE and ghost entries report no version).',
             [target('max by (%s, node_name, version) (bitbucket_zdu_node_info%s)' % [C, sel('version!=""')], '{{node_name}} {{version}}')],
             0,
             27,
             24,
             6,
             [{ type: 'value', options: { '1': { text: 'running', color: 'green', index: 0 } } }]),
    timeseries('Active users per node',
               'activeUserCount per node: the drain signal. Before stopping a node wait until it reaches 0. Null (no line) while OFFLINE.',
               [target('max by (%s, node_name) (bitbucket_zdu_node_active_users%s)' % [C, sel()], '{{node_name}}')],
               0,
               33,
               12,
               8),
    timeseries('Active tasks per node',
               'tasksTotal per node: the other drain signal (git operations, background tasks). Wait for 0 before stopping a node.',
               [target('max by (%s, node_name) (bitbucket_zdu_node_active_tasks%s)' % [C, sel()], '{{node_name}}')],
               12,
               33,
               12,
               8),

    row('Nodes now', 41),
    panel('table',
          'Node table',
          'Every node entry now: state, version, build, active tasks and users, time in current state, and whether it is a ghost (an OFFLINE entry replaced by a live node of the same name). Sort by "time in state" to find the node that is stuck.',
          [
            target('max by (%s, node_name, node_id, state) (bitbucket_zdu_node_state%s == 1)' % [C, sel()], '', true, 'table', 'A'),
            target('max by (%s, node_name, node_id, version, build_number, address) (bitbucket_zdu_node_info%s)' % [C, sel()], '', true, 'table', 'B'),
            target('max by (%s, node_name, node_id) (bitbucket_zdu_node_active_tasks%s)' % [C, sel()], '', true, 'table', 'C'),
            target('max by (%s, node_name, node_id) (bitbucket_zdu_node_active_users%s)' % [C, sel()], '', true, 'table', 'D'),
            target('max by (%s, node_name, node_id) (time() - bitbucket_zdu:node_state_entered_timestamp_seconds:min%s)' % [C, rsel()], '', true, 'table', 'E'),
            target('max by (%s, node_name, node_id) (bitbucket_zdu_node_ghost%s)' % [C, sel()], '', true, 'table', 'F'),
          ],
          0,
          42,
          24,
          8,
          { overrides: [
            { matcher: { id: 'byName', options: 'time in state' }, properties: [{ id: 'unit', value: 's' }] },
            { matcher: { id: 'byName', options: 'ghost' }, properties: [{ id: 'mappings', value: [{ type: 'value', options: { '0': { text: 'no', index: 0 }, '1': { text: 'ghost', color: 'text', index: 1 } } }] }] },
          ] },
          { showHeader: true, sortBy: [{ displayName: 'node_name', desc: false }], footer: { show: false } },
          { transformations: [
            { id: 'merge', options: {} },
            { id: 'organize', options: {
              excludeByName: { Time: true, 'Value #A': true, 'Value #B': true },
              renameByName: { 'Value #C': 'tasks', 'Value #D': 'users', 'Value #E': 'time in state', 'Value #F': 'ghost' },
              indexByName: { cluster: 0, node_name: 1, state: 2, version: 3, build_number: 4, 'Value #C': 5, 'Value #D': 6, 'Value #E': 7, 'Value #F': 8, node_id: 9, address: 10 },
            } },
          ] }),

    row('Exporter health', 50),
    timeline('Exporter scrapes',
             'Prometheus scrape of each exporter (up). Red = Prometheus cannot scrape that exporter (BitbucketZduExporterDown). A sidecar disappears and reappears with a new instance when its pod is replaced.',
             [target('max by (%s, instance) (up%s)' % [C, sel()], '{{cluster}} {{instance}}')],
             0,
             51,
             12,
             6,
             [{ type: 'value', options: { '0': { text: 'down', color: 'red', index: 0 }, '1': { text: 'up', color: 'green', index: 1 } } }]),
    timeline('Bitbucket reachable from exporter',
             'bitbucket_zdu_up per exporter: 1 when its last poll of /rest/zdu/cluster succeeded and is fresh. The sidecar of a node being upgraded is red while its node restarts; that is normal.',
             [target('max by (%s, instance) (bitbucket_zdu_up%s)' % [C, sel()], '{{cluster}} {{instance}}')],
             12,
             51,
             12,
             6,
             [{ type: 'value', options: { '0': { text: 'failing', color: 'red', index: 0 }, '1': { text: 'ok', color: 'green', index: 1 } } }]),
    timeline('Last error reason',
             'Why each failing exporter fails (bitbucket_zdu_last_error_info{reason}): timeout/connect/tls = network, fd_exhausted = the exporter ran out of file descriptors, unauthorized/forbidden = credentials or missing SYS_ADMIN, not_clustered, not_found = wrong URL/context path, not_json = SSO login page, stale = poll loop hung.',
             [target('max by (%s, instance, reason) (bitbucket_zdu_last_error_info%s)' % [C, sel()], '{{instance}} {{reason}}')],
             0,
             57,
             12,
             6,
             [{ type: 'value', options: { '1': { text: 'failing', color: 'red', index: 0 } } }]),
    timeseries('Poll errors by reason',
               'Failed polls per second by endpoint and reason (bitbucket_zdu_poll_errors_total).',
               [target('sum by (%s, endpoint, reason) (rate(bitbucket_zdu_poll_errors_total%s[$__rate_interval]))' % [C, sel()], '{{cluster}} {{endpoint}} {{reason}}')],
               12,
               57,
               12,
               6,
               'reqps'),
    timeseries('Polls per second',
               'Polls per second per exporter and endpoint (bitbucket_zdu_polls_total). Flat zero = the poll loop stopped.',
               [target('sum by (%s, instance, endpoint) (rate(bitbucket_zdu_polls_total%s[$__rate_interval]))' % [C, sel()], '{{instance}} {{endpoint}}')],
               0,
               63,
               8,
               6,
               'reqps'),
    timeseries('Poll duration',
               'Duration of the last poll per exporter and endpoint (bitbucket_zdu_poll_duration_seconds). Bitbucket answering slowly shows here first.',
               [target('max by (%s, instance, endpoint) (bitbucket_zdu_poll_duration_seconds%s)' % [C, sel()], '{{instance}} {{endpoint}}')],
               8,
               63,
               8,
               6,
               's'),
    timeseries('Data age',
               'Seconds since the last successful poll per exporter and endpoint. Grows while Bitbucket is unreachable or the poll loop is hung.',
               [target('time() - max by (%s, instance, endpoint) (bitbucket_zdu_last_poll_success_timestamp_seconds%s)' % [C, sel()], '{{instance}} {{endpoint}}')],
               16,
               63,
               8,
               6,
               's'),
    timeseries('Cluster state transitions',
               'State transitions seen by the exporters (bitbucket_zdu_cluster_state_transitions_total), also drawn as annotations on every panel.',
               [target('max by (%s, from, to) (bitbucket_zdu:cluster_state_transitions:increase2m%s)' % [C, rsel()], '{{cluster}} {{from}} -> {{to}}')],
               0,
               69,
               8,
               6),
    panel('table',
          'Responding nodes',
          "Which node answered each exporter's GET /rest/zdu/state, its version and the state it reported. A sidecar calling localhost always sees its own node.",
          [
            target('max by (%s, instance, node_name, node_id, version) (bitbucket_zdu_responder_info%s)' % [C, sel()], '', true, 'table', 'A'),
            target('max by (%s, instance, state) (bitbucket_zdu_responder_state%s == 1)' % [C, sel()], '', true, 'table', 'B'),
          ],
          8,
          69,
          8,
          6,
          {},
          { showHeader: true, footer: { show: false } },
          { transformations: [{ id: 'merge', options: {} }, { id: 'organize', options: { excludeByName: { Time: true, 'Value #A': true, 'Value #B': true } } }] }),
    panel('table',
          'Exporter versions',
          'Build of every exporter (bitbucket_zdu_exporter_build_info).',
          [target('max by (%s, instance, version, revision, rustc) (bitbucket_zdu_exporter_build_info%s)' % [C, sel()], '', true, 'table')],
          16,
          69,
          8,
          6,
          {},
          { showHeader: true, footer: { show: false } },
          { transformations: [{ id: 'organize', options: { excludeByName: { Time: true, Value: true } } }] }),
    timeseries('Exporter CPU',
               'CPU seconds per second used by each exporter process.',
               [target('max by (%s, instance) (rate(process_cpu_seconds_total%s[$__rate_interval]))' % [C, sel()], '{{job}} {{instance}}')],
               0,
               75,
               12,
               6,
               'percentunit'),
    timeseries('Exporter memory',
               'Resident memory of each exporter process.',
               [target('max by (%s, instance) (process_resident_memory_bytes%s)' % [C, sel()], '{{job}} {{instance}}')],
               12,
               75,
               12,
               6,
               'bytes'),
  ];

  local queryVar(name, label, query, multi, includeAll) = {
    type: 'query',
    name: name,
    label: label,
    datasource: ds,
    query: { query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    definition: query,
    refresh: 2,
    sort: 1,
    multi: multi,
    includeAll: includeAll,
    allValue: if includeAll then '.*' else null,
    current: {},
    hide: 0,
    regex: '',
  };

  {
    uid: config.dashboard.uid,
    title: config.dashboard.title,
    description: 'Keep this open during a Bitbucket Data Center rolling upgrade: cluster and node states, drain progress, versions, and the health of the bitbucket-zdu-exporter. Alerts and runbooks: docs/alerts-and-dashboards.md, docs/runbooks.md.',
    tags: ['bitbucket', 'zdu', 'rolling-upgrade'],
    id: null,
    editable: true,
    graphTooltip: 1,
    refresh: config.dashboard.refresh,
    schemaVersion: 38,
    version: 1,
    time: { from: 'now-6h', to: 'now' },
    timezone: '',
    fiscalYearStartMonth: 0,
    liveNow: false,
    weekStart: '',
    links: [],
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        },
        {
          name: 'Cluster state transitions',
          datasource: ds,
          enable: true,
          iconColor: 'orange',
          expr: 'max by (%s, from, to) (bitbucket_zdu:cluster_state_transitions:increase2m%s) > 0' % [C, rsel()],
          step: '30s',
          titleFormat: 'ZDU {{cluster}} {{from}} -> {{to}}',
          textFormat: 'Cluster state changed from {{from}} to {{to}}',
          tagKeys: 'from,to',
          useValueForTime: false,
        },
        {
          name: 'ZDU alerts firing',
          datasource: ds,
          enable: true,
          iconColor: 'red',
          expr: 'max by (%s, alertname, severity, node_name) (ALERTS{alertname=~"BitbucketZdu.*", alertstate="firing", job=~"$job", cluster=~"$cluster", instance=~"$instance|"})' % C,
          step: '60s',
          titleFormat: '{{alertname}}',
          textFormat: '{{severity}} {{node_name}}',
          tagKeys: 'alertname,severity',
          useValueForTime: false,
        },
      ],
    },
    templating: {
      list: [
        { type: 'datasource', name: 'datasource', label: 'Data source', query: 'prometheus', current: {}, hide: 0, refresh: 1, regex: '', includeAll: false, multi: false },
        // Jobs of the cluster series AND of the exporter's own /metrics (central /probe mode
        // scrapes them in separate jobs): pick both to see cluster and exporter panels.
        queryVar('job', 'Job', 'label_values({__name__=~"bitbucket_zdu_up|bitbucket_zdu_exporter_build_info"}, job)', true, true),
        queryVar('cluster', 'Cluster', 'label_values(bitbucket_zdu_up{job=~"$job"}, cluster)', false, true),
        queryVar('instance', 'Exporter', 'label_values({__name__=~"bitbucket_zdu_up|bitbucket_zdu_exporter_build_info", job=~"$job"}, instance)', true, true),
      ],
    },
    panels: [
      p { id: i + 1 }
      for i in std.range(0, std.length(panels) - 1)
      for p in [panels[i]]
    ],
  }
