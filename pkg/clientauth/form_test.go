package clientauth_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/valetauth/valet/pkg/clientauth"
	"github.com/valetauth/valet/pkg/oautherr"
)

func TestFormParse(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    [][2]string
		wantErr bool
	}{
		{"empty", "", nil, false},
		{"pairs in order", "a=1&b=2&a=3", [][2]string{{"a", "1"}, {"b", "2"}, {"a", "3"}}, false},
		{"empty segments skipped", "&&a=1&&", [][2]string{{"a", "1"}}, false},
		{"no value", "a&b=", [][2]string{{"a", ""}, {"b", ""}}, false},
		{"decoding", "s=a+b%20c&k%21=%2B", [][2]string{{"s", "a b c"}, {"k!", "+"}}, false},
		{"value with =", "a=b=c", [][2]string{{"a", "b=c"}}, false},
		{"bad escape in value", "a=%zz", nil, true},
		{"bad escape in key", "%z=1", nil, true},
		{"truncated escape", "a=%2", nil, true},
		{"too many", strings.Repeat("a=1&", clientauth.MaxParams+1), nil, true},
		{"exactly the maximum", strings.Repeat("a=1&", clientauth.MaxParams), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f clientauth.Form
			err := f.Parse(tt.body)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse error %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, oautherr.ErrInvalidRequest) {
					t.Fatalf("error %v, want invalid_request", err)
				}
				return
			}
			var got [][2]string
			f.Each(func(k, v string) { got = append(got, [2]string{k, v}) })
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFormAccessors(t *testing.T) {
	var f clientauth.Form
	if err := f.Parse("grant_type=x&resource=a&resource=b&scope=s"); err != nil {
		t.Fatal(err)
	}
	if f.Get("grant_type") != "x" || f.Get("missing") != "" || f.Count("resource") != 2 || f.Len() != 4 {
		t.Fatal("Get/Count/Len")
	}
	if got := f.Values(nil, "resource"); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("Values %q", got)
	}
	if r := f.Repeated(); r != "resource" {
		t.Fatalf("Repeated() = %q, want resource", r)
	}
	if r := f.Repeated("resource"); r != "" {
		t.Fatalf("Repeated(resource) = %q, want none", r)
	}
	if err := f.Parse("a=1"); err != nil || f.Get("grant_type") != "" {
		t.Fatal("Parse does not reset the form")
	}
}

func TestFormParseAllocations(t *testing.T) {
	var f clientauth.Form
	body := "grant_type=client_credentials&scope=read&resource=https://api.example.com/"
	if n := testing.AllocsPerRun(100, func() { _ = f.Parse(body) }); n != 0 {
		t.Fatalf("Parse of a body without escapes allocates %v times", n)
	}
}

func TestReadForm(t *testing.T) {
	const form = "application/x-www-form-urlencoded"
	tests := []struct {
		name, method, target, ct, body string
		max                            int64
		ok                             bool
	}{
		{"ok", "POST", "/token", form, "a=1", 0, true},
		{"charset parameter", "POST", "/token", form + "; charset=UTF-8", "a=1", 0, true},
		{"upper case media type", "POST", "/token", "Application/X-WWW-Form-URLEncoded", "a=1", 0, true},
		{"GET", "GET", "/token", form, "", 0, false},
		{"JSON", "POST", "/token", "application/json", "{}", 0, false},
		{"no content type", "POST", "/token", "", "a=1", 0, false},
		{"similar media type", "POST", "/token", form + "x", "a=1", 0, false},
		{"query", "POST", "/token?client_secret=x", form, "a=1", 0, false},
		{"over the limit", "POST", "/token", form, strings.Repeat("a", 101), 100, false},
		{"at the limit", "POST", "/token", form, strings.Repeat("a", 100), 100, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.target, strings.NewReader(tt.body))
			if tt.ct != "" {
				r.Header.Set("Content-Type", tt.ct)
			}
			var f clientauth.Form
			err := clientauth.ReadForm(r, &f, tt.max)
			if (err == nil) != tt.ok {
				t.Fatalf("ReadForm: %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, oautherr.ErrInvalidRequest) {
				t.Fatalf("error %v, want invalid_request", err)
			}
		})
	}
	// A body cut short by http.MaxBytesReader upstream is invalid_request too.
	r := httptest.NewRequest("POST", "/token", strings.NewReader(strings.Repeat("a", 50)))
	r.Header.Set("Content-Type", form)
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 10)
	var f clientauth.Form
	if err := clientauth.ReadForm(r, &f, 0); !errors.Is(err, oautherr.ErrInvalidRequest) {
		t.Fatalf("MaxBytesReader: %v", err)
	}
}

func FuzzFormParse(f *testing.F) {
	for _, s := range []string{"", "a=1&b=2", "%zz", "a=%2", "&&=&", "a+b=c+d", "\xff=\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var form clientauth.Form
		err := form.Parse(body)
		want, werr := url.ParseQuery(body)
		if werr == nil && err == nil {
			// Same values as the standard library, in order, per key.
			for k, vs := range want {
				if got := form.Values(nil, k); !reflect.DeepEqual(got, vs) {
					t.Fatalf("key %q: %q, url.ParseQuery %q", k, got, vs)
				}
			}
		}
		if err != nil && !errors.Is(err, oautherr.ErrInvalidRequest) {
			t.Fatalf("error %v is not invalid_request", err)
		}
	})
}
