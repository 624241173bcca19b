{
  grafanaDashboards+:: {
    'bitbucket-zdu-overview.json': (import 'overview-dashboard.libsonnet')($._config),
  },
}
