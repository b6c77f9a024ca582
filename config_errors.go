package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"

	"github.com/zautic/zautic-forwarder/forwarder"
)

// What is wrong with a configuration, said so that the reader can fix it:
// the key or variable, the value, the line of the file, and the nearest
// known name when a name is unknown.

// maxLinesToLocate bounds the re-parses yamlSyntaxError does to find the
// line of a syntax error; a configuration file is far shorter.
const maxLinesToLocate = 2000

var yamlLinePrefix = regexp.MustCompile(`^yaml: (line \d+: )?`)

// yamlSyntaxError says on which line the file stops being YAML. The parser
// reports the line where the enclosing mapping starts, or the line before
// the offending one ("did not find expected key" on line 2 for a key
// indented one space too few on line 3), so the line is found again: the
// error lies on the line after the longest beginning of the file that
// parses.
func yamlSyntaxError(raw []byte, err error) string {
	msg := yamlLinePrefix.ReplaceAllString(err.Error(), "")
	lines := strings.SplitAfter(string(raw), "\n")
	if len(lines) > maxLinesToLocate {
		return err.Error()
	}
	line := 1
	for n := len(lines) - 1; n > 0; n-- {
		var doc yaml.Node
		if yaml.Unmarshal([]byte(strings.Join(lines[:n], "")), &doc) == nil {
			line = n + 1
			break
		}
	}
	switch {
	case strings.Contains(msg, "cannot start any token") && strings.Contains(lines[min(line, len(lines))-1], "\t"):
		msg += " (a tab: YAML indents with spaces)"
	case strings.Contains(msg, "did not find expected key"), strings.Contains(msg, "mapping values are not allowed"):
		msg += " (check the indentation: the keys of one section line up)"
	}
	return fmt.Sprintf("line %d: %s", line, msg)
}

// unknownFileKeys names each key of the file that is neither a
// configuration key nor a section of keys, with its line and the nearest
// known key.
func unknownFileKeys(doc *yaml.Node) []string {
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	keys := configKeys()
	sections := configSections(keys)
	var problems []string
	var walk func(m *yaml.Node, prefix string)
	walk = func(m *yaml.Node, prefix string) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			name, value := m.Content[i], m.Content[i+1]
			key := strings.ToLower(name.Value)
			if prefix != "" {
				key = prefix + "." + key
			}
			switch {
			case slices.Contains(keys, key):
			case slices.Contains(sections, key):
				if value.Kind == yaml.MappingNode {
					walk(value, key)
				}
			default:
				hint := siblings(prefix, keys, sections)
				what := " (known here: " + strings.Join(hint, ", ") + ")"
				if best, ok := nearest(key, hint); ok {
					what = ": did you mean " + best + "?"
				}
				problems = append(problems, fmt.Sprintf("line %d: unknown key %s%s", name.Line, key, what))
			}
		}
	}
	walk(doc.Content[0], "")
	return problems
}

// configSections returns every dotted prefix of keys: "nats", "nats.tls", …
func configSections(keys []string) []string {
	var sections []string
	for _, k := range keys {
		for i, c := range k {
			if c == '.' && !slices.Contains(sections, k[:i]) {
				sections = append(sections, k[:i])
			}
		}
	}
	return sections
}

