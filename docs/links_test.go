// Package docs holds the pages the README links to. Its test checks that
// every relative link and anchor in README.md and in these pages resolves.
package docs

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// repoRoot is the repository root seen from this package's directory.
const repoRoot = ".."

// checkedPages are the Markdown files whose links the test follows: the
// README and every page under docs/, as paths from the repository root.
func checkedPages(t *testing.T) []string {
	t.Helper()
	pages := []string{"README.md"}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".md") {
			return err
		}
		pages = append(pages, filepath.ToSlash(filepath.Join("docs", path)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pages
}

// TestLinksResolve follows every relative link of the README and the docs
// pages: the file or directory it names exists inside the repository, and
// its #fragment is an anchor GitHub gives a heading of the target. Links
// with a scheme (https:, mailto:) are not followed.
func TestLinksResolve(t *testing.T) {
	for _, page := range checkedPages(t) {
		t.Run(page, func(t *testing.T) {
			for _, problem := range brokenLinks(repoRoot, page) {
				t.Error(problem)
			}
		})
	}
}

// TestBrokenLinksAreFound makes sure the check above reports each kind of
// broken link, and accepts the kinds of good ones, in a small repository.
func TestBrokenLinksAreFound(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"guide.md": "# Guide\n\n## Set up `nats`\n\n## Set up `nats`\n",
		"dir/a.go": "package dir\n",
		"README.md": strings.Join([]string{
			"# Top",
			"[good file](guide.md) [good anchor](guide.md#set-up-nats-1) [good self](#top)",
			"[good dir](dir) [good dir slash](dir/) [good line](dir/a.go#L1) [good root](/guide.md)",
			"[good ref][g] ![good image](dir/a.go) <a href=\"guide.md#guide\">good html</a>",
			"[good external](https://example.com/missing) `[code](missing.md)`",
			"```",
			"[fenced](missing.md)",
			"```",
			"[missing file](missing.md) [missing anchor](guide.md#set-up-nats-2)",
			"[missing self](#nowhere) [outside](../elsewhere.md) [anchor on go](dir/a.go#main)",
			"[undefined ref][nothing] <img src=\"missing.png\">",
			"",
			"[g]: guide.md#guide",
		}, "\n"),
	}
	for name, content := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := brokenLinks(root, "README.md")
	want := []string{
		`README.md:9: "missing.md": missing.md does not exist`,
		`README.md:9: "guide.md#set-up-nats-2": guide.md has no heading with the anchor "set-up-nats-2"`,
		`README.md:10: "#nowhere": README.md has no heading with the anchor "nowhere"`,
		`README.md:10: "../elsewhere.md": leaves the repository`,
		`README.md:10: "dir/a.go#main": dir/a.go is not Markdown: only line anchors (#L12, #L12-L14) can be checked`,
		`README.md:11: reference [nothing] is not defined`,
		`README.md:11: "missing.png": missing.png does not exist`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\ngot  %q\nwant %q", got, want)
	}
}

// TestSlugsFollowGitHub checks heading anchors against those GitHub gives.
func TestSlugsFollowGitHub(t *testing.T) {
	tests := []struct {
		headings []string
		want     []string
	}{
		{[]string{"Why the event id is the dedup key"}, []string{"why-the-event-id-is-the-dedup-key"}},
		{[]string{"`stream.manage: false` end to end"}, []string{"streammanage-false-end-to-end"}},
		{[]string{"What's new?"}, []string{"whats-new"}},
		{[]string{"C++ & Go"}, []string{"c--go"}},
		{[]string{"`FORWARDER_*` variables"}, []string{"forwarder_-variables"}},
		{[]string{"Über uns"}, []string{"über-uns"}},
		{[]string{"The [inspector](x.md) page"}, []string{"the-inspector-page"}},
		{[]string{"An *emphasised* and _underlined_ word"}, []string{"an-emphasised-and-underlined-word"}},
		{[]string{"Deploy 🚀"}, []string{"deploy-"}},
		{[]string{"Logo ![the logo](logo.png)"}, []string{"logo-"}},
		{[]string{"Tracing", "Tracing", "Tracing"}, []string{"tracing", "tracing-1", "tracing-2"}},
		{[]string{"a", "a", "a-1"}, []string{"a", "a-1", "a-1-1"}},
	}
	for _, tt := range tests {
		var s slugger
		var got []string
		for _, h := range tt.headings {
			got = append(got, s.slug(h))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q: got %q, want %q", tt.headings, got, tt.want)
		}
	}
}

// link is one link target found in a page, with its line.
type link struct {
	line   int
	target string
}

