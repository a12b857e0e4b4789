package token

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

var kinds = []Kind{KindRefresh, KindCode, KindDevice}

// newToken returns a new token of kind in a new family.
func newToken(t testing.TB, kind Kind) Token {
	t.Helper()
	fid, err := NewFamilyID()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := New(kind, fid)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestNewParseRoundTrip(t *testing.T) {
	for _, kind := range kinds {
		t.Run(string(kind), func(t *testing.T) {
			tok := newToken(t, kind)
			if len(tok.Value) != Len {
				t.Fatalf("len = %d, want %d", len(tok.Value), Len)
			}
			if want := string(kind) + "_" + tok.FID + "."; !strings.HasPrefix(tok.Value, want) {
				t.Errorf("value does not start with %q", want)
			}
			if tok.Kind != kind || !ValidFamilyID(tok.FID) {
				t.Errorf("kind %q fid %q", tok.Kind, tok.FID)
			}
			if tok.Hash != sha256.Sum256([]byte(tok.Value)) || tok.Hash != HashOf(tok.Value) {
				t.Error("Hash is not the SHA-256 of Value")
			}
			p, err := Parse(tok.Value)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if want := (Parsed{Kind: kind, FID: tok.FID, Hash: tok.Hash}); p != want {
				t.Errorf("Parse = %+v, want %+v", p, want)
			}
			if _, err := ParseKind(kind, tok.Value); err != nil {
				t.Errorf("ParseKind(own kind): %v", err)
			}
			for _, other := range kinds {
				if other == kind {
					continue
				}
				_, err := ParseKind(other, tok.Value)
				if !errors.Is(err, ErrWrongKind) || !errors.Is(err, ErrMalformed) {
					t.Errorf("ParseKind(%s) err = %v, want ErrWrongKind wrapping ErrMalformed", other, err)
				}
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	fid, err := NewFamilyID()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		kind Kind
		fid  string
	}{
		{"unknown kind", "vxx", fid},
		{"empty kind", "", fid},
		{"upper-case kind", "VRT", fid},
		{"empty fid", KindRefresh, ""},
		{"short fid", KindRefresh, fid[:21]},
		{"long fid", KindRefresh, fid + "A"},
		{"fid with brace", KindRefresh, "{" + fid[1:]},
		{"non-canonical fid", KindRefresh, fid[:21] + "B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := New(tt.kind, tt.fid)
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("err = %v, want ErrMalformed", err)
			}
			if tok != (Token{}) {
				t.Errorf("got a token on error: %s", tok)
			}
		})
	}
}

func TestEntropyLengths(t *testing.T) {
	strict := base64.RawURLEncoding.Strict()
	tests := []struct {
		name  string
		gen   func() (string, error)
		chars int
		bytes int
	}{
		{"NewFamilyID", NewFamilyID, FamilyIDLen, FamilyIDBytes},
		{"NewID", NewID, IDLen, 16},
		{"secret", func() (string, error) {
			tok, err := New(KindRefresh, "AAAAAAAAAAAAAAAAAAAAAA")
			return tok.Value[secStart:], err
		}, SecretLen, SecretBytes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.gen()
			if err != nil {
				t.Fatal(err)
			}
			if len(s) != tt.chars {
				t.Errorf("len = %d, want %d", len(s), tt.chars)
			}
			b, err := strict.DecodeString(s)
			if err != nil || len(b) != tt.bytes {
				t.Errorf("decodes to %d bytes (%v), want %d", len(b), err, tt.bytes)
			}
			if b64.EncodeToString(b) != s {
				t.Error("not the canonical encoding")
			}
		})
	}
	if SecretBytes*8 < 256 {
		t.Errorf("secret has %d bits, want at least 256", SecretBytes*8)
	}
}

func TestDistinct(t *testing.T) {
	const n = 2000
	seen := make(map[string]bool, 4*n)
	add := func(s string, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if seen[s] {
			t.Fatalf("duplicate %q", s)
		}
		seen[s] = true
	}
	fid, _ := NewFamilyID()
	for range n {
		add(NewFamilyID())
		add(NewID())
		tok, err := New(KindRefresh, fid)
		add(tok.Value[secStart:], err)
	}
}

func TestParseRejects(t *testing.T) {
	valid := "vrt_9jOiDyMpH7nGDAYKBYHT5Q.FgTwtAjugEeAwtEw3HDzEczVoehiTw-QtV8bK9iamqA"
	if _, err := Parse(valid); err != nil {
		t.Fatalf("the base case must parse: %v", err)
	}
	fid, sec := valid[4:26], valid[27:]
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"prefix only", "vrt_"},
		{"unknown prefix", "vxt_" + fid + "." + sec},
		{"upper-case prefix", "VRT_" + fid + "." + sec},
		{"access-token-like prefix", "vat_" + fid + "." + sec},
		{"dash after prefix", "vrt-" + fid + "." + sec},
		{"no underscore", "vrtX" + fid + "." + sec},
		{"underscore for dot", "vrt_" + fid + "_" + sec},
		{"dot moved left", "vrt_" + fid[:21] + "." + fid[21:] + sec},
		{"dot moved right", "vrt_" + fid + sec[:1] + "." + sec[1:]},
		{"short fid long secret", "vrt_" + fid[:21] + "." + sec + "A"},
		{"long fid short secret", "vrt_" + fid + "A." + sec[:42]},
		{"short secret", "vrt_" + fid + "." + sec[:42]},
		{"long secret", "vrt_" + fid + "." + sec + "A"},
		{"extra char", valid + "A"},
		{"trailing newline", valid + "\n"},
		{"trailing space", valid + " "},
		{"leading space", " " + valid},
		{"std base64 plus in fid", "vrt_+" + fid[1:] + "." + sec},
		{"std base64 slash in secret", "vrt_" + fid + "./" + sec[1:]},
		{"padding", "vrt_" + fid[:20] + "==." + sec},
		{"non-canonical fid end", "vrt_" + fid[:21] + "R." + sec},
		{"non-canonical secret end", "vrt_" + fid + "." + sec[:42] + "B"},
		{"NUL in secret", "vrt_" + fid + "." + sec[:10] + "\x00" + sec[11:]},
		{"non-ASCII same byte length", "vrt_" + fid + "." + sec[:40] + "é" + sec[42:]},
		{"brace in fid", "vrt_{" + fid[1:] + "." + sec},
		{"huge", strings.Repeat(valid, 1000)},
		{"secret only", sec},
		{"Bearer prefix", "Bearer " + valid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse = %+v, %v; want ErrMalformed", p, err)
			}
			if p != (Parsed{}) {
				t.Errorf("non-zero Parsed on error: %+v", p)
			}
			if len(tt.in) > 10 && strings.Contains(err.Error(), tt.in[4:10]) {
				t.Errorf("error %q quotes the input", err)
			}
			if _, err := ParseKind(KindRefresh, tt.in); !errors.Is(err, ErrMalformed) || errors.Is(err, ErrWrongKind) {
				t.Errorf("ParseKind err = %v, want ErrMalformed but not ErrWrongKind", err)
			}
		})
	}
}

