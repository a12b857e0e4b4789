package token

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docPath is docs/tokens.md, relative to this package's directory.
const docPath = "../../docs/tokens.md"

// TestDocTokens keeps docs/tokens.md true: its example tokens parse, its
// example hash is the code's, and the lengths, prefixes, alphabets and claim
// name it states are the code's.
func TestDocTokens(t *testing.T) {
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("read %s (the page this package implements): %v", docPath, err)
	}
	doc := string(raw)

	t.Run("example tokens parse", func(t *testing.T) {
		re := regexp.MustCompile(`\b(vrt|vac|vdc)_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)
		found := map[Kind]int{}
		for _, m := range re.FindAllStringSubmatch(doc, -1) {
			p, err := ParseKind(Kind(m[1]), m[0])
			if err != nil {
				t.Errorf("example %q does not parse: %v", m[0], err)
				continue
			}
			found[p.Kind]++
		}
		for _, k := range kinds {
			if found[k] == 0 {
				t.Errorf("no example of a %s token", k)
			}
		}
	})

	t.Run("example hash", func(t *testing.T) {
		re := regexp.MustCompile("`([^`]+)` hashes to `([0-9a-f]+)`")
		ms := re.FindAllStringSubmatch(doc, -1)
		if len(ms) == 0 {
			t.Fatal("no \"`token` hashes to `hex`\" example")
		}
		for _, m := range ms {
			if got := HashOf(m[1]).String(); got != m[2] {
				t.Errorf("doc says %s hashes to %s; it hashes to %s", m[1], m[2], got)
			}
		}
	})

	t.Run("stated lengths and entropy", func(t *testing.T) {
		for _, want := range []string{
			fmt.Sprintf("exactly %d characters", Len),
			fmt.Sprintf("%d-character prefix", PrefixLen),
			fmt.Sprintf("%d-character\nfamily id", FamilyIDLen),
			fmt.Sprintf("%d-character secret", SecretLen),
			fmt.Sprintf("family id: %d random bytes, %d characters", FamilyIDBytes, FamilyIDLen),
			fmt.Sprintf("%d random bytes, %d characters", SecretBytes, SecretLen),
			fmt.Sprintf("| secret | %d | %d |", SecretBytes, SecretBytes*8),
			fmt.Sprintf("| family id | %d | %d |", FamilyIDBytes, FamilyIDBytes*8),
			fmt.Sprintf("`token.NewID`: %d characters, %d random bits", IDLen, FamilyIDBytes*8),
			fmt.Sprintf("| `%s` |", FamilyClaim),
			fmt.Sprintf("A user code is %d characters", UserCodeChars),
			fmt.Sprintf("%d consonants `%s`", len(UserCodeAlphabet), UserCodeAlphabet),
			fmt.Sprintf("longer than %d bytes", maxUserCodeInput),
		} {
			if !strings.Contains(doc, want) {
				t.Errorf("doc does not state %q", want)
			}
		}
	})

	t.Run("grammar", func(t *testing.T) {
		rule := func(name string) []string {
			t.Helper()
			m := regexp.MustCompile(`(?m)^` + name + ` +=([^;\n]*)`).FindStringSubmatch(doc)
			if m == nil {
				t.Fatalf("no ABNF rule %s", name)
			}
			var alts []string
			for _, q := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
				alts = append(alts, q[1])
			}
			slices.Sort(alts)
			return alts
		}
		var wantKinds []string
		for _, k := range kinds {
			wantKinds = append(wantKinds, string(k))
		}
		slices.Sort(wantKinds)
		if got := rule("kind"); !slices.Equal(got, wantKinds) {
			t.Errorf("ABNF kind = %v, want %v", got, wantKinds)
		}
		// The characters that may end a canonical encoding of 16 and 32 bytes.
		ends := func(chars int) []string {
			var out []string
			for c := range 256 {
				if s := strings.Repeat("A", chars-1) + string(rune(c)); c < 128 && canonicalB64(s) {
					out = append(out, string(rune(c)))
				}
			}
			slices.Sort(out)
			return out
		}
		if got, want := rule("b64end16"), ends(FamilyIDLen); !slices.Equal(got, want) {
			t.Errorf("ABNF b64end16 = %v, want %v", got, want)
		}
		if got, want := rule("b64end32"), ends(SecretLen); !slices.Equal(got, want) {
			t.Errorf("ABNF b64end32 = %v, want %v", got, want)
		}
		if !strings.Contains(doc, fmt.Sprintf("fid       = %db64char b64end16", FamilyIDLen-1)) ||
			!strings.Contains(doc, fmt.Sprintf("secret    = %db64char b64end32", SecretLen-1)) {
			t.Error("ABNF repetition counts of fid or secret disagree with the code")
		}
	})

	t.Run("example user codes", func(t *testing.T) {
		_, section, ok := strings.Cut(doc, "## User codes")
		if !ok {
			t.Fatal("no \"## User codes\" section")
		}
		re := regexp.MustCompile("`([A-Za-z]{4}[- ]?[A-Za-z]{4})`")
		canon := map[string]bool{}
		for _, m := range re.FindAllStringSubmatch(section, -1) {
			got, ok := NormalizeUserCode(m[1])
			if !ok {
				t.Errorf("example user code %q does not normalize", m[1])
				continue
			}
			if m[1] != "XXXX-XXXX" {
				canon[got] = true
			}
		}
		if len(canon) != 1 {
			t.Errorf("example user codes normalize to %v, want one code", canon)
		}
	})
}
