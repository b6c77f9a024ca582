package zautic

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

// ErrInvalidSubjectTemplate is returned by ParseSubjectTemplate when a
// template is not valid; the error names the problem and its byte offset.
var ErrInvalidSubjectTemplate = errors.New("invalid subject template")

const (
	// DefaultSubjectTemplate is "<prefix>.<type>", the subject of every event
	// before templates existed.
	DefaultSubjectTemplate = "{prefix}.{type}"
	// MaxSubjectTemplatePaths bounds the distinct body paths of a template.
	MaxSubjectTemplatePaths = 16
)

// SubjectTemplate is a parsed subject template: dot-separated tokens, each a
// literal of [A-Za-z0-9_-] or one placeholder filling the whole token:
//
//   - {prefix}, the subject prefix, first and exactly once;
//   - {type}, the event type, exactly once;
//   - {<path>}, a dotted path of member names into the signed JSON body,
//     such as {data.object.device_id}, as many as MaxSubjectTemplatePaths.
//
// {prefix} and {type} fill as many tokens as they have (message.delivered
// is two); a path always fills exactly one, mapped by SubjectTokenForJSON.
// So the subjects of a template differ only where its paths are, and a
// hostile value can add neither a token nor a wildcard.
//
// The zero value is DefaultSubjectTemplate. A SubjectTemplate is immutable
// and safe for concurrent use.
type SubjectTemplate struct {
	text  string
	parts []templatePart
	paths [][]string // the distinct paths, split at the dots
}

type partKind uint8

const (
	literalPart partKind = iota
	prefixPart
	typePart
	pathPart
)

// templatePart is one token of the template.
type templatePart struct {
	kind    partKind
	literal string
	path    int // index into paths, for a pathPart
}

var defaultParts = []templatePart{{kind: prefixPart}, {kind: typePart}}

// ParseSubjectTemplate parses s, for example
// "{prefix}.{type}.{data.object.device_id}". If s is not a valid template,
// an error wrapping ErrInvalidSubjectTemplate says why: an empty token, a
// literal that is not [A-Za-z0-9_-] (a wildcard, white space, ...), braces
// that do not pair, a placeholder that is only part of a token ("x{type}"),
// an empty path or path segment, an unknown placeholder ({Type}, {type.x},
// { type }), or {prefix} and {type} not each there once, {prefix} first.
func ParseSubjectTemplate(s string) (SubjectTemplate, error) {
	t := SubjectTemplate{text: s}
	if err := t.parse(); err != nil {
		return SubjectTemplate{}, err
	}
	return t, nil
}

func (t *SubjectTemplate) parse() error {
	s := t.text
	if s == "" {
		return fmt.Errorf("%w: empty; the default is %q", ErrInvalidSubjectTemplate, DefaultSubjectTemplate)
	}
	start, open := 0, -1
	for i := 0; i <= len(s); i++ {
		if i < len(s) && (s[i] != '.' || open >= 0) {
			switch s[i] {
			case '{':
				if open >= 0 {
					return t.errorf("'{' at byte %d inside the placeholder opened at byte %d", i, open)
				}
				open = i
			case '}':
				if open < 0 {
					return t.errorf("'}' at byte %d closes no '{'", i)
				}
				open = -1
			}
			continue
		}
		if open >= 0 {
			return t.errorf("'{' at byte %d is never closed", open)
		}
		part, err := t.parseToken(s[start:i], start)
		if err != nil {
			return err
		}
		t.parts = append(t.parts, part)
		start = i + 1
	}
	return t.checkPlaceholders()
}

func (t *SubjectTemplate) errorf(format string, args ...any) error {
	return fmt.Errorf("%w %q: %s", ErrInvalidSubjectTemplate, truncate(t.text, 128), fmt.Sprintf(format, args...))
}

