// Source of dashboards/bitbucket-zdu-overview.json. Render with dashboards/render.sh.
// Plain jsonnet (no grafonnet) so it builds with Debian's jsonnet 0.18.
local config = import '../../alerts/config.libsonnet';
local lib = import '../../alerts/lib.libsonnet';

local ds = { type: 'prometheus', uid: '${datasource}' };
local S = 'job=~"$job", cluster=~"$cluster", instance=~"$instance"';
local sel(extra='') = '{' + lib.matchers([S, extra]) + '}';
local C = 'job, cluster';  // labels that identify the cluster in `by` clauses
local th = config.thresholds;

local clusterStates = ['STABLE', 'READY_TO_UPGRADE', 'MIXED', 'READY_TO_RUN_UPGRADE_TASKS', 'RUNNING_UPGRADE_TASKS', 'UPGRADE_TASKS_FAILED'];
local clusterColors = ['green', 'blue', 'orange', 'purple', 'yellow', 'red'];
local nodeStates = ['ACTIVE', 'STARTING', 'DRAINING', 'TERMINATING', 'OFFLINE', 'ERROR'];
local nodeColors = ['green', 'blue', 'yellow', 'orange', 'text', 'red'];

// One numeric series per group from 0/1 state series: state i -> i, unknown -> 9.
local encode(metric, states, extraSel='') =
  std.join('\n  or\n', [
    '  (%s%s == 1) * %d' % [metric, sel(lib.matchers([extraSel, 'state="%s"' % states[i]])), i]
    for i in std.range(0, std.length(states) - 1)
  ] + ['  (%s%s == 1) * 9' % [metric, sel(lib.matchers([extraSel, 'state!~"%s"' % std.join('|', states)]))]]);

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
  panel('stat', title, description, targets, x, y, w, h,
        { defaults: { color: { mode: 'thresholds' } } + defaults },
        { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, textMode: textMode, colorMode: 'background', graphMode: 'none' });

local timeseries(title, description, targets, x, y, w, h=8, unit='short', extraOptions={}) =
  panel('timeseries', title, description, targets, x, y, w, h,
        { defaults: { unit: unit, custom: { lineWidth: 1, fillOpacity: 10, showPoints: 'never' } } },
        { legend: { displayMode: 'table', placement: 'right', calcs: ['lastNotNull', 'max'] }, tooltip: { mode: 'multi', sort: 'desc' } } + extraOptions);

local timeline(title, description, targets, x, y, w, h, maps) =
  panel('state-timeline', title, description, targets, x, y, w, h,
        { defaults: { mappings: maps, color: { mode: 'thresholds' }, thresholds: { mode: 'absolute', steps: [{ color: 'text', value: null }] } } },
        { showValue: 'auto', mergeValues: true, rowHeight: 0.8, legend: { showLegend: false } });

local clusterStateExpr = 'max by (%s) (\n%s\n)' % [C, encode('bitbucket_zdu_cluster_state', clusterStates)];
local nodeStateExpr = 'max by (%s, node_name) (\n  (\n%s\n  )\n  unless ignoring (state)\n  (bitbucket_zdu_node_ghost%s == 1)\n)' % [C, encode('bitbucket_zdu_node_state', nodeStates), sel()];

local secs(d) = lib.seconds(d);

