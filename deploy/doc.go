// Package deploy holds the files that run zautic-forwarder in production:
// Kubernetes manifests with a kustomization (kubernetes/), a Grafana
// dashboard (grafana/) and Prometheus alerting rules (prometheus/). It has
// no code; its tests validate the files offline: every manifest decodes
// strictly into its Kubernetes API type, every kustomization lists every
// manifest beside it, and the dashboard and alerts name only metrics the
// forwarder exports.
package deploy
