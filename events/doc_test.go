package events

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

const docPath = "../docs/events.md"

// docExample is one ```json block of docs/events.md.
type docExample struct {
	line    int    // line of the opening fence
	heading string // text of the closest "### " heading above it
	body    []byte
}

// docExamples returns every ```json block of docs/events.md.
func docExamples(t testing.TB) []docExample {
	t.Helper()
	f, err := os.Open(docPath)
	if err != nil {
		t.Fatalf("open the event documentation: %v", err)
	}
	defer f.Close()
	var (
		out     []docExample
		cur     *docExample
		heading string
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.body = append(cur.body, line...)
			cur.body = append(cur.body, '\n')
		case strings.TrimSpace(line) == "```json":
			cur = &docExample{line: n, heading: heading}
		case strings.HasPrefix(line, "### "):
			heading = strings.TrimSpace(strings.TrimPrefix(line, "### "))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", docPath, err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: unterminated ```json block", docPath, cur.line)
	}
	return out
}

// TestDocExamples keeps docs/events.md honest: every ```json block is a
// complete event that Decode accepts, written exactly as Encode writes it
// (indented), under the heading of its type, and every type has exactly one.
func TestDocExamples(t *testing.T) {
	examples := docExamples(t)
	count := make(map[Type]int)
	for _, ex := range examples {
		e, err := Decode(ex.body)
		if err != nil {
			t.Errorf("%s:%d: example does not decode: %v", docPath, ex.line, err)
			continue
		}
		count[e.Type]++
		if ex.heading != string(e.Type) {
			t.Errorf("%s:%d: %s example under heading %q", docPath, ex.line, e.Type, ex.heading)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, ex.body); err != nil {
			t.Fatalf("%s:%d: %v", docPath, ex.line, err)
		}
		again, err := e.Encode()
		if err != nil {
			t.Errorf("%s:%d: re-encode: %v", docPath, ex.line, err)
			continue
		}
		if !bytes.Equal(again, compact.Bytes()) {
			t.Errorf("%s:%d: example is not what Encode writes:\n doc    %s\n Encode %s", docPath, ex.line, compact.Bytes(), again)
		}
		if _, err := Subject("valet", e); err != nil {
			t.Errorf("%s:%d: Subject: %v", docPath, ex.line, err)
		}
	}
	for _, typ := range Types() {
		if n := count[typ]; n != 1 {
			t.Errorf("%s: %d examples of %s, want exactly 1", docPath, n, typ)
		}
	}
}
