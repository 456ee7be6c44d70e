package synth

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// WriteYAML writes the objects as one multi-document YAML stream, documents
// separated by "---": namespaces, then nodes, then pods, then
// NetworkPolicies, then ClusterNetworkPolicies.
//
// Each object is encoded with encoding/json (so field names and omitempty
// follow the API types exactly) and the JSON is turned into block-style
// YAML in the layout kubectl uses, with keys in the types' field order and
// null fields left out. This is much faster than sigs.k8s.io/yaml, and the
// output reads back with it into equal objects.
func (o *Objects) WriteYAML(w io.Writer) error {
	objs := make([]any, 0, len(o.Namespaces)+len(o.Nodes)+len(o.Pods)+len(o.Policies)+len(o.ClusterPolicies))
	objs = appendAll(objs, o.Namespaces)
	objs = appendAll(objs, o.Nodes)
	objs = appendAll(objs, o.Pods)
	objs = appendAll(objs, o.Policies)
	objs = appendAll(objs, o.ClusterPolicies)
	bw := bufio.NewWriterSize(w, 1<<18)
	if err := writeDocs(bw, objs); err != nil {
		return err
	}
	return bw.Flush()
}

// appendAll appends the elements of xs to objs.
func appendAll[T any](objs []any, xs []T) []any {
	for _, x := range xs {
		objs = append(objs, x)
	}
	return objs
}

// chunkSize is the number of objects a worker converts at a time.
const chunkSize = 256

// writeDocs converts objs in chunks on all CPUs and writes the chunks in
// order.
func writeDocs(w io.Writer, objs []any) error {
	nchunks := (len(objs) + chunkSize - 1) / chunkSize
	workers := min(runtime.GOMAXPROCS(0), nchunks)
	if workers <= 1 {
		var c yamlConv
		for i := range nchunks {
			out, err := c.chunk(objs, i, nil)
			if err != nil {
				return err
			}
			if _, err := w.Write(out); err != nil {
				return err
			}
		}
		return nil
	}

	type result struct {
		buf []byte
		err error
	}
	// Each chunk gets a channel; a window of 2*workers chunks is in flight
	// so memory stays bounded while the writer waits for the oldest one.
	results := make([]chan result, nchunks)
	for i := range results {
		results[i] = make(chan result, 1)
	}
	next := make(chan int)
	free := make(chan []byte, 2*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c yamlConv
			for i := range next {
				var buf []byte
				select {
				case buf = <-free:
				default:
				}
				out, err := c.chunk(objs, i, buf[:0])
				results[i] <- result{out, err}
			}
		}()
	}
	window := make(chan struct{}, 2*workers)
	go func() {
		for i := range nchunks {
			window <- struct{}{}
			next <- i
		}
		close(next)
	}()
	var werr error
	for i := range nchunks {
		r := <-results[i]
		<-window
		if werr == nil {
			if r.err != nil {
				werr = r.err
			} else if _, err := w.Write(r.buf); err != nil {
				werr = err
			}
		}
		select {
		case free <- r.buf:
		default:
		}
	}
	wg.Wait()
	return werr
}

// yamlConv converts JSON documents to block YAML. It is not safe for
// concurrent use.
type yamlConv struct {
	in  []byte
	out []byte
}

// chunk appends the YAML of chunk i of objs to buf.
func (c *yamlConv) chunk(objs []any, i int, buf []byte) ([]byte, error) {
	c.out = buf
	end := min((i+1)*chunkSize, len(objs))
	for j := i * chunkSize; j < end; j++ {
		js, err := json.Marshal(objs[j])
		if err != nil {
			return nil, fmt.Errorf("synth: encoding object %d: %w", j, err)
		}
		if j > 0 {
			c.out = append(c.out, "---\n"...)
		}
		if err := c.doc(js); err != nil {
			return nil, fmt.Errorf("synth: object %d: %w", j, err)
		}
	}
	return c.out, nil
}

// jsonToYAML returns the block YAML of one JSON value.
func jsonToYAML(js []byte) ([]byte, error) {
	var c yamlConv
	if err := c.doc(js); err != nil {
		return nil, err
	}
	return c.out, nil
}

