package token

import (
	"math"
	"strings"
	"testing"
)

func TestNewUserCode(t *testing.T) {
	const n = 20000
	counts := make(map[byte]int)
	distinct := make(map[string]bool, n)
	for range n {
		code, err := NewUserCode()
		if err != nil {
			t.Fatal(err)
		}
		if len(code) != UserCodeChars+1 || code[4] != '-' {
			t.Fatalf("code %q is not XXXX-XXXX", code)
		}
		for i := 0; i < len(code); i++ {
			if i == 4 {
				continue
			}
			if !strings.ContainsRune(UserCodeAlphabet, rune(code[i])) {
				t.Fatalf("code %q has %q outside the alphabet", code, code[i])
			}
			counts[code[i]]++
		}
		if got, ok := NormalizeUserCode(code); !ok || got != code {
			t.Fatalf("NormalizeUserCode(%q) = %q, %v; want it unchanged", code, got, ok)
		}
		distinct[code] = true
	}
	// 20^8 codes: 20000 draws collide with probability ~1.6e-3 per pair
	// count; allow a handful rather than a flaky zero.
	if len(distinct) < n-5 {
		t.Errorf("only %d distinct codes of %d", len(distinct), n)
	}
	// Every letter is used, roughly uniformly: expected n*8/20 = 8000 each;
	// 6 standard deviations (~ 6*86) is far from any real bias.
	if len(counts) != len(UserCodeAlphabet) {
		t.Errorf("%d letters used, want %d", len(counts), len(UserCodeAlphabet))
	}
	exp := float64(n*UserCodeChars) / float64(len(UserCodeAlphabet))
	sd := math.Sqrt(exp * (1 - 1/float64(len(UserCodeAlphabet))))
	for c, got := range counts {
		if math.Abs(float64(got)-exp) > 6*sd {
			t.Errorf("letter %q drawn %d times, expected about %.0f", c, got, exp)
		}
	}
	if bits := UserCodeChars * math.Log2(float64(len(UserCodeAlphabet))); bits < 34.5 {
		t.Errorf("user code has %.1f bits, want at least 34.5", bits)
	}
}

func TestUserCodeAlphabet(t *testing.T) {
	if len(UserCodeAlphabet) != 20 {
		t.Fatalf("alphabet has %d letters, want 20", len(UserCodeAlphabet))
	}
	for i := 0; i < len(UserCodeAlphabet); i++ {
		c := UserCodeAlphabet[i]
		if c < 'A' || c > 'Z' || strings.IndexByte("AEIOUY", c) >= 0 {
			t.Errorf("%q is not an upper-case consonant", c)
		}
		if strings.IndexByte(UserCodeAlphabet[i+1:], c) >= 0 {
			t.Errorf("%q repeats", c)
		}
	}
}

func TestNormalizeUserCode(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"canonical", "WDJB-MJHT", "WDJB-MJHT", true},
		{"lower case", "wdjb-mjht", "WDJB-MJHT", true},
		{"mixed case", "wDjB-MjHt", "WDJB-MJHT", true},
		{"no dash", "WDJBMJHT", "WDJB-MJHT", true},
		{"space", "wdjb mjht", "WDJB-MJHT", true},
		{"surrounding spaces", "  WDJB-MJHT ", "WDJB-MJHT", true},
		{"dashes everywhere", "-W-D-J-B--M-J-H-T-", "WDJB-MJHT", true},
		{"empty", "", "", false},
		{"only separators", "- -", "", false},
		{"too short", "WDJB-MJH", "", false},
		{"too long", "WDJB-MJHTB", "", false},
		{"vowel", "WDJA-MJHT", "", false},
		{"digit", "WDJ0-MJHT", "", false},
		{"tab", "WDJB\tMJHT", "", false},
		{"underscore", "WDJB_MJHT", "", false},
		{"non-ASCII", "WDJB-MJHŤ", "", false},
		{"Kelvin sign folds to K only in Unicode", "WDJB-MJH\u212a", "", false},
		{"huge", strings.Repeat(" ", 100) + "WDJBMJHT", "", false},
		{"long but within cap", strings.Repeat(" ", 50) + "WDJBMJHT", "WDJB-MJHT", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := NormalizeUserCode(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("NormalizeUserCode(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func BenchmarkNewUserCode(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewUserCode(); err != nil {
			b.Fatal(err)
		}
	}
}
