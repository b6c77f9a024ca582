package test

import (
	"bytes"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// serviceLibraries are the modules only the service may pull in.
var serviceLibraries = []string{
	"github.com/labstack/echo",
	"github.com/nats-io/",
	"github.com/spf13/viper",
	"go.uber.org/zap",
	"github.com/prometheus/",
	"github.com/zautic/zautic-forwarder/forwarder",
}

// TestProtocolPackagesStayLight keeps the dependency arrows pointing one way:
// zautic is standard library only, and the simulator, which plays Zautic,
// imports the protocol but none of the service's libraries.
func TestProtocolPackagesStayLight(t *testing.T) {
	tests := []struct {
		pkg       string
		allowOnly string // every non-standard dependency must start with this
	}{
		{pkg: "./zautic", allowOnly: "github.com/zautic/zautic-forwarder/zautic"},
		{pkg: "./simulator", allowOnly: "github.com/zautic/zautic-forwarder/"},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			for _, dep := range nonStandardDeps(t, tt.pkg) {
				if !strings.HasPrefix(dep, tt.allowOnly) || isServiceLibrary(dep) {
					t.Errorf("%s depends on %s", tt.pkg, dep)
				}
			}
		})
	}
}

// TestToolCommandsImportOnlyTheProtocol checks the files of the sign and send
// commands: they share package main with the service, so their imports are
// what keeps them from reaching into it.
func TestToolCommandsImportOnlyTheProtocol(t *testing.T) {
	for _, file := range []string{"cmd_sign.go", "cmd_send.go"} {
		t.Run(file, func(t *testing.T) {
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", file), nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if isServiceLibrary(path) {
					t.Errorf("%s imports %s", file, path)
				}
			}
		})
	}
}

func isServiceLibrary(path string) bool {
	for _, lib := range serviceLibraries {
		if strings.HasPrefix(path, lib) {
			return true
		}
	}
	return false
}

func nonStandardDeps(t *testing.T, pkg string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg)
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// forwarderPkg is the import path of the service's packages.
const forwarderPkg = "github.com/zautic/zautic-forwarder/forwarder"

// TestPlanesKeepTheirBorders checks what each plane of the service may
// import (forwarder/doc.go): the webhook plane never reaches the admin
// plane, the quarantine's replay or NATS; the store knows no other plane;
// how to connect knows only the embedded server's configuration; the
// embedded server, telemetry and the admin API's types know none at all.
func TestPlanesKeepTheirBorders(t *testing.T) {
	tests := []struct {
		pkg    string
		forbid []string // dependencies that must not appear, by prefix
	}{
		{pkg: "./forwarder/internal/ingest", forbid: []string{
			forwarderPkg + "/internal/admin", forwarderPkg + "/internal/quarantine", forwarderPkg + "/internal/store", "github.com/nats-io/"}},
		{pkg: "./forwarder/internal/store", forbid: []string{
			forwarderPkg + "/internal/admin", forwarderPkg + "/internal/quarantine", forwarderPkg + "/internal/ingest", forwarderPkg + "/internal/secrets"}},
		{pkg: "./forwarder/internal/quarantine", forbid: []string{forwarderPkg + "/internal/admin"}},
		{pkg: "./forwarder/internal/secrets", forbid: []string{
			forwarderPkg + "/internal/admin", forwarderPkg + "/internal/quarantine", forwarderPkg + "/internal/ingest", forwarderPkg + "/internal/store"}},
		{pkg: "./forwarder/internal/natsconn", forbid: []string{
			forwarderPkg + "/internal/admin", forwarderPkg + "/internal/quarantine", forwarderPkg + "/internal/ingest", forwarderPkg + "/internal/secrets",
			forwarderPkg + "/internal/store", forwarderPkg + "/internal/telemetry", forwarderPkg + "/adminapi"}},
		{pkg: "./forwarder/internal/embedded", forbid: []string{forwarderPkg + "/"}},
		{pkg: "./forwarder/internal/connlimit", forbid: []string{
			forwarderPkg + "/internal/admin", forwarderPkg + "/internal/quarantine", forwarderPkg + "/internal/ingest", forwarderPkg + "/internal/store", "github.com/nats-io/"}},
		{pkg: "./forwarder/internal/telemetry", forbid: []string{forwarderPkg + "/internal/"}},
		{pkg: "./forwarder/adminapi", forbid: []string{"github.com/"}},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			self := "github.com/zautic/zautic-forwarder/" + strings.TrimPrefix(tt.pkg, "./")
			for _, dep := range nonStandardDeps(t, tt.pkg) {
				for _, f := range tt.forbid {
					if dep != self && strings.HasPrefix(dep, f) {
						t.Errorf("%s depends on %s", tt.pkg, dep)
					}
				}
			}
		})
	}
}

// maxPackageLines bounds the non-test lines of one package under
// forwarder/: a package that outgrows it holds more than one concern.
const maxPackageLines = 2000

// TestForwarderPackagesStaySmall counts the lines of each package's
// non-test Go files, as wc -l does.
func TestForwarderPackagesStaySmall(t *testing.T) {
	lines := map[string]int{}
	err := filepath.WalkDir(filepath.Join("..", "forwarder"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		lines[filepath.Dir(path)] += bytes.Count(raw, []byte("\n"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) < 2 {
		t.Fatalf("found %d packages under forwarder/, want the planes", len(lines))
	}
	for dir, n := range lines {
		if n > maxPackageLines {
			t.Errorf("%s: %d non-test lines, more than %d", dir, n, maxPackageLines)
		}
	}
}

// maxForwarderDecls bounds what package forwarder exports: the wiring and
// the few names main needs.
const maxForwarderDecls = 20

// TestForwarderAPIStaysSmall counts the top-level declarations go doc lists
// for package forwarder, as the README counts them.
func TestForwarderAPIStaysSmall(t *testing.T) {
	cmd := exec.Command("go", "doc", "./forwarder")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go doc ./forwarder: %v", err)
	}
	n := 0
	for line := range strings.Lines(string(out)) {
		for _, kind := range []string{"func ", "type ", "const ", "var "} {
			if strings.HasPrefix(line, kind) {
				n++
			}
		}
	}
	if n == 0 || n > maxForwarderDecls {
		t.Errorf("go doc ./forwarder lists %d top-level declarations, want 1 to %d:\n%s", n, maxForwarderDecls, out)
	}
}
