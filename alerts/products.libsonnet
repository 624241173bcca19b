// The products layer: one template (the Bitbucket recording rules, alerts and dashboard of
// rules.libsonnet, alerts.libsonnet and dashboards/) rendered for every product listed in
// _config.products. Used by mixin.libsonnet as
//
//   (import 'config.libsonnet') + (import 'products.libsonnet')(template)
//
// For each product the template is instantiated with _config deep-merged with
// _config.productSettings[product] (selector, group names, dashboard, runbooks, thresholds of
// the product's own alerts), then derived from the Bitbucket output:
//   * metric names: bitbucket_zdu_* and bitbucket_zdu:* become <product>_zdu_* and
//     <product>_zdu:*; the exporter's own bitbucket_zdu_exporter_* never change;
//   * alert names and texts: "Bitbucket" becomes the product's name (BitbucketZduNodeLost ->
//     JiraZduNodeLost, BitbucketZduBitbucketUnreachable -> JiraZduJiraUnreachable), plus the
//     product's own text replacements (API paths, permissions) and annotation overrides;
//   * what the product lacks is dropped (PRODUCTS below: alerts on node states it never
//     reports, rules reading families it does not have, the drain-progress clause of the
//     stall alerts), and what only it has is added (Confluence finalization errors, Jira
//     node heartbeat);
//   * runbook_url: the product's runbook file when it has a section for the alert (calls or
//     meaning differ), else the Bitbucket section of docs/runbooks.md.
// Bitbucket itself is the template unchanged: with the default products ['bitbucket'] the
// output is exactly the template's.
// alerts/test.sh checks every derived rule and panel against docs/metrics.json (each metric
// must exist for the product) and every runbook_url anchor.
local lib = import 'lib.libsonnet';

