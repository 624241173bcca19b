// The bitbucket-zdu monitoring mixin (layout of node-mixin / kubernetes-mixin):
//   prometheusRules    recording rules (rules.libsonnet)
//   prometheusAlerts   alerting rules (alerts.libsonnet)
//   grafanaDashboards  { 'bitbucket-zdu-overview.json': ... } (dashboards/overview.libsonnet)
// configured by _config (config.libsonnet). Install with jsonnet-bundler:
//   jb install github.com/bitbucket-zdu-exporter/bitbucket-zdu-exporter/alerts@main
// and use it as  (import 'alerts/mixin.libsonnet') + { _config+:: { ... } }.
(import 'config.libsonnet') +
(import 'rules.libsonnet') +
(import 'alerts.libsonnet') +
(import 'dashboards/overview.libsonnet')
