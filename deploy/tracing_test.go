package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// commentedEnv matches the commented-out env entries of a manifest: "# - name:"
// and the "#   value:" lines that follow.
var commentedEnv = regexp.MustCompile(`(?m)^(\s*)# (- name: .*|  value: .*)$`)

// TestDeploymentShowsTracingEnvironment checks that the deployment shows the
// OpenTelemetry variables commented out, that they are a valid env list once
// uncommented, and that tracing stays off as shipped.
func TestDeploymentShowsTracingEnvironment(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(kubeDir, "base", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, m := range commentedEnv.FindAllStringSubmatch(string(raw), -1) {
		// Drop trailing comments: the YAML of an uncommented line is what counts.
		line, _, _ := strings.Cut(m[2], " #")
		lines = append(lines, line)
	}
	var env []corev1.EnvVar
	if err := decodeStrict([]byte(strings.Join(lines, "\n")), &env); err != nil {
		t.Fatalf("the commented-out env entries do not decode as a container env list: %v\n%s", err, strings.Join(lines, "\n"))
	}
	var names []string
	for _, e := range env {
		names = append(names, e.Name)
	}
	for _, want := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_RESOURCE_ATTRIBUTES"} {
		if !slices.Contains(names, want) {
			t.Errorf("commented-out env: got %v, want %s among them", names, want)
		}
	}
	d := only[*appsv1.Deployment](t, kubeManifests(t))
	for _, e := range sidecar(t, d).Env {
		if strings.HasPrefix(e.Name, "OTEL_") {
			t.Errorf("env %s is set: tracing must stay off until an operator points it at a collector", e.Name)
		}
	}
}