// What each product is, lacks and adds. Suffixes are alert names without the product prefix
// (BitbucketZduNodeError -> NodeError).
local PRODUCTS = {
  bitbucket: {
    name: 'Bitbucket',
    prefix: 'bitbucket_zdu',
    dropAlerts: [],
    dropRecords: [],
    dropDrainProgress: false,
    lacksMetrics: [],
    texts: [],
    runbookSections: [],
    annotations(pc):: {},
    extraAlerts(pc):: [],
    extraRecords(pc):: [],
    extraInhibitRules: [],
    nodeStates: null,
    extraPanels(pc):: [],
    exprEdits(pc):: {},
  },
  confluence: {
    name: 'Confluence',
    prefix: 'confluence_zdu',
    // Confluence never reports DRAINING: no drain alert, no drain-progress clause.
    dropAlerts: ['NodeDrainingTooLong'],
    dropRecords: ['bitbucket_zdu:draining_node_work:max'],
    dropDrainProgress: true,
    lacksMetrics: [],
    texts: [
      ['retry (POST /rest/zdu/approve)', 'retry (POST /rest/zdu/retryUpgrade)'],
      ['retry (approve again)', 'retry (POST /rest/zdu/retryUpgrade)'],
      ['SYS_ADMIN', 'the System Administrator global permission'],
      ['Ready-to-paste calls: docs/runbooks.md', 'Ready-to-paste calls: docs/runbooks.md (the Bitbucket calls are the same) and docs/runbooks-confluence.md'],
      ['Alerts and runbooks: docs/alerts-and-dashboards.md, docs/runbooks.md', 'Alerts and runbooks: docs/alerts-and-dashboards.md, docs/runbooks-confluence.md, docs/runbooks.md'],
      [' and no draining node has lost users or tasks', ''],
      [', no draining node has lost users or tasks', ''],
    ],
    runbookSections: ['ConfluenceUnreachable', 'CredentialsRejected', 'NotClustered', 'UpgradeTasksFailed', 'UpgradeTasksRunningTooLong', 'UpgradeStuckMixed', 'NodeFinalizationFailed'],
    annotations(pc):: {
      CredentialsRejected: {
        description: '{{ if eq $labels.reason "forbidden" }}Confluence answers 403 Forbidden: the exporter user lacks the System Administrator global permission, or HTTP Basic authentication is disabled for the API ("Basic Authentication has been disabled on this instance"): configure a personal access token (Bearer) instead.{{ else }}Confluence answers 401 Unauthorized: the username/password or personal access token is wrong, expired or revoked.{{ end }} At least one exporter of ' + pc.clusterName + ' has been refused for more than ' + pc.thresholds.credentialsRejected['for'] + '.',
      },
      UpgradeTasksFailed: {
        description: 'Cluster ' + pc.clusterName + ' has been in UPGRADE_TASKS_FAILED for {{ $value | humanizeDuration }}: the finalization (upgrade) tasks run after approve failed, so the upgrade is not finalized. confluence_zdu_node_finalization_errors names the nodes whose last finalization run failed; the errors are in GET /rest/zdu/cluster (.nodes[].finalization.errors) and the Confluence logs. Fix the cause, then POST /rest/zdu/retryUpgrade (retries the finalization tasks). Do not restart an upgraded node before finalization succeeds (CONFSERVER-104200).',
      },
    },
    extraAlerts(pc):: [{
      alert: 'ConfluenceZduNodeFinalizationFailed',
      expr: |||
        max by (%(C)s, node_id, node_name) (last_over_time(confluence_zdu_node_finalization_errors%(sel)s[%(B)s])) > 0
        or
        max by (%(C)s, node_id, node_name) (last_over_time(confluence_zdu_node_state%(failed)s[%(B)s])) == 1
      ||| % { C: std.join(', ', pc.clusterLabels), B: pc.scrapeGapBridge, sel: '{' + pc.selector + '}', failed: '{' + lib.matchers([pc.selector, 'state="UPGRADE_TASKS_FAILED"']) + '}' },
      'for': pc.thresholds.nodeFinalizationFailed['for'],
      labels: { severity: pc.thresholds.nodeFinalizationFailed.severity },
      annotations: {
        summary: 'Finalization failed on node {{ $labels.node_name }} of ' + pc.clusterName,
        description: 'Node {{ $labels.node_name }} (id {{ $labels.node_id }}) of ' + pc.clusterName + ' reports {{ $value }} error(s) of its last finalization run (1 when only its state UPGRADE_TASKS_FAILED says so) for more than ' + pc.thresholds.nodeFinalizationFailed['for'] + '. Read .nodes[].finalization.errors of GET /rest/zdu/cluster, fix the cause, then POST /rest/zdu/retryUpgrade.',
      },
    }],
    // The cluster-level page names the cause; the per-node alert adds detail, not a page.
    extraInhibitRules: [{ source: 'ConfluenceZduUpgradeTasksFailed', target: 'ConfluenceZduNodeFinalizationFailed' }],
    // Found by alerts/verify.sh: a Confluence node is up while it runs or failed the
    // finalization tasks, and a null state (its call timed out, UNKNOWN) says nothing about it;
    // counting only ACTIVE made every node upgraded within 30 min of approve (ACTIVE ->
    // RUNNING_FINALIZE_UPGRADE_TASKS -> ACTIVE) and every node with two timeouts "crash-loop".
    //
    // Also found by alerts/verify.sh: Prometheus's own stall view (and the kept-while-no-change
    // clause) asks that no per-state node count moved within the window. A node whose call
    // timed out for one poll (null state: UNKNOWN for a minute, one ACTIVE fewer) moved the
    // counts, so after an exporter restart without state file a stuck MIXED warned 4 minutes
    // past its bound. Those clauses read the counts without UNKNOWN, each the most seen within
    // 2m: a one-poll dip is no change, while a real transition raises some state's count at
    // once (falls show 2m late).
    extraRecords(pc):: [{
      record: 'confluence_zdu:nodes_settled:max',
      expr: 'max by (%s, state) (max_over_time(confluence_zdu_nodes{%s}[2m]))' % [std.join(', ', pc.clusterLabels), lib.matchers([pc.selector, 'state!="UNKNOWN"'])],
    }],
    local settled(e) = std.strReplace(e, 'changes(confluence_zdu:nodes:max[', 'changes(confluence_zdu:nodes_settled:max['),
    exprEdits(pc):: {
      'confluence_zdu:node_name_active:max'(e): std.strReplace(e, 'state="ACTIVE"', 'state=~"ACTIVE|RUNNING_FINALIZE_UPGRADE_TASKS|UPGRADE_TASKS_FAILED|UNKNOWN"'),
      ConfluenceZduUpgradeStalled(e): settled(e),
      ConfluenceZduUpgradeStuckMixed(e): settled(e),
    },
    nodeStates: {
      states: ['ACTIVE', 'STARTING', 'RUNNING_FINALIZE_UPGRADE_TASKS', 'TERMINATING', 'OFFLINE', 'ERROR', 'UPGRADE_TASKS_FAILED'],
      colors: ['green', 'blue', 'yellow', 'orange', 'text', 'red', 'dark-red'],
      text: 'ACTIVE green, STARTING blue, RUNNING_FINALIZE_UPGRADE_TASKS yellow, TERMINATING orange, OFFLINE grey, ERROR red, UPGRADE_TASKS_FAILED dark red, no state (a node that did not answer in time) UNKNOWN.',
    },
    extraPanels(pc):: [
      {
        title: 'Finalization errors per node',
        description: "Errors of each node's last finalization run (Confluence: .nodes[].finalization.errors of GET /rest/zdu/cluster). Non-zero after a failed finalization: fix the cause, then POST /rest/zdu/retryUpgrade.",
        expr: 'max by (%s, node_name) (confluence_zdu_node_finalization_errors%s)',
        legend: '{{node_name}}',
      },
      {
        title: 'Finalization tasks pending',
        description: 'hasFinalizationTasks of GET /rest/zdu/cluster: 1 while the upgrade has finalization (upgrade) tasks to run.',
        expr: 'max by (%s) (confluence_zdu_has_finalization_tasks%s)',
        legend: '{{cluster}}',
      },
    ],
  },
  jira: {
    name: 'Jira',
    prefix: 'jira_zdu',
    // Jira's node states are ACTIVE, PASSIVE, ACTIVATING, PASSIVATING, OFFLINE; nodes have
    // no users or tasks.
    dropAlerts: ['NodeError', 'NodeStartingTooLong', 'NodeDrainingTooLong', 'NodeTerminatingTooLong'],
    dropRecords: ['bitbucket_zdu:draining_node_work:max'],
    dropDrainProgress: true,
    lacksMetrics: ['bitbucket_zdu_node_active_users', 'bitbucket_zdu_node_active_tasks', 'bitbucket_zdu_responder_info', 'bitbucket_zdu_responder_state'],
    texts: [
      ['retry (POST /rest/zdu/approve)', 'retry (POST /rest/zdu/retryUpgrade)'],
      ['retry (approve again)', 'retry (POST /rest/zdu/retryUpgrade)'],
      ['GET /rest/zdu/cluster', 'GET /rest/api/2/cluster/zdu/state'],
      ['/rest/zdu/cluster', '/rest/api/2/cluster/zdu/state and /rest/api/2/cluster/nodes'],
      ['GET /rest/zdu/nodes/{id}', 'GET /rest/api/2/cluster/nodes'],
      ['/rest/zdu/', '/rest/api/2/cluster/zdu/'],
      ['SYS_ADMIN', 'Jira administrator permission'],
      ['Ready-to-paste calls: docs/runbooks.md', 'Ready-to-paste calls: docs/runbooks-jira.md'],
      ['Alerts and runbooks: docs/alerts-and-dashboards.md, docs/runbooks.md', 'Alerts and runbooks: docs/alerts-and-dashboards.md, docs/runbooks-jira.md'],
      ['version, build, active tasks and users, time in current state', 'version, build, time in current state'],
      [', drain progress, versions,', ', versions,'],
      [' and no draining node has lost users or tasks', ''],
      [', no draining node has lost users or tasks', ''],
      [' (upgradeModeEnabled)', ' (Jira: a cluster state other than STABLE)'],
      [' (originalVersion)', ' (Jira: the cluster build version while in upgrade mode)'],
      [' A node in ERROR also holds the cluster in MIXED (BitbucketZduNodeError then pages instead of this alert).', ' A node ACTIVE without heartbeat also holds the cluster in MIXED (BitbucketZduNodeNoHeartbeat then pages instead of this alert, with the shipped inhibit rules).'],
    ],
    runbookSections: ['JiraUnreachable', 'CredentialsRejected', 'NotClustered', 'UpgradeStuckMixed', 'UpgradeStalled', 'UpgradeTasksFailed', 'UpgradeTasksRunningTooLong', 'AwaitingApproval', 'VersionSkew', 'NodeLost', 'NodeCrashLooping', 'NodeMissing', 'NodeNoHeartbeat'],
    annotations(pc):: {
      CredentialsRejected: {
        description: '{{ if eq $labels.reason "forbidden" }}Jira answers 403 Forbidden: HTTP Basic authentication is disabled for the API ("Basic Authentication has been disabled on this instance"; Jira 11 ships with it off): configure a personal access token (Bearer) of a Jira administrator instead.{{ else }}Jira answers 401 Unauthorized: the user is not a Jira administrator, or the username/password or personal access token is wrong, expired or revoked.{{ end }} At least one exporter of ' + pc.clusterName + ' has been refused for more than ' + pc.thresholds.credentialsRejected['for'] + '.',
      },
      NotClustered: {
        summary: 'The Jira behind ' + pc.clusterName + ' is not Jira Data Center',
        description: 'For more than ' + pc.thresholds.notClustered['for'] + ' Jira has answered GET /rest/api/2/cluster/nodes of the exporter of ' + pc.clusterName + ' with 405 ("you don\'t have Jira Data Center"): rolling upgrades are impossible on this instance.',
      },
      UpgradeTasksFailed: {
        description: 'Cluster ' + pc.clusterName + ' has been in UPGRADE_TASKS_FAILED for {{ $value | humanizeDuration }}: the delayed upgrade tasks run after approve failed, so the upgrade is not finalized. Find the cause in the Jira logs (atlassian-jira.log of the node that ran them), fix it, then POST /rest/api/2/cluster/zdu/retryUpgrade (409 "no failed upgrade to retry" in any other state).',
      },
    },
    extraRecords(pc):: [],
    extraAlerts(pc):: [{
      alert: 'JiraZduNodeNoHeartbeat',
      // The second clause is the hold of every per-node alert (found by alerts/verify.sh: a
      // 2-minute Jira outage cleared it mid-fault): nothing known is not resolved. The raw
      // series are read through scrapeGapBridge (also found by alerts/verify.sh: a node dead
      // for 107 min behind a scrape failing every 4th minute never reached its 10m `for:`).
      // For the same reason the hold asks for no state within that window, not at this
      // instant: with keep_firing_for, a hold taken at every failed scrape kept the alert
      // firing for 100 min after the heartbeat came back (verify.sh --seed 2 --only 132).
      expr: |||
        max by (%(C)s, node_id, node_name) (
          (last_over_time(jira_zdu_node_alive%(sel)s[%(B)s]) == 0)
          and ignoring (state)
          (last_over_time(jira_zdu_node_state%(active)s[%(B)s]) == 1)
        )
        or
        (
          max by (%(C)s, node_id, node_name) (ALERTS{alertname="JiraZduNodeNoHeartbeat"})
          unless on (%(C)s)
            max by (%(C)s) (max_over_time(jira_zdu:cluster_state:max[%(B)s]))
        )
      ||| % { C: std.join(', ', pc.clusterLabels), B: pc.scrapeGapBridge, sel: '{' + pc.selector + '}', active: '{' + lib.matchers([pc.selector, 'state="ACTIVE"']) + '}' },
      'for': pc.thresholds.nodeNoHeartbeat['for'],
      // Found by alerts/verify.sh: a heartbeat coming back is no node state change, so the
      // stall alerts it inhibits resolve a minute after it; kept firing that long, the
      // root cause still inhibits them and one cause stays one page.
      keep_firing_for: pc.thresholds.nodeNoHeartbeat.keepFiringFor,
      labels: { severity: pc.thresholds.nodeNoHeartbeat.severity },
      annotations: {
        summary: 'Node {{ $labels.node_name }} of ' + pc.clusterName + ' is ACTIVE without heartbeat',
        description: 'Node {{ $labels.node_name }} (id {{ $labels.node_id }}) of ' + pc.clusterName + " has been ACTIVE with alive=false (Jira's NO HEARTBEAT) for more than " + pc.thresholds.nodeNoHeartbeat['for'] + ': the node is dead or cut off, but Jira keeps it ACTIVE for up to two days, so it is not "lost" and an upgrade still waits for it. Restart the node, or mark it offline (PUT /rest/api/2/cluster/node/{nodeId}/offline) if it is gone for good.',
      },
    }],
    // A node without heartbeat holds the upgrade (Jira still counts it): one page for it.
    extraInhibitRules: [{ source: 'JiraZduNodeNoHeartbeat', target: 'JiraZduUpgradeStuckMixed|JiraZduUpgradeStalled|JiraZduNodeMissing|JiraZduNodeLost' }],
    // Found by alerts/verify.sh. A Jira node is up when ACTIVE and alive: a node stopping
    // reads ACTIVE with alive=false between PASSIVATING and OFFLINE, so counting ACTIVE alone
    // made every healthy node upgrade "enter or leave ACTIVE" 4 times (a crash-loop page). And
    // OFFLINE entries linger for up to two days under names no live node has: a name is lost
    // only if it was up (ACTIVE and alive) in the last 6h, as Prometheus saw it.
    exprEdits(pc):: {
      'jira_zdu:node_name_active:max'(e): std.strReplace(e, 'state="ACTIVE"})', 'state="ACTIVE"} * ignoring (state) jira_zdu_node_alive{%s})' % pc.selector),
      JiraZduNodeLost(e): '(\n' + e + ')\nand on (%s, node_name)\n  (max_over_time(jira_zdu:node_name_active:max[6h]) == 1)\n' % std.join(', ', pc.clusterLabels),
    },
    nodeStates: {
      states: ['ACTIVE', 'ACTIVATING', 'PASSIVATING', 'PASSIVE', 'OFFLINE'],
      colors: ['green', 'blue', 'yellow', 'orange', 'text'],
      text: 'ACTIVE green, ACTIVATING blue, PASSIVATING yellow, PASSIVE orange, OFFLINE grey (an ACTIVE node without heartbeat stays green here: see "Node heartbeat").',
    },
    extraPanels(pc):: [{
      title: 'Node heartbeat',
      description: 'alive of GET /rest/api/2/cluster/nodes per node: 0 = no heartbeat. An ACTIVE node at 0 is dead or cut off (JiraZduNodeNoHeartbeat); Jira moves it to OFFLINE only after two days.',
      expr: 'max by (%s, node_name) (jira_zdu_node_alive%s)',
      legend: '{{node_name}}',
    }],
  },
};

