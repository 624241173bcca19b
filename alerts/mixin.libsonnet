// The bitbucket-zdu monitoring mixin (layout of node-mixin / kubernetes-mixin):
//   prometheusRules    recording rules (rules.libsonnet)
//   prometheusAlerts   alerting rules (alerts.libsonnet)
//   grafanaDashboards  { '<product>-zdu-overview.json': ... } (dashboards/overview.libsonnet)
// configured by _config (config.libsonnet), for every product of _config.products (default
// ['bitbucket']; confluence, jira): products.libsonnet derives each product's rules, alerts
// and dashboard from the one Bitbucket template. Install with jsonnet-bundler:
//   jb install github.com/bitbucket-zdu-exporter/bitbucket-zdu-exporter/alerts@main
// and use it as  (import 'alerts/mixin.libsonnet') + { _config+:: { ... } }.
local template =
  (import 'rules.libsonnet') +
  (import 'alerts.libsonnet') +
  (import 'dashboards/overview.libsonnet');
(import 'config.libsonnet') +
(import 'products.libsonnet')(template)
