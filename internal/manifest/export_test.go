package manifest

// SplitForTest splits a file into its documents as Load does.
func SplitForTest(name string, data []byte) ([][]byte, error) {
	docs, err := fileDocuments(name, data)
	out := make([][]byte, len(docs))
	for i, d := range docs {
		out[i] = d.data
	}
	if err != nil {
		return out, err
	}
	return out, nil
}

// DamerauLevenshteinForTest is damerauLevenshtein.
var DamerauLevenshteinForTest = damerauLevenshtein

// ValidJSONForTest reports whether data is one JSON value, as the JSON
// stream scanner sees it.
func ValidJSONForTest(data []byte) bool {
	s := &jsonScanner{data: data}
	s.skipSpace()
	if s.value(0) != nil {
		return false
	}
	s.skipSpace()
	return s.pos == len(data)
}