// "foo" with every `from` of `pairs` replaced by its `to`, in order.
local replaceAll(s, pairs) = std.foldl(function(acc, p) std.strReplace(acc, p[0], p[1]), pairs, s);
local startsWith(s, p) = std.length(s) >= std.length(p) && std.substr(s, 0, std.length(p)) == p;
local endsWith(s, p) = std.length(s) >= std.length(p) && std.substr(s, std.length(s) - std.length(p), std.length(p)) == p;

// Metric names of `prod`: the exporter's own bitbucket_zdu_exporter_* are kept.
local metricNames(s, prod) =
  local keep = '\u0001EXPORTER\u0001';
  replaceAll(s, [
    ['bitbucket_zdu_exporter_', keep],
    ['bitbucket_zdu_', prod.prefix + '_'],
    ['bitbucket_zdu:', prod.prefix + ':'],
    [keep, 'bitbucket_zdu_exporter_'],
  ]);
// Alert names (BitbucketZdu... -> ConfluenceZdu..., BitbucketUnreachable -> ConfluenceUnreachable).
local names(s, prod) = std.strReplace(s, 'Bitbucket', prod.name);
// Text shown to people: metric and product names, then the product's own replacements.
local text(s, prod) = names(metricNames(replaceAll(s, prod.texts), prod), prod);

