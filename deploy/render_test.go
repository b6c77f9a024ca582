package deploy

import (
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// renderedKinds is what each kustomization under deploy/ must render to,
// by directory. A kustomization missing here, or listed here and gone, fails
// the test: a new one needs its expected kinds written down.
var renderedKinds = map[string][]string{
	"kubernetes":                     {"Deployment", "Secret", "Service"},
	"kubernetes/base":                {"Deployment", "Secret", "Service"},
	"kubernetes/prometheus-operator": {"Deployment", "PodMonitor", "Secret", "Service"},
}

// kustomizationDirs returns every directory under root that holds a file
// kustomize reads as a kustomization.
func kustomizationDirs(t *testing.T, root string) []string {
	t.Helper()
	names := konfig.RecognizedKustomizationFileNames()
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !slices.Contains(names, d.Name()) {
			return err
		}
		dirs = append(dirs, filepath.ToSlash(filepath.Dir(path)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return slices.Compact(dirs)
}

// render builds the kustomization in dir with the kustomize library that
// kubectl apply -k embeds, and decodes every resource it produces strictly.
func render(t *testing.T, dir string) []manifest {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []manifest
	for _, r := range resources.Resources() {
		raw, err := r.AsYAML()
		if err != nil {
			t.Fatalf("%s: %v", r.CurId(), err)
		}
		m, err := decodeObject(raw)
		if err != nil {
			t.Errorf("%s: %v", r.CurId(), err)
			continue
		}
		m.path = dir + ": " + r.CurId().String()
		out = append(out, m)
	}
	return out
}

// TestKustomizationsRender renders every kustomization under deploy/, as
// kubectl apply -k would, and requires each resource to decode strictly
// into its API type and each kustomization to produce the kinds it is for.
func TestKustomizationsRender(t *testing.T) {
	dirs := kustomizationDirs(t, ".")
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			want, ok := renderedKinds[dir]
			if !ok {
				t.Fatalf("a kustomization the test does not know: add it to renderedKinds")
			}
			var kinds []string
			for _, m := range render(t, dir) {
				kinds = append(kinds, m.kind)
			}
			sort.Strings(kinds)
			if !slices.Equal(kinds, want) {
				t.Errorf("rendered kinds: got %v, want %v", kinds, want)
			}
		})
	}
	for dir := range renderedKinds {
		if !slices.Contains(dirs, dir) {
			t.Errorf("renderedKinds names %s, which holds no kustomization", dir)
		}
	}
}
