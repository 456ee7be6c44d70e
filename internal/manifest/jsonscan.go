package manifest

import (
	"bytes"
	"fmt"
)

// maxJSONDepth bounds the nesting of a JSON value, as encoding/json does.
const maxJSONDepth = 10000

// jsonSyntaxError is a syntax error at a byte offset of the file.
type jsonSyntaxError struct {
	offset int
	msg    string
}

func (e *jsonSyntaxError) Error() string { return e.msg }

// jsonScanner finds where the JSON values of a stream end, checking their
// syntax as encoding/json does, but skipping through the bodies of strings
// with bytes.IndexByte: the values of a manifest are mostly strings, and
// this runs once over every byte of a JSON file before the documents are
// decoded in parallel. Unlike encoding/json it lets control characters
// pass inside strings (their document is then read as YAML would read it,
// as kubectl's fallback to YAML does); the decoder still refuses those YAML
// refuses.
type jsonScanner struct {
	data []byte
	pos  int
}

func (s *jsonScanner) fail(format string, args ...any) error {
	return &jsonSyntaxError{offset: s.pos, msg: fmt.Sprintf(format, args...)}
}

func (s *jsonScanner) eof() error {
	return &jsonSyntaxError{offset: s.pos, msg: "unexpected end of file inside a JSON value"}
}

func (s *jsonScanner) skipSpace() {
	for s.pos < len(s.data) && isJSONSpace(s.data[s.pos]) {
		s.pos++
	}
}

// value scans one value starting at s.pos (no leading whitespace).
func (s *jsonScanner) value(depth int) error {
	if s.pos >= len(s.data) {
		return s.eof()
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		return s.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.fail("invalid character %q looking for beginning of value", c)
	}
}

func (s *jsonScanner) object(depth int) error {
	if depth > maxJSONDepth {
		return s.fail("exceeded max depth")
	}
	s.pos++ // {
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		if s.pos >= len(s.data) {
			return s.eof()
		}
		if s.data[s.pos] != '"' {
			return s.fail("invalid character %q looking for beginning of object key string", s.data[s.pos])
		}
		if err := s.str(); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.eof()
		}
		if s.data[s.pos] != ':' {
			return s.fail("invalid character %q after object key", s.data[s.pos])
		}
		s.pos++
		s.skipSpace()
		if err := s.value(depth); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.eof()
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.skipSpace()
		case '}':
			s.pos++
			return nil
		default:
			return s.fail("invalid character %q after object key:value pair", s.data[s.pos])
		}
	}
}

func (s *jsonScanner) array(depth int) error {
	if depth > maxJSONDepth {
		return s.fail("exceeded max depth")
	}
	s.pos++ // [
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for {
		if err := s.value(depth); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.eof()
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.skipSpace()
		case ']':
			s.pos++
			return nil
		default:
			return s.fail("invalid character %q after array element", s.data[s.pos])
		}
	}
}

// str scans a string; s.pos is at its opening quote.
func (s *jsonScanner) str() error {
	s.pos++
	quote := -1 // absolute position of the next '"' at or after s.pos
	for {
		if quote < s.pos {
			q := bytes.IndexByte(s.data[s.pos:], '"')
			if q < 0 {
				s.pos = len(s.data)
				return s.eof()
			}
			quote = s.pos + q
		}
		b := bytes.IndexByte(s.data[s.pos:quote], '\\')
		if b < 0 {
			s.pos = quote + 1
			return nil
		}
		s.pos += b + 1 // after the backslash
		if s.pos >= len(s.data) {
			return s.eof()
		}
		switch c := s.data[s.pos]; c {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			s.pos++
		case 'u':
			s.pos++
			for k := 0; k < 4; k++ {
				if s.pos >= len(s.data) {
					return s.eof()
				}
				if !isHex(s.data[s.pos]) {
					return s.fail("invalid character %q in \\u hexadecimal character escape", s.data[s.pos])
				}
				s.pos++
			}
		default:
			return s.fail("invalid character %q in string escape code", c)
		}
	}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (s *jsonScanner) digits() error {
	if s.pos >= len(s.data) {
		return s.eof()
	}
	if !isDigit(s.data[s.pos]) {
		return s.fail("invalid character %q in numeric literal", s.data[s.pos])
	}
	for s.pos < len(s.data) && isDigit(s.data[s.pos]) {
		s.pos++
	}
	return nil
}

func (s *jsonScanner) number() error {
	if s.data[s.pos] == '-' {
		s.pos++
	}
	if s.pos >= len(s.data) {
		return s.eof()
	}
	if s.data[s.pos] == '0' {
		s.pos++
	} else if err := s.digits(); err != nil {
		return err
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if err := s.digits(); err != nil {
			return err
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if err := s.digits(); err != nil {
			return err
		}
	}
	return nil
}

func (s *jsonScanner) literal(lit string) error {
	for i := 0; i < len(lit); i++ {
		if s.pos >= len(s.data) {
			return s.eof()
		}
		if s.data[s.pos] != lit[i] {
			return s.fail("invalid character %q in literal %s (expecting %q)", s.data[s.pos], lit, lit[i])
		}
		s.pos++
	}
	return nil
}