// parseToken parses the token tok, found at byte offset of the template.
func (t *SubjectTemplate) parseToken(tok string, offset int) (templatePart, error) {
	if tok == "" {
		return templatePart{}, t.errorf("empty token at byte %d", offset)
	}
	if !strings.ContainsAny(tok, "{}") {
		for i := 0; i < len(tok); i++ {
			switch c := tok[i]; {
			case c == '*' || c == '>':
				return templatePart{}, t.errorf("wildcard %q at byte %d: a template's tokens are literal", c, offset+i)
			case !isTokenByte(c):
				return templatePart{}, t.errorf("%s at byte %d of the literal token %q is not one of [A-Za-z0-9_-]", describeByteAt(tok, i), offset+i, tok)
			}
		}
		return templatePart{kind: literalPart, literal: tok}, nil
	}
	name, whole := strings.CutPrefix(tok, "{")
	name, closed := strings.CutSuffix(name, "}")
	if !whole || !closed || strings.ContainsAny(name, "{}") {
		return templatePart{}, t.errorf("%q at byte %d: a placeholder must be a whole token, between dots", tok, offset)
	}
	switch {
	case name == "prefix":
		return templatePart{kind: prefixPart}, nil
	case name == "type":
		return templatePart{kind: typePart}, nil
	case name == "":
		return templatePart{}, t.errorf("empty path {} at byte %d; a path names body members, as in {data.object.device_id}", offset)
	}
	path, err := t.parsePath(name, offset+1)
	if err != nil {
		return templatePart{}, err
	}
	for i, p := range t.paths {
		if strings.Join(p, ".") == name {
			return templatePart{kind: pathPart, path: i}, nil
		}
	}
	if len(t.paths) == MaxSubjectTemplatePaths {
		return templatePart{}, t.errorf("more than %d paths", MaxSubjectTemplatePaths)
	}
	t.paths = append(t.paths, path)
	return templatePart{kind: pathPart, path: len(t.paths) - 1}, nil
}

// parsePath splits the path name, found at byte offset, into its segments.
func (t *SubjectTemplate) parsePath(name string, offset int) ([]string, error) {
	unknown := func(why string, args ...any) error {
		return t.errorf("unknown placeholder {%s} at byte %d: %s; the placeholders are {prefix}, {type} and {<path>}, a path being member names of [A-Za-z0-9_-] joined by dots",
			name, offset-1, fmt.Sprintf(why, args...))
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c != '.' && !isTokenByte(c) {
			return nil, unknown("%s at byte %d", describeByteAt(name, i), offset+i)
		}
	}
	path := strings.Split(name, ".")
	at := offset
	for _, seg := range path {
		if seg == "" {
			return nil, t.errorf("empty path segment at byte %d of {%s}", at, name)
		}
		at += len(seg) + 1
	}
	switch first := path[0]; {
	case len(path) == 1 && (strings.EqualFold(first, "prefix") || strings.EqualFold(first, "type")):
		return nil, unknown("names are case-sensitive")
	case len(path) > 1 && (first == "prefix" || first == "type"):
		return nil, unknown("{%s} takes no path", first)
	}
	return path, nil
}

// checkPlaceholders checks that {prefix} comes first and once, so that every
// subject lies under the prefix (and in its stream), and {type} once.
func (t *SubjectTemplate) checkPlaceholders() error {
	prefixes, types := 0, 0
	for _, p := range t.parts {
		switch p.kind {
		case prefixPart:
			prefixes++
		case typePart:
			types++
		}
	}
	switch {
	case t.parts[0].kind != prefixPart:
		return t.errorf("the first token must be {prefix}, so that every subject lies under the prefix")
	case prefixes > 1:
		return t.errorf("{prefix} is there %d times; it must be there once", prefixes)
	case types != 1:
		return t.errorf("{type} is there %d times; it must be there once", types)
	}
	return nil
}

// String returns the template as it was written.
func (t SubjectTemplate) String() string {
	if t.parts == nil {
		return DefaultSubjectTemplate
	}
	return t.text
}

// Paths returns the distinct body paths the template reads, dotted, in the
// order they first appear. The slice is a copy.
func (t SubjectTemplate) Paths() []string {
	paths := make([]string, len(t.paths))
	for i, p := range t.paths {
		paths[i] = strings.Join(p, ".")
	}
	return paths
}

// Subject renders the template for one event: prefix, which must be valid
// for ValidateSubjectTokens (the configuration checks it, as for SubjectFor),
// the event type, and body, the verified body that ParseEvent accepted. If
// the type is not valid for SubjectFor, an error wrapping ErrInvalidType is
// returned; no value of the body can cause an error.
func (t SubjectTemplate) Subject(prefix, eventType string, body []byte) (string, error) {
	subject, _, err := t.Render(prefix, eventType, body)
	return subject, err
}

