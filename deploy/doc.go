// Package deploy holds the files that run zautic-forwarder in production:
// Kubernetes manifests with their kustomizations (kubernetes/: the manifests
// in base/, applied as they are by kubernetes/ and with a PodMonitor by
// kubernetes/prometheus-operator/), a Grafana dashboard (grafana/) and
// Prometheus alerting rules (prometheus/). It has no code; its tests
// validate the files offline: every manifest decodes strictly into its
// Kubernetes API type, every kustomization lists every manifest beside it
// and renders, with the kustomize library kubectl apply -k uses, into
// resources that decode strictly too, and the dashboard and alerts name only
// metrics the forwarder exports.
package deploy
