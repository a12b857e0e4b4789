package token

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that it rejects with ErrMalformed,
// and that whatever it accepts is exactly the grammar of docs/tokens.md and
// hashes consistently.
func FuzzParse(f *testing.F) {
	const valid = "vrt_9jOiDyMpH7nGDAYKBYHT5Q.FgTwtAjugEeAwtEw3HDzEczVoehiTw-QtV8bK9iamqA"
	seeds := []string{
		valid,
		"vac_9jOiDyMpH7nGDAYKBYHT5Q.1lBI6Rx9dDUqvLTedZutGH1HxNf4yiSKnkGSS59p1mU",
		"vdc_Rd5SGw8A8iE42PbTQra-1w.OatvWk5sfnoBf_wyQLqXw_aQj6TEfl2S2sehQJM64uo",
		"vrt_AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"vrt___________________-w.________________________________________8",
		"",
		"vrt_",
		"vrt_9jOiDyMpH7nGDAYKBYHT5Q.",
		valid + "A",
		valid[:69],
		strings.Replace(valid, "vrt", "vat", 1),
		strings.Replace(valid, "_", "-", 1),
		strings.Replace(valid, ".", "_", 1),
		valid[:25] + "R" + valid[26:], // non-canonical family id
		valid[:69] + "B",              // non-canonical secret
		valid[:30] + "+" + valid[31:], // standard base64
		valid[:30] + "\x00" + valid[31:],
		valid[:40] + "é" + valid[42:],
		"vrt_" + valid[4:26] + valid[26:27] + "==" + valid[29:],
		strings.Repeat("\xff", 70),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	strict := base64.RawURLEncoding.Strict()
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if p != (Parsed{}) {
				t.Fatalf("non-zero Parsed on error: %+v", p)
			}
			return
		}
		if len(s) != Len || !p.Kind.Valid() || s[:PrefixLen] != string(p.Kind) ||
			s[PrefixLen] != '_' || s[sepFamily] != '.' || p.FID != s[fidStart:sepFamily] {
			t.Fatalf("accepted %q as %+v", s, p)
		}
		if !ValidFamilyID(p.FID) {
			t.Fatalf("accepted family id %q that ValidFamilyID rejects", p.FID)
		}
		if p.Hash != sha256.Sum256([]byte(s)) || p.Hash != HashOf(s) {
			t.Fatalf("hash of %q is inconsistent", s)
		}
		for part, n := range map[string]int{p.FID: FamilyIDBytes, s[secStart:]: SecretBytes} {
			b, err := strict.DecodeString(part)
			if err != nil || len(b) != n || b64.EncodeToString(b) != part {
				t.Fatalf("accepted non-canonical part %q of %q", part, s)
			}
		}
		again, err := ParseKind(p.Kind, s)
		if err != nil || again != p {
			t.Fatalf("ParseKind disagrees with Parse on %q: %+v, %v", s, again, err)
		}
	})
}

// FuzzNormalizeUserCode checks that NormalizeUserCode never panics and that
// what it returns is canonical and a fixed point.
func FuzzNormalizeUserCode(f *testing.F) {
	for _, s := range []string{"WDJB-MJHT", "wdjb mjht", "", "-", "WDJB-MJHTT", "WDJA-MJHT", "WDJB-MJH\u212a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := NormalizeUserCode(s)
		if !ok {
			if got != "" {
				t.Fatalf("rejected %q but returned %q", s, got)
			}
			return
		}
		if len(got) != UserCodeChars+1 || got[UserCodeChars/2] != '-' {
			t.Fatalf("NormalizeUserCode(%q) = %q, not XXXX-XXXX", s, got)
		}
		if again, ok := NormalizeUserCode(got); !ok || again != got {
			t.Fatalf("not a fixed point: %q -> %q -> %q", s, got, again)
		}
	})
}
