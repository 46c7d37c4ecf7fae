package enrich

import (
	"bytes"
	"io"
	"strings"
)

func bytesReader(b []byte) io.Reader   { return bytes.NewReader(b) }
func stringsReader(s string) io.Reader { return strings.NewReader(s) }
func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
