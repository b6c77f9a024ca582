package test

import (
	"go/parser"
	"go/token"
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
