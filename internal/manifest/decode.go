package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	yaml "go.yaml.in/yaml/v3"
)

// yamlToJSON converts one YAML (or JSON) document to JSON. It resolves
// scalars by the YAML 1.2 core schema, as yaml.v3 does: an unquoted y, yes,
// on or no stays a string, unlike YAML 1.1 readers that turn a namespace
// called "y" into true. It returns nil for an empty document, and an error
// for text that holds more than one document (which the splitter should
// have split): a second document is never dropped.
func yamlToJSON(doc []byte) ([]byte, error) {
	var n yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("line %d: a second document starts here without a \"---\" line at column 0 that netfence can see", next.Line)
	}
	if n.Kind == 0 || (n.Kind == yaml.DocumentNode && len(n.Content) == 0) {
		return nil, nil
	}
	var buf bytes.Buffer
	cv := converter{budget: maxNodes + 4*len(doc)}
	if err := cv.writeNode(&buf, &n, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

const maxDepth = 200

// maxNodes bounds, with 4 per byte of the document, the nodes visited while
// expanding aliases and merge keys: a few hundred bytes of nested aliases
// ("billion laughs") would otherwise expand to gigabytes. A document without
// aliases never comes near it: each of its nodes takes at least a byte.
const maxNodes = 1 << 16

// converter holds what is left of a document's budget of node visits.
type converter struct{ budget int }

func (cv *converter) spend(n *yaml.Node) error {
	if cv.budget--; cv.budget < 0 {
		return fmt.Errorf("line %d: document too large once its aliases are expanded", n.Line)
	}
	return nil
}

func (cv *converter) writeNode(buf *bytes.Buffer, n *yaml.Node, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("line %d: document nested too deeply", n.Line)
	}
	if err := cv.spend(n); err != nil {
		return err
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			buf.WriteString("null")
			return nil
		}
		return cv.writeNode(buf, n.Content[0], depth+1)
	case yaml.AliasNode:
		if n.Alias == nil {
			return fmt.Errorf("line %d: unknown alias", n.Line)
		}
		return cv.writeNode(buf, n.Alias, depth+1)
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := cv.writeNode(buf, c, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	case yaml.MappingNode:
		pairs, err := cv.mappingPairs(n, depth)
		if err != nil {
			return err
		}
		buf.WriteByte('{')
		for i, p := range pairs {
			if i > 0 {
				buf.WriteByte(',')
			}
			k, _ := json.Marshal(p.key)
			buf.Write(k)
			buf.WriteByte(':')
			if err := cv.writeNode(buf, p.value, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
		return nil
	case yaml.ScalarNode:
		return writeScalar(buf, n)
	}
	return fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

type pair struct {
	key   string
	value *yaml.Node
}

// mappingPairs returns a mapping's keys and values in order, with merge
// keys (<<) expanded and duplicate keys refused.
func (cv *converter) mappingPairs(n *yaml.Node, depth int) ([]pair, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("line %d: document nested too deeply", n.Line)
	}
	var out []pair
	seen := map[string]int{}
	add := func(k string, v *yaml.Node, line int, merged bool) error {
		if i, dup := seen[k]; dup {
			if merged {
				return nil // explicit keys win over merged ones
			}
			if out[i].value != nil {
				return fmt.Errorf("line %d: mapping key %q already defined", line, k)
			}
		}
		seen[k] = len(out)
		out = append(out, pair{k, v})
		return nil
	}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		for k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: mapping keys must be scalars", k.Line)
		}
		if k.Tag == "!!merge" || (k.Value == "<<" && k.ShortTag() == "!!merge") {
			merges = append(merges, v)
			continue
		}
		if err := add(k.Value, v, k.Line, false); err != nil {
			return nil, err
		}
	}
	for _, m := range merges {
		for m.Kind == yaml.AliasNode && m.Alias != nil {
			m = m.Alias
		}
		srcs := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			srcs = m.Content
		}
		for _, s := range srcs {
			for s.Kind == yaml.AliasNode && s.Alias != nil {
				s = s.Alias
			}
			if s.Kind != yaml.MappingNode {
				return nil, fmt.Errorf("line %d: merge value must be a mapping", s.Line)
			}
			if err := cv.spend(s); err != nil {
				return nil, err
			}
			ps, err := cv.mappingPairs(s, depth+1)
			if err != nil {
				return nil, err
			}
			for _, p := range ps {
				if err := add(p.key, p.value, s.Line, true); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

func writeScalar(buf *bytes.Buffer, n *yaml.Node) error {
	switch n.ShortTag() {
	case "!!null":
		buf.WriteString("null")
	case "!!bool":
		if n.Value == "true" || n.Value == "false" {
			buf.WriteString(n.Value)
			return nil
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		buf.WriteString(strconv.FormatBool(b))
	case "!!int":
		if i, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
			buf.WriteString(strconv.FormatInt(i, 10))
			return nil
		}
		var i int64
		if err := n.Decode(&i); err != nil {
			var u uint64
			if err2 := n.Decode(&u); err2 != nil {
				return fmt.Errorf("line %d: %w", n.Line, err)
			}
			buf.WriteString(strconv.FormatUint(u, 10))
			return nil
		}
		buf.WriteString(strconv.FormatInt(i, 10))
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("line %d: %q cannot be represented in JSON", n.Line, n.Value)
		}
		buf.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
	default: // !!str, !!timestamp, !!binary and custom tags keep their text
		s, _ := json.Marshal(n.Value)
		buf.Write(s)
	}
	return nil
}