// doc appends the YAML of the JSON document js.
func (c *yamlConv) doc(js []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(convError); ok {
				err = e
				return
			}
			panic(r)
		}
	}()
	c.in = js
	p := c.ws(0)
	switch {
	case p < len(js) && js[p] == '{' && c.hasMembers(p):
		p = c.mapping(p, 0, false)
	case p < len(js) && js[p] == '[' && c.hasItems(p):
		p = c.sequence(p, 0, false)
	default:
		// A scalar or an empty container: value writes " x\n".
		start := len(c.out)
		p = c.value(p, 0, false)
		c.out = append(c.out[:start], c.out[start+1:]...)
	}
	if p = c.ws(p); p != len(js) {
		c.fail(p, "trailing data")
	}
	return nil
}

type convError struct{ msg string }

func (e convError) Error() string { return e.msg }

func (c *yamlConv) fail(p int, what string) {
	panic(convError{fmt.Sprintf("synth: bad JSON at offset %d: %s", p, what)})
}

// ws skips white space from p.
func (c *yamlConv) ws(p int) int {
	for p < len(c.in) {
		switch c.in[p] {
		case ' ', '\t', '\n', '\r':
			p++
		default:
			return p
		}
	}
	return p
}

func (c *yamlConv) expect(p int, b byte) int {
	p = c.ws(p)
	if p >= len(c.in) || c.in[p] != b {
		c.fail(p, fmt.Sprintf("expected %q", b))
	}
	return p + 1
}

// str returns the end of the JSON string starting at p and whether it has
// escapes.
func (c *yamlConv) str(p int) (int, bool) {
	if p >= len(c.in) || c.in[p] != '"' {
		c.fail(p, "expected string")
	}
	esc := false
	for q := p + 1; q < len(c.in); q++ {
		switch c.in[q] {
		case '\\':
			esc = true
			q++
		case '"':
			return q + 1, esc
		}
	}
	c.fail(p, "unterminated string")
	return 0, false
}

// skip returns the end of the JSON value at p.
func (c *yamlConv) skip(p int) int {
	p = c.ws(p)
	if p >= len(c.in) {
		c.fail(p, "expected value")
	}
	switch c.in[p] {
	case '"':
		e, _ := c.str(p)
		return e
	case '{', '[':
		depth := 0
		for q := p; q < len(c.in); q++ {
			switch c.in[q] {
			case '"':
				e, _ := c.str(q)
				q = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return q + 1
				}
			}
		}
		c.fail(p, "unterminated container")
	}
	q := p
	for q < len(c.in) {
		switch c.in[q] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return q
		}
		q++
	}
	return q
}

// isNull reports whether the value at p is null.
func (c *yamlConv) isNull(p int) bool {
	p = c.ws(p)
	return len(c.in)-p >= 4 && string(c.in[p:p+4]) == "null"
}

// hasMembers reports whether the object at p has a member that is not
// null (null members are not written).
func (c *yamlConv) hasMembers(p int) bool {
	p = c.ws(p) + 1
	for {
		p = c.ws(p)
		if p < len(c.in) && c.in[p] == '}' {
			return false
		}
		e, _ := c.str(p)
		v := c.expect(e, ':')
		if !c.isNull(v) {
			return true
		}
		p = c.ws(c.skip(v))
		if p < len(c.in) && c.in[p] == ',' {
			p++
		}
	}
}

// hasItems reports whether the array at p is not empty.
func (c *yamlConv) hasItems(p int) bool {
	p = c.ws(c.ws(p) + 1)
	return p < len(c.in) && c.in[p] != ']'
}

func (c *yamlConv) indent(n int) {
	for range n {
		c.out = append(c.out, ' ')
	}
}