// siblings are the keys and sections directly under prefix.
func siblings(prefix string, keys, sections []string) []string {
	var out []string
	for _, k := range append(slices.Clone(keys), sections...) {
		parent := ""
		if i := strings.LastIndex(k, "."); i >= 0 {
			parent = k[:i]
		}
		if parent == prefix {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// nearest returns the candidate nearest to name, if one is near: one edit
// away, or starting with the same letter and at most half of name's length
// plus one away.
func nearest(name string, candidates []string) (string, bool) {
	best, dist := "", -1
	for _, c := range candidates {
		if d := editDistance(name, c); dist < 0 || d < dist {
			best, dist = c, d
		}
	}
	near := dist >= 0 && (dist <= 1 || best != "" && name != "" && best[0] == name[0] && dist <= len(name)/2+1)
	return best, near
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// kubernetesServiceLink matches the variables Kubernetes sets for a
// Service named "forwarder" in the pod's namespace (FORWARDER_SERVICE_HOST,
// FORWARDER_PORT_8080_TCP_ADDR, …): not ours, and not a mistake.
var kubernetesServiceLink = regexp.MustCompile(`^` + envPrefix + `_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$`)

// checkEnvNames refuses FORWARDER_ variables that set no key, as the file's
// unknown keys are refused: FORWARDER_HTTP_ADRESS=:8081 would otherwise
// leave http.addr at its default without a word. environ is os.Environ().
func checkEnvNames(environ []string) error {
	prefix := envPrefix + "_"
	var known []string // without the prefix, which every name shares
	for _, k := range configKeys() {
		known = append(known, strings.TrimPrefix(envName(k), prefix))
	}
	var problems []string
	first := "" // the unknown name first in sorted order names the example
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		rest, ours := strings.CutPrefix(name, prefix)
		if !ours || slices.Contains(known, rest) || kubernetesServiceLink.MatchString(name) {
			continue
		}
		if first == "" || rest < first {
			first = rest
		}
		problem := "unknown environment variable " + name
		if best, ok := nearest(rest, known); ok {
			problem += ": did you mean " + prefix + best + "?"
		}
		problems = append(problems, problem)
	}
	if len(problems) == 0 {
		return nil
	}
	slices.Sort(problems)
	example := exampleKey(first)
	return fmt.Errorf("%w: %s (each key has one variable: %s is %s)", forwarder.ErrInvalidConfig,
		strings.Join(problems, "; "), example, envName(example))
}

// exampleKey is the key whose variable the hint after unknown variables
// shows: the one nearest to rest (an unknown name without the prefix) when
// one is near, else the nearest in the section rest starts with
// (FORWARDER_NATS_SERVERS: a nats.* key), else http.addr.
func exampleKey(rest string) string {
	keys := configKeys()
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = strings.TrimPrefix(envName(k), envPrefix+"_")
	}
	if best, ok := nearest(rest, names); ok {
		return keys[slices.Index(names, best)]
	}
	example, dist := "http.addr", -1
	for i, k := range keys {
		section, _, _ := strings.Cut(names[i], "_")
		if !strings.HasPrefix(rest, section+"_") || !strings.Contains(k, ".") {
			continue
		}
		if d := editDistance(rest, names[i]); dist < 0 || d < dist {
			example, dist = k, d
		}
	}
	return example
}

// envName is the environment variable of a key: http.addr is
// FORWARDER_HTTP_ADDR.
func envName(key string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// checkSecretEnv refuses a secret variable set to nothing while a later one
// holds the secret: the first variable set wins even when empty, so
// FORWARDER_WEBHOOK_SECRET= would hide ZAUTIC_WEBHOOK_SECRET and the start
// would fail for "no webhook secret" with the secret in plain sight.
func checkSecretEnv() error {
	vars := secretEnvVars()
	for i, name := range vars {
		value, set := os.LookupEnv(name)
		if !set {
			continue
		}
		if strings.TrimSpace(value) != "" {
			return nil
		}
		for _, later := range vars[i+1:] {
			if strings.TrimSpace(os.Getenv(later)) != "" {
				return fmt.Errorf("%w: %s is set but empty, which hides %s: unset %s, or set it to the secret",
					forwarder.ErrInvalidConfig, name, later, name)
			}
		}
		return nil
	}
	return nil
}

// decodeProblems turns mapstructure's errors into "key: what is wrong"
// lines joined by "; ", without Go type names.
func decodeProblems(err error) string {
	sections := configSections(configKeys())
	var problems []string
	var walk func(error)
	walk = func(err error) {
		var de *mapstructure.DecodeError
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
			return
		case *mapstructure.DecodeError:
			de = e
		default:
			if inner := errors.Unwrap(err); inner != nil {
				walk(inner)
				return
			}
			problems = append(problems, err.Error())
			return
		}
		inner := de.Unwrap()
		var nested *mapstructure.DecodeError
		if errors.As(inner, &nested) {
			walk(inner)
			return
		}
		problems = append(problems, describeDecodeError(de.Name(), inner, sections))
	}
	walk(err)
	return strings.Join(problems, "; ")
}

// describeDecodeError says what is wrong with key's value.
func describeDecodeError(key string, err error, sections []string) string {
	var parseErr *mapstructure.ParseError
	var typeErr *mapstructure.UnconvertibleTypeError
	switch {
	case slices.Contains(sections, key):
		return key + " is a section: write its keys under it, indented"
	case errors.As(err, &parseErr):
		return fmt.Sprintf("%s: %q is not %s", key, fmt.Sprint(parseErr.Value), kindName(parseErr.Expected.Kind()))
	case errors.As(err, &typeErr):
		return fmt.Sprintf("%s: want %s, got %s", key, kindName(typeErr.Expected.Kind()), kindName(reflect.ValueOf(typeErr.Value).Kind()))
	}
	return key + ": " + err.Error()
}

// kindName says what a value of kind k looks like in YAML.
func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a single value"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a section of keys"
	}
	return "a value of another kind"
}

// fileProblems says where a configuration file is no YAML, is not a
// mapping of sections, repeats a key or holds an unknown one, each with its
// line; nothing when the file is fine.
func fileProblems(raw []byte) []string {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return []string{yamlSyntaxError(raw, err)}
	}
	if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
		return nil
	}
	if root := doc.Content[0]; root.Kind != yaml.MappingNode {
		return []string{fmt.Sprintf("line %d: the file holds sections of keys (http:, nats:, …), not a single value or a list", root.Line)}
	}
	// What viper's own decoding refuses, such as a key given twice.
	var tree map[string]any
	var typeErr *yaml.TypeError
	if err := yaml.Unmarshal(raw, &tree); errors.As(err, &typeErr) {
		return typeErr.Errors
	}
	return unknownFileKeys(&doc)
}