func TestValidFamilyID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"9jOiDyMpH7nGDAYKBYHT5Q", true},
		{"AAAAAAAAAAAAAAAAAAAAAA", true},
		{"_-_-_-_-_-_-_-_-_-_-_w", true},
		{"9jOiDyMpH7nGDAYKBYHT5R", false}, // non-canonical: low bits set
		{"9jOiDyMpH7nGDAYKBYHT5", false},
		{"9jOiDyMpH7nGDAYKBYHT5QA", false},
		{"9jOiDyMpH7nGDAYKBYHT+Q", false},
		{"9jOiDyMpH7nGDAYKBYH{5}", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := ValidFamilyID(tt.in); got != tt.want {
				t.Errorf("ValidFamilyID(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestKind(t *testing.T) {
	for _, k := range kinds {
		if !k.Valid() || k.String() != string(k) || len(k) != PrefixLen {
			t.Errorf("kind %q", k)
		}
	}
	for _, k := range []Kind{"", "vr", "vrtt", "VRT", "vat"} {
		if k.Valid() {
			t.Errorf("Kind(%q).Valid() = true", k)
		}
	}
}

func TestRedaction(t *testing.T) {
	tok := newToken(t, KindRefresh)
	secret := tok.Value[secStart:]
	want := "vrt_" + tok.FID + ".***"
	if tok.String() != want || tok.Redacted() != want {
		t.Fatalf("String = %q, want %q", tok.String(), want)
	}

	type wrapper struct {
		Name  string
		Token Token
		Ptr   *Token
	}
	var logBuf, jsonLogBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("issued", "token", tok, "ptr", &tok)
	slog.New(slog.NewJSONHandler(&jsonLogBuf, nil)).Info("issued", "token", tok, "wrapped", wrapper{Token: tok})
	jsonOut, err := json.Marshal(wrapper{Name: "x", Token: tok, Ptr: &tok})
	if err != nil {
		t.Fatal(err)
	}
	textOut, err := tok.MarshalText()
	if err != nil {
		t.Fatal(err)
	}

	outputs := map[string]string{
		"%v":              fmt.Sprintf("%v", tok),
		"%s":              fmt.Sprintf("%s", tok),
		"%+v":             fmt.Sprintf("%+v", tok),
		"%#v":             fmt.Sprintf("%#v", tok),
		"%q":              fmt.Sprintf("%q", tok),
		"%x":              fmt.Sprintf("%x", tok),
		"%X":              fmt.Sprintf("%X", tok),
		"%d":              fmt.Sprintf("%d", tok),
		"%v %s %+v":       fmt.Sprintf("%v %s %+v", tok, tok, tok),
		"pointer %+v":     fmt.Sprintf("%+v", &tok),
		"pointer %#v":     fmt.Sprintf("%#v", &tok),
		"in struct %+v":   fmt.Sprintf("%+v", wrapper{Token: tok, Ptr: &tok}),
		"in struct %#v":   fmt.Sprintf("%#v", wrapper{Token: tok}),
		"in slice":        fmt.Sprint([]Token{tok}),
		"in map":          fmt.Sprint(map[string]Token{"t": tok}),
		"Sprint":          fmt.Sprint(tok),
		"Errorf":          fmt.Errorf("issue %v: %w", tok, errors.New("x")).Error(),
		"json":            string(jsonOut),
		"MarshalText":     string(textOut),
		"slog text":       logBuf.String(),
		"slog json":       jsonLogBuf.String(),
		"GoString":        tok.GoString(),
		"slog LogValue":   tok.LogValue().String(),
		"padded %-80v":    fmt.Sprintf("%-80v", tok),
		"Parsed of token": fmt.Sprintf("%#v", must(Parse(tok.Value))),
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(out, secret) || strings.Contains(out, secret[:16]) {
				t.Errorf("output carries the secret: %s", out)
			}
			if name != "Parsed of token" && !strings.Contains(out, tok.FID) {
				t.Errorf("output lost the family id: %s", out)
			}
		})
	}
	if (Token{}).String() != "" {
		t.Errorf("zero Token prints %q", Token{}.String())
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestHash(t *testing.T) {
	h := HashOf("vrt_9jOiDyMpH7nGDAYKBYHT5Q.FgTwtAjugEeAwtEw3HDzEczVoehiTw-QtV8bK9iamqA")
	const hexWant = "555dd7b4ff866d90f30ce4bdb83ff09d17488ca08e0b74f8d70d929bb862237a"
	if h.String() != hexWant {
		t.Fatalf("String = %s, want %s", h, hexWant)
	}
	b := h.Bytes()
	b[0] ^= 0xff
	if h.String() != hexWant {
		t.Error("Bytes returned the hash's own storage")
	}
	text, _ := h.MarshalText()
	var back Hash
	if err := back.UnmarshalText(text); err != nil || back != h {
		t.Errorf("text round trip: %v, %s", err, back)
	}
	for _, bad := range []string{"", hexWant[:62], hexWant + "00", "zz" + hexWant[2:]} {
		if err := back.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("UnmarshalText(%q) accepted", bad)
		}
	}
	if back != h {
		t.Error("failed UnmarshalText changed the hash")
	}
	if h.IsZero() || !(Hash{}).IsZero() {
		t.Error("IsZero")
	}
	long := strings.Repeat("x", 1000)
	if HashOf(long) != sha256.Sum256([]byte(long)) || HashOf("") != sha256.Sum256(nil) {
		t.Error("HashOf differs from sha256.Sum256")
	}
}

func BenchmarkNew(b *testing.B) {
	fid, err := NewFamilyID()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(KindRefresh, fid); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	tok := newToken(b, KindRefresh)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(tok.Value); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseGarbage(b *testing.B) {
	garbage := strings.Repeat("A", 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(garbage); err == nil {
			b.Fatal("accepted garbage")
		}
	}
}

func BenchmarkNewFamilyID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewFamilyID(); err != nil {
			b.Fatal(err)
		}
	}
}