// Render is Subject that also returns the tokens the template adds to
// {prefix} and {type}, literals and paths, in order and joined with dots:
// "114" for "{prefix}.{type}.{data.object.device_id}", "" for the default
// template. They are the event's CloudEvents subject.
//
// The body is walked once for all paths, and for a body ParseEvent rejected
// the values found are unspecified, though the subject is still well formed.
func (t SubjectTemplate) Render(prefix, eventType string, body []byte) (subject, added string, err error) {
	if err := checkEventType(eventType); err != nil {
		return "", "", err
	}
	parts := t.parts
	if parts == nil {
		parts = defaultParts
	}
	var valuesBuf [MaxSubjectTemplatePaths][]byte
	values := valuesBuf[:len(t.paths)]
	findPaths(body, t.paths, values)

	var b strings.Builder
	b.Grow(len(prefix) + len(eventType) + len(parts)*(1+len(hashedToken{})))
	var tok hashedToken
	var addedBuf [4][2]int
	spans := addedBuf[:0] // where the added tokens are in the subject
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		start := b.Len()
		switch p.kind {
		case prefixPart:
			b.WriteString(prefix)
			continue
		case typePart:
			b.WriteString(eventType)
			continue
		case literalPart:
			b.WriteString(p.literal)
		case pathPart:
			b.Write(tokenForJSON(values[p.path], &tok))
		}
		spans = append(spans, [2]int{start, b.Len()})
	}
	subject = b.String()
	return subject, joinSpans(subject, spans), nil
}

// joinSpans returns the tokens of s at spans joined with dots: a part of s
// when they are adjacent, as they are when the template ends with them.
func joinSpans(s string, spans [][2]int) string {
	if len(spans) == 0 {
		return ""
	}
	adjacent := true
	for i := 1; i < len(spans); i++ {
		adjacent = adjacent && spans[i][0] == spans[i-1][1]+1
	}
	if adjacent {
		return s[spans[0][0]:spans[len(spans)-1][1]]
	}
	tokens := make([]string, len(spans))
	for i, sp := range spans {
		tokens[i] = s[sp[0]:sp[1]]
	}
	return strings.Join(tokens, ".")
}

// findPaths sets values[k] to the raw JSON value at paths[k] in body, nil
// when there is none, in one walk of the body that enters only the members
// some path goes through. Member names match exactly, after decoding their
// escapes; when a name occurs twice in an object the last one wins, as with
// encoding/json and JavaScript. The walk stays inside body and ends whatever
// the bytes are.
func findPaths(body []byte, paths [][]string, values [][]byte) {
	clear(values)
	if len(paths) == 0 {
		return
	}
	if i := skipSpace(body, 0); i < len(body) && body[i] == '{' {
		findMembers(body, i, paths, 0, 1<<len(paths)-1, values)
	}
}

// findMembers walks the object that opens at b[i] for the paths in the set
// want, whose first depth segments led there.
func findMembers(b []byte, i int, paths [][]string, depth int, want uint64, values [][]byte) {
	i++ // past '{'
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] == '}' {
			return
		}
		nameEnd := stringEnd(b, i) // at least i+1, so the walk moves on
		name, nameOK := jsonStringValue(b[i:nameEnd])
		if i = skipSpace(b, nameEnd); i < len(b) && b[i] == ':' {
			i++
		}
		if i = skipSpace(b, i); i >= len(b) {
			return
		}
		end := valueEnd(b, i)
		value := b[i:end]
		var leaves, inner uint64
		for set := want; nameOK && set != 0; set &= set - 1 {
			k := bits.TrailingZeros64(set)
			if string(name) != paths[k][depth] {
				continue
			}
			if depth == len(paths[k])-1 {
				leaves |= 1 << k
			} else {
				inner |= 1 << k
			}
		}
		for set := leaves; set != 0; set &= set - 1 {
			values[bits.TrailingZeros64(set)] = value
		}
		if inner != 0 {
			// A later member of the same name replaces what an earlier one held.
			for set := inner; set != 0; set &= set - 1 {
				values[bits.TrailingZeros64(set)] = nil
			}
			if len(value) > 0 && value[0] == '{' {
				findMembers(b, i, paths, depth+1, inner, values)
			}
		}
		if i = skipSpace(b, end); i < len(b) && b[i] == ',' {
			i++
		}
	}
}
