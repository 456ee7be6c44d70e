package crd

import (
	"fmt"

	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

// DecodeYAML decodes one YAML (or JSON) document into the form Validate
// expects: a map[string]any whose integers are int64, as the API server
// decodes request bodies. Plain yaml.Unmarshal yields float64 numbers,
// which CEL rules reject ("expected int, got float64").
func DecodeYAML(data []byte) (map[string]any, error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("converting YAML to JSON: %w", err)
	}
	return DecodeJSON(j)
}

// DecodeJSON decodes one JSON object into the form Validate expects: a
// map[string]any whose integers are int64.
func DecodeJSON(data []byte) (map[string]any, error) {
	var v any
	if err := utiljson.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("decoding JSON: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("decoding JSON: expected an object, got %s", jsonType(v))
	}
	return m, nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	default:
		return "a number"
	}
}
