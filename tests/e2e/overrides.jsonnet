// The alert thresholds of the end-to-end runs (tests/e2e/run.sh and ha.sh), given to
// alerts/render.sh --config: alerts/examples/fast-thresholds.json, the selector of their scrape
// jobs (a kubernetes-pods job does not match the default job=~".*bitbucket-zdu.*"), and
// NodeError after 5s + 5s so that, as with the production thresholds (NodeError 2m + 2m against
// UpgradeStalled 20m + 2m), it fires before the stall alerts it inhibits.
std.mergePatch(import '../../alerts/examples/fast-thresholds.json', {
  selector: 'job=~"bitbucket-zdu|kubernetes-pods"',
  thresholds: { nodeError: { after: '5s', 'for': '5s' } },
})