var (
	inlineLink  = regexp.MustCompile(`\]\(\s*(<[^>\n]*>|[^)\s]*)`)
	refDef      = regexp.MustCompile(`(?m)^ {0,3}\[([^\]]+)\]:[ \t]*(<[^>\n]*>|\S+)`)
	refUse      = regexp.MustCompile(`\]\[([^\]]+)\]`)
	htmlLink    = regexp.MustCompile(`(?i)<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*"([^"]*)"`)
	htmlAnchor  = regexp.MustCompile(`(?i)<[a-z][a-z0-9]*\b[^>]*?\b(?:id|name)\s*=\s*"([^"]*)"`)
	withScheme  = regexp.MustCompile(`^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)`)
	lineAnchor  = regexp.MustCompile(`^L\d+(?:-L\d+)?$`)
	atxHeading  = regexp.MustCompile(`^ {0,3}(#{1,6})(?:[ \t]+(.*?))??(?:[ \t]+#+)?[ \t]*$`)
	setextLine  = regexp.MustCompile(`^ {0,3}(?:=+|-+)[ \t]*$`)
	blockStart  = regexp.MustCompile(`^ {0,3}(?:[-*+][ \t]|\d+[.)][ \t]|>|\||<)`)
	fenceOpener = regexp.MustCompile("^ {0,3}(`{3,}|~{3,})")
)

// brokenLinks returns a line for each link of page (a path from root) that
// does not resolve, in the order they appear.
func brokenLinks(root, page string) []string {
	raw, err := os.ReadFile(filepath.Join(root, page))
	if err != nil {
		return []string{err.Error()}
	}
	text := maskCodeSpans(withoutFences(string(raw)))
	defined := map[string]bool{}
	for _, m := range refDef.FindAllStringSubmatch(text, -1) {
		defined[strings.ToLower(m[1])] = true
	}
	var problems []string
	for _, l := range links(text) {
		if label, ok := strings.CutPrefix(l.target, "[]"); ok {
			if !defined[strings.ToLower(label)] {
				problems = append(problems, fmt.Sprintf("%s:%d: reference [%s] is not defined", page, l.line, label))
			}
			continue
		}
		if err := resolve(root, page, l.target); err != nil {
			problems = append(problems, fmt.Sprintf("%s:%d: %q: %v", page, l.line, l.target, err))
		}
	}
	return problems
}

// links returns the targets of the inline, reference-definition and HTML
// links of text, sorted by position. A use of a reference ([text][label])
// is returned as "[]label", for the caller to look up its definition.
func links(text string) []link {
	type found struct {
		at     int
		target string
	}
	var all []found
	add := func(re *regexp.Regexp, group int, prefix string) {
		for _, m := range re.FindAllStringSubmatchIndex(text, -1) {
			target := strings.TrimSuffix(strings.TrimPrefix(text[m[2*group]:m[2*group+1]], "<"), ">")
			all = append(all, found{m[0], prefix + target})
		}
	}
	add(inlineLink, 1, "")
	add(refDef, 2, "")
	add(refUse, 1, "[]")
	add(htmlLink, 1, "")
	slices.SortStableFunc(all, func(a, b found) int { return a.at - b.at })
	out := make([]link, 0, len(all))
	for _, f := range all {
		out = append(out, link{line: 1 + strings.Count(text[:f.at], "\n"), target: f.target})
	}
	return out
}

// resolve checks one link target of page: the path exists inside root and
// the fragment, if any, is an anchor of the Markdown file it names (or of
// the README GitHub shows for a directory).
func resolve(root, page, target string) error {
	if target == "" || withScheme.MatchString(target) {
		return nil
	}
	pathPart, fragment, _ := strings.Cut(target, "#")
	pathPart, _, _ = strings.Cut(pathPart, "?")
	pathPart, err := url.PathUnescape(pathPart)
	if err != nil {
		return err
	}
	rel := page
	switch {
	case strings.HasPrefix(pathPart, "/"):
		rel = filepath.Clean(strings.TrimPrefix(pathPart, "/"))
	case pathPart != "":
		rel = filepath.Join(filepath.Dir(page), pathPart)
	}
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return errors.New("leaves the repository")
	}
	info, err := os.Stat(filepath.Join(root, rel))
	if err != nil {
		return fmt.Errorf("%s does not exist", filepath.ToSlash(rel))
	}
	if fragment == "" {
		return nil
	}
	fragment, err = url.PathUnescape(fragment)
	if err != nil {
		return err
	}
	if info.IsDir() {
		rel = filepath.Join(rel, "README.md")
		if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
			return fmt.Errorf("directory %s has no README.md for the anchor", filepath.ToSlash(filepath.Dir(rel)))
		}
	}
	if !strings.HasSuffix(rel, ".md") {
		if lineAnchor.MatchString(fragment) {
			return nil
		}
		return fmt.Errorf("%s is not Markdown: only line anchors (#L12, #L12-L14) can be checked", filepath.ToSlash(rel))
	}
	raw, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		return err
	}
	if !slices.Contains(anchors(string(raw)), fragment) {
		return fmt.Errorf("%s has no heading with the anchor %q", filepath.ToSlash(rel), fragment)
	}
	return nil
}