// mapping writes the members of the object at p with keys at column col;
// the first key goes on the current line when inline. It returns the end
// of the object.
func (c *yamlConv) mapping(p, col int, inline bool) int {
	p = c.ws(p) + 1
	first := true
	for {
		p = c.ws(p)
		if p >= len(c.in) {
			c.fail(p, "unterminated object")
		}
		if c.in[p] == '}' {
			return p + 1
		}
		if c.in[p] == ',' {
			p++
			continue
		}
		ke, kesc := c.str(p)
		v := c.expect(ke, ':')
		if c.isNull(v) {
			p = c.skip(v)
			continue
		}
		if !first || !inline {
			c.indent(col)
		}
		first = false
		c.scalarString(c.in[p:ke], kesc)
		c.out = append(c.out, ':')
		p = c.value(v, col, false)
	}
}

// sequence writes the items of the array at p with dashes at column col;
// the first item goes on the current line when inline.
func (c *yamlConv) sequence(p, col int, inline bool) int {
	p = c.ws(p) + 1
	first := true
	for {
		p = c.ws(p)
		if p >= len(c.in) {
			c.fail(p, "unterminated array")
		}
		if c.in[p] == ']' {
			return p + 1
		}
		if c.in[p] == ',' {
			p++
			continue
		}
		if !first || !inline {
			c.indent(col)
		}
		first = false
		c.out = append(c.out, '-')
		p = c.value(p, col+2, true)
	}
}

// value writes the value at p after a "key:" (afterDash false; col is the
// key's column) or a "-" (afterDash true; col is the column after "- ").
func (c *yamlConv) value(p, col int, afterDash bool) int {
	p = c.ws(p)
	if p >= len(c.in) {
		c.fail(p, "expected value")
	}
	switch c.in[p] {
	case '{':
		if !c.hasMembers(p) {
			c.out = append(c.out, " {}\n"...)
			return c.skip(p)
		}
		if afterDash {
			c.out = append(c.out, ' ')
			return c.mapping(p, col, true)
		}
		c.out = append(c.out, '\n')
		return c.mapping(p, col+2, false)
	case '[':
		if !c.hasItems(p) {
			c.out = append(c.out, " []\n"...)
			return c.skip(p)
		}
		if afterDash {
			c.out = append(c.out, ' ')
			return c.sequence(p, col, true)
		}
		c.out = append(c.out, '\n')
		return c.sequence(p, col, false)
	case '"':
		e, esc := c.str(p)
		c.out = append(c.out, ' ')
		c.scalarString(c.in[p:e], esc)
		c.out = append(c.out, '\n')
		return e
	default:
		e := c.skip(p)
		c.out = append(c.out, ' ')
		c.out = append(c.out, c.in[p:e]...)
		c.out = append(c.out, '\n')
		return e
	}
}

// scalarString writes the JSON string token tok as a plain YAML scalar when
// that is unambiguous, else as a double-quoted one (JSON string syntax is
// valid YAML double-quoted syntax).
func (c *yamlConv) scalarString(tok []byte, escaped bool) {
	s := tok[1 : len(tok)-1]
	if !escaped && plainSafe(s) {
		c.out = append(c.out, s...)
		return
	}
	c.out = append(c.out, tok...)
}

// plainSafe reports whether s can be written as a plain scalar and read
// back as the same string by YAML 1.1 and 1.2 parsers: it starts with a
// letter, holds only letters, digits and ._/-: (a colon never last), and is
// not a word that YAML reads as a boolean or null.
func plainSafe(s []byte) bool {
	if len(s) == 0 || !isLetter(s[0]) || s[len(s)-1] == ':' {
		return false
	}
	for _, b := range s {
		if !isLetter(b) && (b < '0' || b > '9') && b != '.' && b != '_' && b != '/' && b != '-' && b != ':' {
			return false
		}
	}
	if len(s) <= 5 {
		switch lower(s) {
		case "y", "n", "yes", "no", "on", "off", "true", "false", "null":
			return false
		}
	}
	return true
}

func isLetter(b byte) bool { return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }

func lower(s []byte) string {
	b := make([]byte, len(s))
	for i, x := range s {
		if x >= 'A' && x <= 'Z' {
			x += 'a' - 'A'
		}
		b[i] = x
	}
	return string(b)
}
