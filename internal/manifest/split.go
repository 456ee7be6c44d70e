package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"unicode"
)

// document is one document of a file: a YAML document or one value of a
// JSON stream.
type document struct {
	loc  Location
	data []byte
	// json is set for a value of a JSON stream.
	json bool
}

// utf8BOM may open a file; it is no part of its first document.
var utf8BOM = []byte("\xEF\xBB\xBF")

// fileDocuments splits a whole file into its documents, numbered from 1.
// Nothing is lost: every byte of the file belongs to a returned document, to
// a separator or end marker, to comments or whitespace outside any document,
// or to the part reported in the error.
//
// As kubectl (YAMLOrJSONDecoder) decides, a file whose first non-space byte
// is "{" is a JSON stream: JSON values one after another, concatenated or
// separated by whitespace. When the first value is no valid JSON the file is
// read as YAML instead (a YAML flow mapping such as "{kind: Pod, ...}" also
// starts with "{"), and so it is when the second is no valid JSON but the
// text after the first value is a YAML separator or comment (kubectl switches
// to YAML there too). Any other invalid JSON after a valid value, trailing
// garbage included, is an error naming the document and the byte offset; the
// values before it are still returned.
func fileDocuments(name string, data []byte) ([]document, *Error) {
	data = bytes.TrimPrefix(data, utf8BOM)
	if bytes.HasPrefix(bytes.TrimLeftFunc(data, unicode.IsSpace), []byte("{")) {
		if values, err, isJSON := splitJSON(data); isJSON {
			docs := make([]document, len(values))
			for i, v := range values {
				docs[i] = document{loc: Location{File: name, Document: i + 1}, data: v, json: true}
			}
			if err != nil {
				err.File = name
				return docs, err
			}
			return docs, nil
		}
	}
	chunks := splitYAML(data)
	docs := make([]document, len(chunks))
	for i, c := range chunks {
		docs[i] = document{loc: Location{File: name, Document: i + 1}, data: c}
	}
	return docs, nil
}

// isJSONSpace reports whether c is whitespace between JSON values.
func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// splitJSON splits a JSON stream into its values. isJSON is false when the
// file is to be read as YAML instead (see fileDocuments). err, when set, is
// about the value after the returned ones (its File is left empty).
func splitJSON(data []byte) (values [][]byte, err *Error, isJSON bool) {
	s := &jsonScanner{data: data}
	for {
		s.skipSpace()
		if s.pos == len(data) {
			return values, nil, true
		}
		start := s.pos
		serr := s.value(0)
		if serr == nil {
			values = append(values, data[start:s.pos])
			continue
		}
		if len(values) == 0 || (len(values) == 1 && startsYAML(data[start:])) {
			return nil, nil, false
		}
		off := start
		var se *jsonSyntaxError
		if errors.As(serr, &se) {
			off = se.offset
		}
		return values, &Error{
			Location: Location{Document: len(values) + 1},
			Detail:   fmt.Sprintf("byte offset %d: invalid JSON after document %d: %v", off, len(values), serr),
		}, true
	}
}

// startsYAML reports whether rest, what follows a first JSON value, starts
// with a YAML comment or a document separator line.
func startsYAML(rest []byte) bool {
	if len(rest) > 0 && rest[0] == '#' {
		return true
	}
	_, ok := marker(rest, "---")
	return ok
}

// marker reports whether line (which may run on past its end of line) starts
// with the document marker m ("---" or "...") at column 0, and whether more
// than whitespace and a comment follows the marker on its line.
//
// A marker must be followed by a space, a tab or the end of the line (YAML
// 1.2); "---" may also be followed directly by a comment, as kubectl allows.
func marker(line []byte, m string) (content, ok bool) {
	if len(line) < 3 || string(line[:3]) != m {
		return false, false
	}
	rest := line[3:]
	if len(rest) > 0 {
		switch rest[0] {
		case ' ', '\t', '\r', '\n':
		case '#':
			if m != "---" {
				return false, false
			}
		default:
			return false, false
		}
	}
	if i := bytes.IndexByte(rest, '\n'); i >= 0 {
		rest = rest[:i]
	}
	rest = bytes.TrimLeft(rest, " \t\r")
	return len(rest) > 0 && rest[0] != '#', true
}

// splitYAML splits a YAML stream into its documents, in order:
//
//   - a line starting with "---" (see marker) starts a new document; the
//     marker line belongs to the new document only when content follows
//     the marker on that line ("--- {kind: Pod}"), since nothing is lost
//     by leaving out a line of just "---" and a comment;
//   - a line starting with "..." ends the document (and belongs to it);
//   - what precedes the first "---", or follows a "...", is no document when
//     it is only blank lines and comments, and directives ("%YAML 1.2")
//     stay with the document that follows them;
//   - an empty document (two separators in a row, a trailing separator) is
//     none; a document between separators that is only comments is one.
//
// Lines end in "\n" or "\r\n". A line break the splitter does not see ("\r"
// alone, NEL) cannot lose a document: the decoder refuses a document that
// holds two.
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	start := 0   // start of the current document
	bare := true // the current document has no "---" of its own
	emit := func(d []byte) {
		if len(d) == 0 || (bare && onlyComments(d)) {
			return
		}
		docs = append(docs, d)
	}
	for ls := 0; ls < len(data); {
		le := len(data)
		if i := bytes.IndexByte(data[ls:], '\n'); i >= 0 {
			le = ls + i + 1
		}
		line := data[ls:le]
		if content, ok := marker(line, "---"); ok {
			if prev := data[start:ls]; !(bare && hasDirectives(prev)) {
				emit(prev)
				start = le
				if content {
					start = ls
				}
			}
			bare = false
		} else if _, ok := marker(line, "..."); ok {
			emit(data[start:le])
			start, bare = le, true
		}
		ls = le
	}
	emit(data[start:])
	return docs
}

// onlyComments reports whether a chunk holds nothing but blank lines,
// comments and document end markers.
func onlyComments(d []byte) bool {
	for _, line := range lines(d) {
		if line == nil {
			return false
		}
		if _, end := marker(line, "..."); end {
			continue
		}
		if line = bytes.TrimSpace(line); len(line) > 0 && line[0] != '#' {
			return false
		}
	}
	return true
}

// otherBreaks are line breaks of YAML parsers other than "\n" and "\r\n":
// a lone CR (YAML 1.2), and NEL, LS and PS (YAML 1.1, and yaml.v3).
const otherBreaks = "\r\u0085\u2028\u2029"

// lines splits a chunk at "\n", dropping a "\r" before it. A line holding
// another line break is returned as nil: what follows that break on the
// line is not a comment, whatever precedes it.
func lines(d []byte) [][]byte {
	out := bytes.Split(d, []byte("\n"))
	for i, line := range out {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if bytes.ContainsAny(line, otherBreaks) {
			line = nil
		} else if line == nil {
			line = []byte{}
		}
		out[i] = line
	}
	return out
}

// hasDirectives reports whether a chunk holds only directives, comments and
// blank lines, and at least one directive.
func hasDirectives(d []byte) bool {
	found := false
	for _, line := range lines(d) {
		switch t := bytes.TrimSpace(line); {
		case line == nil:
			return false
		case len(t) == 0 || t[0] == '#':
		case line[0] == '%':
			found = true
		default:
			return false
		}
	}
	return found
}