// anchors returns the anchors GitHub gives a Markdown file: one per ATX or
// setext heading, and the id or name of any HTML element.
func anchors(markdown string) []string {
	text := withoutFences(markdown)
	var s slugger
	var out []string
	var paragraph []string
	for _, line := range strings.Split(text, "\n") {
		switch m := atxHeading.FindStringSubmatch(line); {
		case m != nil:
			out = append(out, s.slug(m[2]))
			paragraph = nil
		case setextLine.MatchString(line) && len(paragraph) > 0:
			out = append(out, s.slug(strings.Join(paragraph, " ")))
			paragraph = nil
		case strings.TrimSpace(line) == "":
			paragraph = nil
		case len(paragraph) > 0 || !blockStart.MatchString(line):
			paragraph = append(paragraph, strings.TrimSpace(line))
		}
	}
	for _, m := range htmlAnchor.FindAllStringSubmatch(maskCodeSpans(text), -1) {
		out = append(out, m[1])
	}
	return out
}

// withoutFences blanks fenced code blocks, keeping their lines so that line
// numbers still count: what they hold is neither a link nor a heading.
func withoutFences(markdown string) string {
	var b strings.Builder
	fence := ""
	for _, line := range strings.SplitAfter(markdown, "\n") {
		if fence != "" {
			trimmed := strings.TrimSpace(line)
			if strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, fence[:1]) == "" {
				fence = ""
			}
			if strings.HasSuffix(line, "\n") {
				b.WriteString("\n")
			}
			continue
		}
		if m := fenceOpener.FindStringSubmatch(line); m != nil {
			fence = m[1]
			b.WriteString("\n")
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

// maskCodeSpans replaces each character of a code span's content, but
// newlines, by a NUL byte: a link inside code is not a link.
func maskCodeSpans(text string) string {
	out := []byte(text)
	for i := 0; i < len(text); {
		if text[i] != '`' {
			i++
			continue
		}
		n := 1
		for i+n < len(text) && text[i+n] == '`' {
			n++
		}
		closer := findRun(text, i+n, n)
		if closer < 0 {
			i += n
			continue
		}
		for j := i + n; j < closer; j++ {
			if out[j] != '\n' {
				out[j] = 0
			}
		}
		i = closer + n
	}
	return string(out)
}

// findRun returns the index of the next run of exactly n backticks at or
// after from, or -1.
func findRun(text string, from, n int) int {
	for i := from; i < len(text); {
		if text[i] != '`' {
			i++
			continue
		}
		j := i
		for j < len(text) && text[j] == '`' {
			j++
		}
		if j-i == n {
			return i
		}
		i = j
	}
	return -1
}

// slugger gives headings their anchors as GitHub does (github-slugger):
// the rendered text lower-cased, every character but letters, marks,
// numbers, '-', '_' and ' ' removed, each space turned into '-', and a
// repeated anchor suffixed with -1, -2 and so on.
type slugger struct {
	occurrences map[string]int
}

var (
	markdownImage = regexp.MustCompile(`!\[[^\]]*\]\([^)]*\)`)
	markdownLink  = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
	htmlTag       = regexp.MustCompile(`<[^>]*>`)
	emphasis      = regexp.MustCompile(`(^|[^\p{L}\p{N}])_+([^_]+?)_+([^\p{L}\p{N}]|$)`)
)

func (s *slugger) slug(heading string) string {
	if s.occurrences == nil {
		s.occurrences = map[string]int{}
	}
	base := githubSlug(renderedText(heading))
	result := base
	for {
		if _, taken := s.occurrences[result]; !taken {
			break
		}
		s.occurrences[base]++
		result = fmt.Sprintf("%s-%d", base, s.occurrences[base])
	}
	s.occurrences[result] = 0
	return result
}

// renderedText approximates the text GitHub renders for a heading's
// Markdown: code spans keep their content verbatim; outside them links keep
// their text, and images, HTML tags and '_' emphasis markers are dropped.
func renderedText(heading string) string {
	parts := strings.Split(heading, "`")
	for i := 0; i < len(parts); i += 2 { // even parts are outside code spans
		p := markdownImage.ReplaceAllString(parts[i], "")
		p = markdownLink.ReplaceAllString(p, "$1")
		p = htmlTag.ReplaceAllString(p, "")
		for { // adjacent emphases share the boundary a match consumes
			stripped := emphasis.ReplaceAllString(p, "$1$2$3")
			if stripped == p {
				break
			}
			p = stripped
		}
		parts[i] = p
	}
	return strings.Join(parts, "")
}

func githubSlug(text string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-', r == '_', unicode.IsLetter(r), unicode.IsMark(r), unicode.IsNumber(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
