package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	yamlv3 "go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/zautic/zautic-forwarder/forwarder"
)

const kubeDir = "kubernetes"

// kustomization is the part of kustomize's Kustomization these files use;
// strict decoding rejects anything else.
type kustomization struct {
	metav1.TypeMeta `json:",inline"`
	Resources       []string `json:"resources"`
	Images          []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
}

// podMonitor is the part of the Prometheus Operator's PodMonitor CRD these
// files use.
type podMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval,omitempty"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

// manifestTypes maps apiVersion and kind to the type a manifest must decode
// into without unknown fields.
var manifestTypes = map[string]func() any{
	"v1/Secret":                           func() any { return &corev1.Secret{} },
	"v1/Service":                          func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                  func() any { return &appsv1.Deployment{} },
	"monitoring.coreos.com/v1/PodMonitor": func() any { return &podMonitor{} },
	"kustomize.config.k8s.io/v1beta1/Kustomization": func() any { return &kustomization{} },
}

// manifest is one decoded file.
type manifest struct {
	path string
	kind string
	obj  any
}

// decodeManifest reads path, which must hold one document of a known kind,
// and decodes it strictly.
func decodeManifest(t *testing.T, path string) manifest {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?m)^---`).Match(raw) {
		t.Fatalf("%s: holds several documents; keep one object per file", path)
	}
	m, err := decodeObject(raw)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	m.path = path
	return m
}

// decodeObject decodes one document strictly into the type manifestTypes
// gives its apiVersion and kind.
func decodeObject(raw []byte) (manifest, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(raw, &tm); err != nil {
		return manifest{}, err
	}
	key := tm.APIVersion + "/" + tm.Kind
	newObj, ok := manifestTypes[key]
	if !ok {
		return manifest{}, fmt.Errorf("unknown apiVersion/kind %q", key)
	}
	obj := newObj()
	if err := decodeStrict(raw, obj); err != nil {
		return manifest{}, fmt.Errorf("strict decoding as %s: %w", key, err)
	}
	return manifest{kind: tm.Kind, obj: obj}, nil
}

// decodeStrict decodes a YAML document into obj with unknown and duplicate
// fields as errors. yaml.UnmarshalStrict goes through encoding/json, which
// matches field names regardless of case; the API server does not, so the
// document is decoded again the server's way, case-sensitively.
func decodeStrict(raw []byte, obj any) error {
	if err := yaml.UnmarshalStrict(raw, obj); err != nil {
		return err
	}
	js, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return err
	}
	strictErrs, err := kjson.UnmarshalStrict(js, obj)
	if err != nil {
		return err
	}
	if len(strictErrs) > 0 {
		return fmt.Errorf("%v", strictErrs)
	}
	return nil
}

// kubeManifests decodes every YAML file under deploy/kubernetes.
func kubeManifests(t *testing.T) []manifest {
	t.Helper()
	var out []manifest
	err := filepath.WalkDir(kubeDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !isYAML(path) {
			return err
		}
		out = append(out, decodeManifest(t, path))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func isYAML(path string) bool {
	return strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")
}

// only returns the single manifest of type T, failing otherwise.
func only[T any](t *testing.T, all []manifest) T {
	t.Helper()
	var found []T
	for _, m := range all {
		if v, ok := m.obj.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("manifests of type %T: got %d, want 1", zero, len(found))
	}
	return found[0]
}

// TestManifestsDecodeStrictly decodes every manifest into its API type with
// unknown fields as errors.
func TestManifestsDecodeStrictly(t *testing.T) {
	all := kubeManifests(t)
	var kinds []string
	for _, m := range all {
		kinds = append(kinds, m.kind)
	}
	sort.Strings(kinds)
	want := []string{"Deployment", "Kustomization", "Kustomization", "Kustomization", "PodMonitor", "Secret", "Service"}
	if !slices.Equal(kinds, want) {
		t.Errorf("manifest kinds: got %v, want %v", kinds, want)
	}
}

// TestStrictDecodingRejectsUnknownFields makes sure the validation above
// would catch a misspelt field.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		into any
	}{
		{"deployment", "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 2\n", &appsv1.Deployment{}},
		{"container field in the wrong case", "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: a\n      readinessprobe: {}\n", &corev1.Pod{}},
		{"duplicate field", "apiVersion: v1\nkind: Service\nspec:\n  type: ClusterIP\n  type: NodePort\n", &corev1.Service{}},
		{"pod monitor", "apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nspec:\n  podMetricEndpoints: []\n", &podMonitor{}},
		{"kustomization", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresource: [a.yaml]\n", &kustomization{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := decodeStrict([]byte(tt.doc), tt.into); err == nil {
				t.Errorf("decodeStrict accepted an unknown field:\n%s", tt.doc)
			}
		})
	}
}

// TestKustomizationsListEveryManifest requires each kustomization to list
// exactly the manifests in its directory, and its directory resources to be
// kustomizations themselves.
func TestKustomizationsListEveryManifest(t *testing.T) {
	for _, m := range kubeManifests(t) {
		k, ok := m.obj.(*kustomization)
		if !ok {
			continue
		}
		dir := filepath.Dir(m.path)
		t.Run(dir, func(t *testing.T) {
			var listed []string
			for _, r := range k.Resources {
				info, err := os.Stat(filepath.Join(dir, r))
				if err != nil {
					t.Errorf("resource %q: %v", r, err)
					continue
				}
				if info.IsDir() {
					if _, err := os.Stat(filepath.Join(dir, r, "kustomization.yaml")); err != nil {
						t.Errorf("directory resource %q has no kustomization.yaml", r)
					}
					continue
				}
				listed = append(listed, r)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var present []string
			for _, e := range entries {
				if !e.IsDir() && isYAML(e.Name()) && e.Name() != "kustomization.yaml" {
					present = append(present, e.Name())
				}
			}
			sort.Strings(listed)
			if !slices.Equal(listed, present) {
				t.Errorf("listed manifests: got %v, want every manifest in the directory %v", listed, present)
			}
		})
	}
}

// sidecar returns the forwarder container of the Deployment.
func sidecar(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.InitContainers {
		if c.Name == "zautic-forwarder" {
			return c
		}
	}
	t.Fatal("no init container named zautic-forwarder")
	return corev1.Container{}
}

func portNumber(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q", c.Name, name)
	return 0
}

// probePort resolves a probe's port, by name or number.
func probePort(t *testing.T, c corev1.Container, p *corev1.Probe) int32 {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Fatalf("container %s: probe missing or not httpGet", c.Name)
	}
	if p.HTTPGet.Port.Type == intstr.String {
		return portNumber(t, c, p.HTTPGet.Port.StrVal)
	}
	return p.HTTPGet.Port.IntVal
}

// TestDeploymentRunsANativeSidecar checks the sidecar: an init container
// that restarts always, probes on the webhook port, the default listen ports.
func TestDeploymentRunsANativeSidecar(t *testing.T) {
	d := only[*appsv1.Deployment](t, kubeManifests(t))
	c := sidecar(t, d)
	if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("sidecar restartPolicy: got %v, want Always (a native sidecar)", c.RestartPolicy)
	}
	if len(d.Spec.Template.Spec.Containers) == 0 {
		t.Error("no application container beside the sidecar")
	}
	if got := portNumber(t, c, "webhook"); got != 8080 {
		t.Errorf("webhook port: got %d, want 8080", got)
	}
	admin := portNumber(t, c, "admin")
	if admin != 9090 {
		t.Errorf("admin port: got %d, want 9090", admin)
	}
	probes := []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"liveness", c.LivenessProbe, "/healthz"},
		{"readiness", c.ReadinessProbe, "/readyz"},
		{"startup", c.StartupProbe, "/healthz"},
	}
	for _, p := range probes {
		// The webhook port: a flood of the admin port must not fail them.
		if got := probePort(t, c, p.probe); got != 8080 {
			t.Errorf("%s probe port: got %d, want the webhook port 8080", p.name, got)
		}
		if got := p.probe.HTTPGet.Path; got != p.path {
			t.Errorf("%s probe path: got %q, want %q", p.name, got, p.path)
		}
	}
}

// TestDeploymentIsLockedDown checks the pod and every container for the
// restricted security settings and for resource requests and limits.
func TestDeploymentIsLockedDown(t *testing.T) {
	d := only[*appsv1.Deployment](t, kubeManifests(t))
	pod := d.Spec.Template.Spec
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot: want true")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod securityContext.seccompProfile: want RuntimeDefault")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken: want false (the forwarder does not talk to the API server)")
	}
	for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		sc := c.SecurityContext
		checks := []struct {
			what string
			ok   bool
		}{
			{"securityContext", sc != nil},
			{"runAsNonRoot true", sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot},
			{"readOnlyRootFilesystem true", sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem},
			{"allowPrivilegeEscalation false", sc != nil && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation},
			{"capabilities drop ALL", sc != nil && sc.Capabilities != nil && slices.Contains(sc.Capabilities.Drop, "ALL")},
			{"no added capabilities", sc == nil || sc.Capabilities == nil || len(sc.Capabilities.Add) == 0},
			{"cpu request", !c.Resources.Requests.Cpu().IsZero()},
			{"memory request", !c.Resources.Requests.Memory().IsZero()},
			{"cpu limit", !c.Resources.Limits.Cpu().IsZero()},
			{"memory limit", !c.Resources.Limits.Memory().IsZero()},
		}
		for _, ch := range checks {
			if !ch.ok {
				t.Errorf("container %s: want %s", c.Name, ch.what)
			}
		}
	}
}

// TestSidecarConfiguration checks that every FORWARDER_* variable names a
// real configuration key, and that the two secret files the forwarder is
// pointed at are keys of the Secret, mounted as a directory (subPath mounts
// are never updated, which would defeat rotation).
func TestSidecarConfiguration(t *testing.T) {
	all := kubeManifests(t)
	d := only[*appsv1.Deployment](t, all)
	secret := only[*corev1.Secret](t, all)
	c := sidecar(t, d)

	keys := configEnvNames(t)
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if strings.HasPrefix(e.Name, "FORWARDER_") && !keys[e.Name] {
			t.Errorf("env %s names no configuration key", e.Name)
		}
	}
	if env["FORWARDER_NATS_URL"] == "" {
		t.Error("FORWARDER_NATS_URL is not set: the sidecar would start an embedded nats-server")
	}
	for _, name := range []string{"FORWARDER_WEBHOOK_SECRETS_FILE", "FORWARDER_NATS_CREDS_FILE"} {
		t.Run(name, func(t *testing.T) {
			assertMountedSecretKey(t, d, c, secret, env[name])
		})
	}
}

// assertMountedSecretKey fails unless path is <mountPath>/<key> of a
// directory mount of secret, with key present in it.
func assertMountedSecretKey(t *testing.T, d *appsv1.Deployment, c corev1.Container, secret *corev1.Secret, path string) {
	t.Helper()
	if path == "" {
		t.Fatal("not set")
	}
	for _, m := range c.VolumeMounts {
		key, ok := strings.CutPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		if m.SubPath != "" {
			t.Errorf("mount %s uses subPath %q: the kubelet never updates it", m.Name, m.SubPath)
		}
		vol := volumeNamed(d, m.Name)
		if vol == nil || vol.Secret == nil || vol.Secret.SecretName != secret.Name {
			t.Fatalf("mount %s is not the Secret %s", m.Name, secret.Name)
		}
		if _, ok := secret.StringData[key]; !ok {
			t.Errorf("Secret %s has no key %q", secret.Name, key)
		}
		return
	}
	t.Errorf("%s is under no volume mount of %s", path, c.Name)
}

func volumeNamed(d *appsv1.Deployment, name string) *corev1.Volume {
	for i, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return &d.Spec.Template.Spec.Volumes[i]
		}
	}
	return nil
}

// TestServiceAndScraping checks that the Service selects the pods and sends
// to the webhook port only, and that both scraping routes (annotations and
// the PodMonitor) point at the admin port's /metrics.
func TestServiceAndScraping(t *testing.T) {
	all := kubeManifests(t)
	d := only[*appsv1.Deployment](t, all)
	svc := only[*corev1.Service](t, all)
	pm := only[*podMonitor](t, all)
	c := sidecar(t, d)
	podLabels := d.Spec.Template.Labels

	for k, v := range svc.Spec.Selector {
		if podLabels[k] != v {
			t.Errorf("Service selector %s=%s does not match the pod labels %v", k, v, podLabels)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.IntValue() != int(portNumber(t, c, "webhook")) {
		t.Errorf("Service ports: got %+v, want the webhook port only", svc.Spec.Ports)
	}

	ann := d.Spec.Template.Annotations
	admin := fmt.Sprint(portNumber(t, c, "admin"))
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != admin || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations: got %v, want scrape true on port %s path /metrics", ann, admin)
	}

	for k, v := range pm.Spec.Selector.MatchLabels {
		if podLabels[k] != v {
			t.Errorf("PodMonitor selector %s=%s does not match the pod labels %v", k, v, podLabels)
		}
	}
	if len(pm.Spec.PodMetricsEndpoints) != 1 {
		t.Fatalf("PodMonitor endpoints: got %d, want 1", len(pm.Spec.PodMetricsEndpoints))
	}
	ep := pm.Spec.PodMetricsEndpoints[0]
	if portNumber(t, c, ep.Port) != portNumber(t, c, "admin") || ep.Path != "/metrics" {
		t.Errorf("PodMonitor endpoint: got port %q path %q, want the admin port and /metrics", ep.Port, ep.Path)
	}
}

// exportedFamilies starts the service, pointed at a NATS address where
// nothing listens (Start does not wait for NATS), gathers its registry and
// returns the family names with their types.
func exportedFamilies(t *testing.T) map[string]dto.MetricType {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := forwarder.DefaultConfig()
	cfg.HTTP.Addr, cfg.Admin.Addr, cfg.NATS.URL = "127.0.0.1:0", "", "nats://127.0.0.1:1"
	cfg.Webhook.Secret = "deploy-test"
	svc, err := forwarder.Start(context.Background(), cfg, zap.NewNop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = svc.Wait(ctx)
	}()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]dto.MetricType{}
	for _, f := range families {
		out[f.GetName()] = f.GetType()
	}
	return out
}

var metricName = regexp.MustCompile(`\b(?:zautic_forwarder|go|process)_[a-zA-Z0-9_]+`)

// assertExported fails for each metric named in exprs that the forwarder
// does not export; a histogram's _bucket, _sum and _count series count as
// exported.
func assertExported(t *testing.T, exprs []string) {
	t.Helper()
	families := exportedFamilies(t)
	for _, expr := range exprs {
		for _, name := range metricName.FindAllString(expr, -1) {
			if _, ok := families[name]; ok {
				continue
			}
			if !isHistogramSeries(families, name) {
				t.Errorf("%q names %s, which the forwarder does not export", expr, name)
			}
		}
	}
}

func isHistogramSeries(families map[string]dto.MetricType, name string) bool {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && families[base] == dto.MetricType_HISTOGRAM {
			return true
		}
	}
	return false
}

// TestMetricNameCheck makes sure the check above tells a real name from a
// made-up one.
func TestMetricNameCheck(t *testing.T) {
	families := exportedFamilies(t)
	tests := []struct {
		name string
		want bool
	}{
		{"zautic_forwarder_webhook_requests_total", true},
		{"zautic_forwarder_publish_duration_seconds_bucket", true},
		{"zautic_forwarder_publish_duration_seconds_count", true},
		{"zautic_forwarder_ready_bucket", false},
		{"zautic_forwarder_requests_total", false},
	}
	for _, tt := range tests {
		_, direct := families[tt.name]
		if got := direct || isHistogramSeries(families, tt.name); got != tt.want {
			t.Errorf("%s exported: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// collectExprs walks decoded JSON and returns every "expr" string.
func collectExprs(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if s, ok := child.(string); ok && k == "expr" {
				out = append(out, s)
				continue
			}
			out = append(out, collectExprs(child)...)
		}
	case []any:
		for _, child := range v {
			out = append(out, collectExprs(child)...)
		}
	}
	return out
}

// TestGrafanaDashboard checks that the dashboard is valid JSON, that every
// panel queries something, that the panels the runbook relies on exist, and
// that it names only exported metrics.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("grafana", "zautic-forwarder.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if dash.Title == "" || dash.UID == "" {
		t.Error("dashboard needs a title and a uid")
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(collectExprs(generic), "\n")
	required := []struct {
		what, pattern string
	}{
		{"rate by outcome", `by \(outcome\) \(rate\(zautic_forwarder_webhook_requests_total`},
		{"publish latency p50", `histogram_quantile\(0\.5, .*zautic_forwarder_publish_duration_seconds_bucket`},
		{"publish latency p99", `histogram_quantile\(0\.99, .*zautic_forwarder_publish_duration_seconds_bucket`},
		{"in-flight", `zautic_forwarder_in_flight_requests`},
		{"NATS connected", `zautic_forwarder_nats_connected`},
		{"quarantine kept", `by \(reason\) \(increase\(zautic_forwarder_quarantined_total`},
		{"quarantine dropped", `by \(cause\) \(increase\(zautic_forwarder_quarantine_dropped_total`},
		{"quarantine replayed", `by \(outcome, trigger\) \(increase\(zautic_forwarder_quarantine_replayed_total`},
		{"quarantine entries", `zautic_forwarder_quarantine_entries`},
		{"signatures by key id", `by \(key_id\) \(rate\(zautic_forwarder_signatures_verified_total`},
	}
	for _, r := range required {
		if !regexp.MustCompile(r.pattern).MatchString(all) {
			t.Errorf("no panel shows %s (no query matches %s)", r.what, r.pattern)
		}
	}
	assertExported(t, exprs)
}

// ruleFile is a Prometheus rule file, decoded strictly.
type ruleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []struct {
			Alert       string            `json:"alert,omitempty"`
			Record      string            `json:"record,omitempty"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

// TestPrometheusAlerts decodes the rules strictly, requires the alerts the
// runbook names, a severity and a summary on each, and only exported
// metrics in the expressions.
func TestPrometheusAlerts(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules ruleFile
	if err := decodeStrict(raw, &rules); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	byName := map[string]string{}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" {
				t.Errorf("group %s: rule %+v needs alert and expr", g.Name, r)
				continue
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s needs a severity label and a summary annotation", r.Alert)
			}
			byName[r.Alert] = r.Expr
			exprs = append(exprs, r.Expr)
		}
	}
	required := []struct {
		alert, mentions string
	}{
		{"ZauticForwarderNotReady", "zautic_forwarder_ready"},
		{"ZauticForwarderPublishFailures", `outcome="unavailable"`},
		{"ZauticForwarderRejectionSpike", `outcome="rejected"`},
		{"ZauticForwarderQuarantineNotEmpty", "zautic_forwarder_quarantine_entries"},
	}
	for _, r := range required {
		expr, ok := byName[r.alert]
		if !ok {
			t.Errorf("no alert %s", r.alert)
			continue
		}
		if !strings.Contains(expr, r.mentions) {
			t.Errorf("alert %s: expr %q does not use %s", r.alert, expr, r.mentions)
		}
	}
	assertExported(t, exprs)
}

// TestSidecarMemorySizing checks the sidecar's GOMEMLIMIT and memory limit
// against the README's sizing rule: GOMEMLIMIT at or above what the
// listeners' limits let the forwarder hold (forwarder's MemoryBound, with the
// manifest's own values of its keys), and the memory limit at least a
// quarter above GOMEMLIMIT, for what the Go runtime does not count.
func TestSidecarMemorySizing(t *testing.T) {
	c := sidecar(t, only[*appsv1.Deployment](t, kubeManifests(t)))
	full := forwarder.DefaultConfig()
	cfg := &full.HTTP
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	overrides := map[string]func(n int64){
		"FORWARDER_HTTP_MAX_BODY_MEMORY":  func(n int64) { cfg.MaxBodyMemory = n },
		"FORWARDER_HTTP_MAX_CONNECTIONS":  func(n int64) { cfg.MaxConnections = int(n) },
		"FORWARDER_HTTP_MAX_HEADER_BYTES": func(n int64) { cfg.MaxHeaderBytes = int(n) },
	}
	for name, set := range overrides {
		if v, ok := env[name]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("%s=%q: %v", name, v, err)
			}
			set(n)
		}
	}
	goMemLimit, err := parseGoMemLimit(env["GOMEMLIMIT"])
	if err != nil {
		t.Fatalf("GOMEMLIMIT: %v", err)
	}
	bound, limit := full.MemoryBound(), c.Resources.Limits.Memory().Value()
	if goMemLimit < bound {
		t.Errorf("GOMEMLIMIT: got %d MiB, want at least the memory bound %d MiB", goMemLimit>>20, bound>>20)
	}
	if limit*4 < goMemLimit*5 {
		t.Errorf("memory limit: got %d MiB, want at least GOMEMLIMIT %d MiB + 25%%", limit>>20, goMemLimit>>20)
	}
	t.Logf("memory bound %d MiB, GOMEMLIMIT %d MiB, memory limit %d MiB", bound>>20, goMemLimit>>20, limit>>20)
}

// parseGoMemLimit reads GOMEMLIMIT as the Go runtime does: a number of
// bytes with an optional B, KiB, MiB, GiB or TiB suffix.
func parseGoMemLimit(v string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	shift := uint(0)
	for _, u := range units {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, shift = n, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive size: %v", v, err)
	}
	return n << shift, nil
}

// configEnvNames are the FORWARDER_* variables of every configuration key:
// the yaml tags of forwarder.Config, upper-cased and joined by underscores.
func configEnvNames(t *testing.T) map[string]bool {
	t.Helper()
	raw, err := yamlv3.Marshal(forwarder.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := yamlv3.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			name := prefix + "_" + strings.ToUpper(k)
			if sub, ok := v.(map[string]any); ok {
				walk(name, sub)
				continue
			}
			names[name] = true
		}
	}
	walk("FORWARDER", tree)
	return names
}