// `expr` without the clause `unless on (<C>) <clause>` (whitespace between them free); every
// occurrence. Fails loudly if `unless on (<C>)` does not precede the clause. (strReplace and
// split on one character: jsonnet 0.18's std.findSubstr takes seconds on a long expression.)
local removeUnless(expr, C, clause) =
  local parts = std.split(std.strReplace(expr, clause, '\u0002'), '\u0002');
  local head = 'unless on (%s)' % C;
  local cut(s) =
    local before = std.rstripChars(s, ' \n');
    assert endsWith(before, head) : 'products.libsonnet: expected "%s" before %s' % [head, clause];
    std.rstripChars(std.substr(before, 0, std.length(before) - std.length(head)), ' \n');
  std.join('', [cut(parts[i]) for i in std.range(0, std.length(parts) - 2)] + [parts[std.length(parts) - 1]]);

local suffix(alertName) = std.substr(alertName, std.length('BitbucketZdu'), std.length(alertName));

function(template) {
  _config+:: {
    // The products whose rules, alerts and dashboard are rendered, each from the one template
    // (bitbucket, confluence, jira). Groups come in this order.
    products: ['bitbucket'],
    // Per product: deep-merged over the rest of _config for that product's rules (lists
    // replace). Give every product its own scrape job (or selector): `up` of the selector is
    // what the exporter-health alerts read. runbookUrl is the product's runbook file (used for
    // the alerts it has a section for; the others link to the Bitbucket section).
    productSettings: {
      bitbucket: {},
      confluence: {
        selector: 'job=~".*confluence-zdu.*"',
        recordingGroupName: 'confluence-zdu.rules',
        alertGroupName: 'confluence-zdu',
        runbookUrl: 'https://github.com/bitbucket-zdu-exporter/bitbucket-zdu-exporter/blob/main/docs/runbooks-confluence.md',
        thresholds: {
          // A node whose last finalization run reported errors (or UPGRADE_TASKS_FAILED).
          nodeFinalizationFailed: { 'for': '2m', severity: 'warning' },
          // Confluence shows no drain: a node reads ACTIVE until it stops and null (no news)
          // while stopping, so the first change after a pause is its OFFLINE. The MIXED stall
          // clock allows a 15-minute pause plus a stop (found by alerts/verify.sh: 20m warned
          // on healthy upgrades).
          upgradeStalled: { noProgress: '30m' },
        },
        dashboard: { uid: 'confluence-zdu-overview', title: 'Confluence rolling upgrade (ZDU)' },
      },
      jira: {
        selector: 'job=~".*jira-zdu.*"',
        recordingGroupName: 'jira-zdu.rules',
        alertGroupName: 'jira-zdu',
        runbookUrl: 'https://github.com/bitbucket-zdu-exporter/bitbucket-zdu-exporter/blob/main/docs/runbooks-jira.md',
        thresholds: {
          // An ACTIVE node with alive=false (Jira shows NO HEARTBEAT after 5 min of silence).
          nodeNoHeartbeat: { 'for': '10m', keepFiringFor: '3m', severity: 'critical' },
        },
        dashboard: { uid: 'jira-zdu-overview', title: 'Jira rolling upgrade (ZDU)' },
      },
    },
  },

  local cfg = self._config,
  local product(p) =
    assert std.objectHas(PRODUCTS, p) : '_config.products: unknown product "%s" (bitbucket, confluence, jira)' % p;
    PRODUCTS[p],
  local settings(p) = if std.objectHas(cfg.productSettings, p) then cfg.productSettings[p] else {},
  // The product's _config, and the template instantiated with it.
  local pconfig(p) =
    local states = product(p).nodeStates;
    lib.merge(cfg, settings(p)) + (if states == null then {} else { dashboardNodeStates: states }),
  local instance(p) = template { _config:: pconfig(p) },

  local C(pc) = std.join(', ', pc.clusterLabels),
  local drainFalling(pc) = '(max_over_time(bitbucket_zdu:draining_node_work:max[%s]) > bitbucket_zdu:draining_node_work:max)' % pc.drainProgressWindow,

  local deriveExpr(expr, prod, pc) =
    local e = if prod.dropDrainProgress then removeUnless(expr, C(pc), drainFalling(pc)) else expr;
    names(metricNames(e, prod), prod),
  // The product's own edit of the derived expression of rule `name` (exprEdits), if any;
  // an edit that changes nothing fails the rendering.
  local edit(name, expr, prod, pc) =
    local edits = prod.exprEdits(pc);
    if !std.objectHas(edits, name) then expr
    else
      local out = edits[name](expr);
      assert out != expr : 'products.libsonnet: exprEdits of %s changed nothing' % name;
      out,

  local deriveRule(r, prod, pc, base) =
    if std.objectHas(r, 'record') then
      local record = metricNames(r.record, prod);
      r { record: record, expr: edit(record, deriveExpr(r.expr, prod, pc), prod, pc) }
    else
      local name = names(r.alert, prod);
      local sfx = names(suffix(r.alert), prod);
      local own = prod.annotations(pc);
      local over = if std.objectHas(own, sfx) then own[sfx] else {};
      r {
        alert: name,
        expr: edit(name, deriveExpr(r.expr, prod, pc), prod, pc),
        annotations: {
          summary: if std.objectHas(over, 'summary') then over.summary else text(r.annotations.summary, prod),
          description: if std.objectHas(over, 'description') then over.description else text(r.annotations.description, prod),
          runbook_url: if std.member(prod.runbookSections, sfx) then pc.runbookUrl + '#' + std.asciiLower(name)
          else base.runbookUrl + '#' + std.asciiLower(r.alert),
        },
      },

  local keep(r, prod) =
    if std.objectHas(r, 'record') then !std.member(prod.dropRecords, r.record)
    else !std.member(prod.dropAlerts, suffix(r.alert)),

  local deriveGroups(groups, prod, pc) = [
    g { rules: [deriveRule(r, prod, pc, cfg) for r in g.rules if keep(r, prod)] }
    for g in groups
  ],

  local ruleGroups(p) =
    if p == 'bitbucket' then instance(p).prometheusRules.groups
    else
      local gs = deriveGroups(instance(p).prometheusRules.groups, product(p), pconfig(p));
      [gs[0] { rules+: product(p).extraRecords(pconfig(p)) }] + gs[1:],
  local alertGroups(p) =
    if p == 'bitbucket' then instance(p).prometheusAlerts.groups
    else
      local prod = product(p);
      local pc = pconfig(p);
      local gs = deriveGroups(instance(p).prometheusAlerts.groups, prod, pc);
      [gs[0] { rules+: [
        a { annotations+: { runbook_url: pc.runbookUrl + '#' + std.asciiLower(a.alert) } }
        for a in prod.extraAlerts(pc)
      ] }] + gs[1:],

  prometheusRules:: { groups: std.flatMap(ruleGroups, cfg.products) },
  prometheusAlerts:: { groups: std.flatMap(alertGroups, cfg.products) },

  // Alertmanager inhibit rules of every product ({source, target} regexes of alert names):
  // each product's are the Bitbucket ones renamed (alternatives the product lacks dropped)
  // plus its own.
  local alertNames(p) = [r.alert for g in alertGroups(p) for r in g.rules if std.objectHas(r, 'alert')],
  local onlyExisting(re, existing) = std.join('|', [a for a in std.split(re, '|') if std.member(existing, a)]),
  local inhibitRules(p) =
    if p == 'bitbucket' then cfg.inhibitRules
    else
      local prod = product(p);
      local existing = alertNames(p);
      [
        r
        for r in [
          { source: onlyExisting(names(x.source, prod), existing), target: onlyExisting(names(x.target, prod), existing) }
          for x in cfg.inhibitRules
        ] + prod.extraInhibitRules
        if r.source != '' && r.target != ''
      ],
  alertmanagerInhibitRules:: std.flatMap(inhibitRules, cfg.products),

  // One dashboard per product, '<uid>.json'.
  local dashboard(p) =
    local pc = pconfig(p);
    local prod = product(p);
    local raw = instance(p).grafanaDashboards['bitbucket-zdu-overview.json'];
    if p == 'bitbucket' then raw else deriveDashboard(raw, prod, pc),
  grafanaDashboards:: {
    [pconfig(p).dashboard.uid + '.json']: dashboard(p)
    for p in cfg.products
  },

  // The template's dashboard for another product: texts and metric names derived, targets
  // reading a family the product lacks dropped (and panels left without target), node states
  // of the product, the product's own panels appended, panel ids renumbered.
  local lacks(expr, prod) = std.length([m for m in prod.lacksMetrics if std.strReplace(expr, m, '') != expr]) > 0,
  local walk(v, prod) =
    if std.isString(v) then text(v, prod)
    else if std.isArray(v) then [walk(x, prod) for x in v]
    else if std.isObject(v) then { [k]: walk(v[k], prod) for k in std.objectFields(v) }
    else v,
  local deriveDashboard(raw, prod, pc) =
    local Cl = C(pc);
    local sel = '{job=~"$job", cluster=~"$cluster", instance=~"$instance"}';
    local targets(p) = [t for t in p.targets if !lacks(t.expr, prod)];
    local kept = [
      if p.type == 'row' then p else p { targets: targets(p) }
      for p in raw.panels
      if p.type == 'row' || std.length(targets(p)) > 0
    ];
    local lastY = std.foldl(function(acc, p) std.max(acc, p.gridPos.y + p.gridPos.h), raw.panels, 0);
    local extra = [
      {
        type: 'timeseries',
        title: x.title,
        description: x.description,
        datasource: { type: 'prometheus', uid: '${datasource}' },
        targets: [{ datasource: { type: 'prometheus', uid: '${datasource}' }, expr: x.expr % [Cl, sel], legendFormat: x.legend, instant: false, range: true, format: 'time_series', refId: 'A' }],
        gridPos: { x: 12 * (i % 2), y: lastY + 1 + 6 * std.floor(i / 2), w: 12, h: 6 },
        fieldConfig: { defaults: { unit: 'short', custom: { lineWidth: 1, fillOpacity: 10, showPoints: 'never' } }, overrides: [] },
        options: { legend: { displayMode: 'table', placement: 'right', calcs: ['lastNotNull', 'max'] }, tooltip: { mode: 'multi', sort: 'desc' } },
      }
      for xs in [prod.extraPanels(pc)]
      for i in std.range(0, std.length(xs) - 1)
      for x in [xs[i]]
    ];
    local extraRows = if std.length(extra) == 0 then [] else [{ type: 'row', title: prod.name + ' only', collapsed: false, gridPos: { x: 0, y: lastY, w: 24, h: 1 }, panels: [] }];
    local panels = [walk(p, prod) for p in kept] + extraRows + extra;
    walk(raw, prod) {
      tags: [std.asciiLower(prod.name), 'zdu', 'rolling-upgrade'],
      panels: [
        panels[i] { id: i + 1 }
        for i in std.range(0, std.length(panels) - 1)
      ],
    },
}