local panels = [
  row('Upgrade at a glance', 0),
  stat('Cluster state', 'ZDU state of the cluster (GET /rest/zdu/cluster -> state). Path of a healthy upgrade: STABLE -> READY_TO_UPGRADE -> MIXED -> READY_TO_RUN_UPGRADE_TASKS -> RUNNING_UPGRADE_TASKS -> STABLE.',
       [target(clusterStateExpr, '{{cluster}} {{job}}', true)], 0, 1, 6, 4,
       { mappings: mappings(clusterStates, clusterColors), noValue: 'no data (exporter down?)' }, 'value'),
  stat('Time in current state', 'How long the cluster has been in its current ZDU state (from bitbucket_zdu_cluster_state_entered_timestamp_seconds, which survives exporter restarts when the exporter has a state file). Turns red at the stuck-MIXED threshold (%s).' % th.stuckMixed.after,
       [target('max by (%s) (time() - bitbucket_zdu_cluster_state_entered_timestamp_seconds%s)' % [C, sel()], '', true)], 6, 1, 4, 4,
       { unit: 's', thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }, { color: 'orange', value: secs(th.stuckMixed.after) / 2 }, { color: 'red', value: secs(th.stuckMixed.after) }] } }),
  stat('Upgrade mode', 'Whether rolling-upgrade mode is enabled (upgradeModeEnabled). While on, nodes may rejoin on a new version.',
       [target('max by (%s) (bitbucket_zdu_upgrade_mode_enabled%s)' % [C, sel()], '', true)], 10, 1, 3, 4,
       { mappings: [{ type: 'value', options: { '0': { text: 'OFF', color: 'green', index: 0 }, '1': { text: 'ON', color: 'blue', index: 1 } } }] }),
  stat('Nodes upgraded', 'Live nodes already running a version other than the original one, out of all nodes that took part when the upgrade started (node entries minus ghost entries).',
       [
         target('max by (%s) (bitbucket_zdu_nodes_upgraded%s)' % [C, sel()], 'upgraded', true, refId='A'),
         target('max by (%s) (sum without (state) (bitbucket_zdu_nodes%s) - bitbucket_zdu_ghost_nodes%s)' % [C, sel(), sel()], 'of nodes', true, refId='B'),
       ], 13, 1, 4, 4, { color: { mode: 'fixed', fixedColor: 'blue' } }, 'value_and_name'),
  stat('Original version', 'The version the cluster ran when upgrade mode was enabled (originalVersion). Empty while upgrade mode is off.',
       [target('max by (%s, version) (bitbucket_zdu_original_version_info%s)' % [C, sel()], '{{version}}', true)], 17, 1, 3, 4,
       { noValue: 'upgrade mode off', color: { mode: 'fixed', fixedColor: 'text' } }, 'name'),
  stat('Distinct versions', 'Number of different Bitbucket versions among live (non-OFFLINE) nodes. More than 1 is expected only during an upgrade.',
       [target('max by (%s) (bitbucket_zdu_distinct_versions%s)' % [C, sel()], '', true)], 20, 1, 2, 4,
       { thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }, { color: 'orange', value: 2 }] } }),
  stat('Ghost entries', 'OFFLINE node entries whose name is used by a live node (a pod that came back with a new IP). Normal on Kubernetes during an upgrade; they disappear after approve or cancel and never alert.',
       [target('max by (%s) (bitbucket_zdu_ghost_nodes%s)' % [C, sel()], '', true)], 22, 1, 2, 4,
       { color: { mode: 'fixed', fixedColor: 'text' } }),
  stat('Nodes by state', 'Node entries per state, ghosts included (bitbucket_zdu_nodes).',
       [target('max by (state) (bitbucket_zdu_nodes%s)' % sel(), '{{state}}', true)], 0, 5, 12, 4,
       { color: { mode: 'fixed', fixedColor: 'blue' } }, 'value_and_name'),
  panel('table', 'Firing ZDU alerts', 'Alerts of this rule set currently firing for the selected cluster (Prometheus ALERTS series). Runbooks: docs/runbooks.md.',
        [target('max by (alertname, severity, node_name, reason) (ALERTS{alertname=~"BitbucketZdu.*", alertstate="firing", job=~"$job", cluster=~"$cluster", instance=~"$instance|"})', '', true, 'table')],
        12, 5, 12, 4, {}, { showHeader: true, footer: { show: false } },
        { transformations: [{ id: 'organize', options: { excludeByName: { Time: true, Value: true } } }] }),

  row('Cluster and nodes over time', 9),
  timeline('Cluster state over time', 'The cluster ZDU state over the selected range. Red = UPGRADE_TASKS_FAILED, orange = MIXED.',
           [target(clusterStateExpr, 'cluster state')], 0, 10, 24, 4, mappings(clusterStates, clusterColors)),
  timeline('Node state over time', 'State of every node over time, ghost entries hidden. ACTIVE green, STARTING blue, DRAINING yellow, TERMINATING orange, OFFLINE grey, ERROR red.',
           [target(nodeStateExpr, '{{node_name}}')], 0, 14, 24, 7, mappings(nodeStates, nodeColors)),
  timeline('Version per node', 'Bitbucket version each node runs (bitbucket_zdu_node_info; OFFLINE and ghost entries report no version).',
           [target('max by (%s, node_name, version) (bitbucket_zdu_node_info%s)' % [C, sel('version!=""')], '{{node_name}} {{version}}')], 0, 21, 24, 6,
           [{ type: 'value', options: { '1': { text: 'running', color: 'green', index: 0 } } }]),
  timeseries('Active users per node', 'activeUserCount per node: the drain signal. Before stopping a node wait until it reaches 0. Null (no line) while OFFLINE.',
             [target('max by (%s, node_name) (bitbucket_zdu_node_active_users%s)' % [C, sel()], '{{node_name}}')], 0, 27, 12, 8),
  timeseries('Active tasks per node', 'tasksTotal per node: the other drain signal (git operations, background tasks). Wait for 0 before stopping a node.',
             [target('max by (%s, node_name) (bitbucket_zdu_node_active_tasks%s)' % [C, sel()], '{{node_name}}')], 12, 27, 12, 8),

  row('Nodes now', 35),
  panel('table', 'Node table', 'Every node entry now: state, version, build, active tasks and users, time in current state, and whether it is a ghost (an OFFLINE entry replaced by a live node of the same name). Sort by "time in state" to find the node that is stuck.',
        [
          target('max by (node_name, node_id, state) (bitbucket_zdu_node_state%s == 1)' % sel(), '', true, 'table', 'A'),
          target('max by (node_name, node_id, version, build_number, address) (bitbucket_zdu_node_info%s)' % sel(), '', true, 'table', 'B'),
          target('max by (node_name, node_id) (bitbucket_zdu_node_active_tasks%s)' % sel(), '', true, 'table', 'C'),
          target('max by (node_name, node_id) (bitbucket_zdu_node_active_users%s)' % sel(), '', true, 'table', 'D'),
          target('max by (node_name, node_id) (time() - bitbucket_zdu_node_state_entered_timestamp_seconds%s)' % sel(), '', true, 'table', 'E'),
          target('max by (node_name, node_id) (bitbucket_zdu_node_ghost%s)' % sel(), '', true, 'table', 'F'),
        ], 0, 36, 24, 8,
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
            indexByName: { node_name: 0, state: 1, version: 2, build_number: 3, 'Value #C': 4, 'Value #D': 5, 'Value #E': 6, 'Value #F': 7, node_id: 8, address: 9 },
          } },
        ] }),

  row('Exporter health', 44),
  timeline('Exporter scrapes', 'Prometheus scrape of each exporter (up). Red = Prometheus cannot scrape that exporter (BitbucketZduExporterDown). A sidecar disappears and reappears with a new instance when its pod is replaced.',
           [target('up%s' % sel(), '{{instance}} {{pod}}')], 0, 45, 12, 6,
           [{ type: 'value', options: { '0': { text: 'down', color: 'red', index: 0 }, '1': { text: 'up', color: 'green', index: 1 } } }]),
  timeline('Bitbucket reachable from exporter', 'bitbucket_zdu_up per exporter: 1 when its last poll of /rest/zdu/cluster succeeded and is fresh. The sidecar of a node being upgraded is red while its node restarts; that is normal.',
           [target('bitbucket_zdu_up%s' % sel(), '{{instance}} {{pod}}')], 12, 45, 12, 6,
           [{ type: 'value', options: { '0': { text: 'failing', color: 'red', index: 0 }, '1': { text: 'ok', color: 'green', index: 1 } } }]),
  timeline('Last error reason', 'Why each failing exporter fails (bitbucket_zdu_last_error_info{reason}): timeout/connect/tls = network, unauthorized/forbidden = credentials or missing SYS_ADMIN, not_clustered, not_found = wrong URL/context path, not_json = SSO login page, stale = poll loop hung.',
           [target('max by (instance, pod, reason) (bitbucket_zdu_last_error_info%s)' % sel(), '{{instance}} {{reason}}')], 0, 51, 12, 6,
           [{ type: 'value', options: { '1': { text: 'failing', color: 'red', index: 0 } } }]),
  timeseries('Poll errors by reason', 'Failed polls per second by endpoint and reason (bitbucket_zdu_poll_errors_total).',
             [target('sum by (endpoint, reason) (rate(bitbucket_zdu_poll_errors_total%s[$__rate_interval]))' % sel(), '{{endpoint}} {{reason}}')], 12, 51, 12, 6, 'reqps'),
  timeseries('Polls per second', 'Polls per second per exporter and endpoint (bitbucket_zdu_polls_total). Flat zero = the poll loop stopped.',
             [target('sum by (instance, endpoint) (rate(bitbucket_zdu_polls_total%s[$__rate_interval]))' % sel(), '{{instance}} {{endpoint}}')], 0, 57, 8, 6, 'reqps'),
  timeseries('Poll duration', 'Duration of the last poll per exporter and endpoint (bitbucket_zdu_poll_duration_seconds). Bitbucket answering slowly shows here first.',
             [target('max by (instance, endpoint) (bitbucket_zdu_poll_duration_seconds%s)' % sel(), '{{instance}} {{endpoint}}')], 8, 57, 8, 6, 's'),
  timeseries('Data age', 'Seconds since the last successful poll per exporter and endpoint. Grows while Bitbucket is unreachable or the poll loop is hung.',
             [target('time() - max by (instance, endpoint) (bitbucket_zdu_last_poll_success_timestamp_seconds%s)' % sel(), '{{instance}} {{endpoint}}')], 16, 57, 8, 6, 's'),
  timeseries('Cluster state transitions', 'State transitions seen by the exporters (bitbucket_zdu_cluster_state_transitions_total), also drawn as annotations on every panel.',
             [target('max by (from, to) (increase(bitbucket_zdu_cluster_state_transitions_total%s[$__rate_interval]))' % sel(), '{{from}} -> {{to}}')], 0, 63, 8, 6),
  panel('table', 'Responding nodes', 'Which node answered each exporter\'s GET /rest/zdu/state, its version and the state it reported. A sidecar calling localhost always sees its own node.',
        [
          target('max by (instance, node_name, node_id, version) (bitbucket_zdu_responder_info%s)' % sel(), '', true, 'table', 'A'),
          target('max by (instance, state) (bitbucket_zdu_responder_state%s == 1)' % sel(), '', true, 'table', 'B'),
        ], 8, 63, 8, 6, {}, { showHeader: true, footer: { show: false } },
        { transformations: [{ id: 'merge', options: {} }, { id: 'organize', options: { excludeByName: { Time: true, 'Value #A': true, 'Value #B': true } } }] }),
  panel('table', 'Exporter versions', 'Build of every exporter (bitbucket_zdu_exporter_build_info).',
        [target('max by (instance, version, revision, rustc) (bitbucket_zdu_exporter_build_info%s)' % sel(), '', true, 'table')],
        16, 63, 8, 6, {}, { showHeader: true, footer: { show: false } },
        { transformations: [{ id: 'organize', options: { excludeByName: { Time: true, Value: true } } }] }),
  timeseries('Exporter CPU', 'CPU seconds per second used by each exporter process.',
             [target('rate(process_cpu_seconds_total%s[$__rate_interval])' % sel(), '{{instance}}')], 0, 69, 12, 6, 'percentunit'),
  timeseries('Exporter memory', 'Resident memory of each exporter process.',
             [target('process_resident_memory_bytes%s' % sel(), '{{instance}}')], 12, 69, 12, 6, 'bytes'),
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
  uid: 'bitbucket-zdu-overview',
  title: 'Bitbucket rolling upgrade (ZDU)',
  description: 'Keep this open during a Bitbucket Data Center rolling upgrade: cluster and node states, drain progress, versions, and the health of the bitbucket-zdu-exporter. Alerts and runbooks: docs/alerts-and-dashboards.md, docs/runbooks.md.',
  tags: ['bitbucket', 'zdu', 'rolling-upgrade'],
  id: null,
  editable: true,
  graphTooltip: 1,
  refresh: '30s',
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
        expr: 'max by (from, to) (increase(bitbucket_zdu_cluster_state_transitions_total%s[$__rate_interval])) > 0' % sel(),
        step: '30s',
        titleFormat: 'ZDU {{from}} -> {{to}}',
        textFormat: 'Cluster state changed from {{from}} to {{to}}',
        tagKeys: 'from,to',
        useValueForTime: false,
      },
      {
        name: 'ZDU alerts firing',
        datasource: ds,
        enable: true,
        iconColor: 'red',
        expr: 'max by (alertname, severity, node_name) (ALERTS{alertname=~"BitbucketZdu.*", alertstate="firing", job=~"$job", cluster=~"$cluster", instance=~"$instance|"})',
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
      queryVar('job', 'Job', 'label_values(bitbucket_zdu_up, job)', false, false),
      queryVar('cluster', 'Cluster', 'label_values(bitbucket_zdu_up{job=~"$job"}, cluster)', false, true),
      queryVar('instance', 'Exporter', 'label_values(bitbucket_zdu_up{job=~"$job", cluster=~"$cluster"}, instance)', true, true),
    ],
  },
  panels: [
    p { id: i + 1 }
    for i in std.range(0, std.length(panels) - 1)
    for p in [panels[i]]
  ],
}
