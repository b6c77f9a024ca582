package zautic

import (
	"encoding/json"
	"strconv"
)

// topLevelMembers returns the raw values of the members a and b of the JSON
// object obj, nil when absent; when a name occurs twice the last one wins,
// as with encoding/json and JavaScript. Names match exactly, after their
// escapes are decoded. obj must be valid JSON (json.Valid) whose first value
// is an object: the walk relies on it and does not check the syntax again.
func topLevelMembers(obj []byte, a, b string) (va, vb []byte) {
	i := skipSpace(obj, 0) + 1 // past '{'
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return va, vb
		}
		nameEnd := stringEnd(obj, i)
		name := obj[i:nameEnd]
		i = skipSpace(obj, nameEnd) + 1 // past ':'
		i = skipSpace(obj, i)
		valueEnd := valueEnd(obj, i)
		switch value := obj[i:valueEnd]; {
		case memberNameIs(name, a):
			va = value
		case memberNameIs(name, b):
			vb = value
		}
		i = skipSpace(obj, valueEnd)
		if i < len(obj) && obj[i] == ',' {
			i++
		}
	}
}

// memberNameIs reports whether the quoted JSON string name decodes to want.
func memberNameIs(name []byte, want string) bool {
	unquoted := name[1 : len(name)-1]
	for _, c := range unquoted {
		if c == '\\' {
			var s string
			return json.Unmarshal(name, &s) == nil && s == want
		}
	}
	return string(unquoted) == want
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that opens at b[i].
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++ // the escaped byte cannot close the string
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just past the value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	default: // number, true, false, null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && skipSpace(b, i) == i {
			i++
		}
		return i
	}
}

// loneSurrogate returns the first \uXXXX escape of the JSON string str
// (quoted, valid JSON) that is half of a UTF-16 surrogate pair without its
// other half, and whether there is one.
func loneSurrogate(str []byte) (string, bool) {
	pending := "" // a high surrogate escape waiting for its low half
	for i := 1; i < len(str)-1; i++ {
		if str[i] != '\\' {
			if pending != "" {
				return pending, true
			}
			continue
		}
		if str[i+1] != 'u' {
			if pending != "" {
				return pending, true
			}
			i++ // the escaped byte
			continue
		}
		esc := string(str[i : i+6])
		r, _ := strconv.ParseUint(esc[2:], 16, 16) // valid JSON: four hex digits
		i += 5
		switch {
		case r >= 0xD800 && r < 0xDC00:
			if pending != "" {
				return pending, true
			}
			pending = esc
		case r >= 0xDC00 && r < 0xE000:
			if pending == "" {
				return esc, true
			}
			pending = ""
		case pending != "":
			return pending, true
		}
	}
	return pending, pending != ""
}
