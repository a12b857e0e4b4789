package loadtest

// A small k6 stand-in for tests: the part of k6's JavaScript API the shipped
// scripts use (k6/http with a cookie jar per VU and per-request redirects,
// check, fail, sleep, k6/crypto's sha256 and randomBytes, k6/encoding's
// b64encode, k6/metrics' Counter, open, __ENV, __VU, __ITER), implemented
// over net/http on goja. It runs a script's setup, its default function for
// each VU in turn, and teardown, as k6 would, so that a script is exercised
// against a real issuer without k6. It does not pretend to be k6: options,
// scenarios and thresholds are not interpreted; the test asserts what the
// thresholds would.

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dop251/goja"
)

// k6Run is the shared outcome of one script run: checks by name and
// custom metrics by name, over every VU.
type k6Run struct {
	t       *testing.T
	prog    *goja.Program
	env     map[string]string
	passed  map[string]int
	failed  map[string]int
	metrics map[string]float64
}

// k6VU is one virtual user: its own runtime (module state lives across
// iterations) and its own cookie jar.
type k6VU struct {
	run       *k6Run
	vm        *goja.Runtime
	client    *http.Client
	redirects int // for the request being sent
}

func newK6Run(t *testing.T, file string, env map[string]string) *k6Run {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := goja.Compile(file, toScript(string(raw)), false)
	if err != nil {
		t.Fatalf("does not compile: %v", err)
	}
	return &k6Run{t: t, prog: prog, env: env, passed: map[string]int{}, failed: map[string]int{}, metrics: map[string]float64{}}
}

// newVU builds a VU's runtime and runs the script's init code in it; id 0
// is setup's and teardown's.
func (r *k6Run) newVU(id int) *k6VU {
	r.t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		r.t.Fatal(err)
	}
	vu := &k6VU{run: r, vm: goja.New()}
	vu.client = &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			if len(via) > vu.redirects {
				return http.ErrUseLastResponse
			}
			return nil
		}}
	vm := vu.vm
	vm.SetFieldNameMapper(goja.UncapFieldNameMapper())
	env := vm.NewObject()
	for k, v := range r.env {
		_ = env.Set(k, v)
	}
	must(r.t, vm.Set("__ENV", env))
	must(r.t, vm.Set("__VU", id))
	must(r.t, vm.Set("__ITER", 0))
	must(r.t, vm.Set("__module", vu.module))
	must(r.t, vm.Set("open", func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			panic(vm.NewGoError(err))
		}
		return string(b)
	}))
	console := vm.NewObject()
	for _, level := range []string{"log", "info", "warn", "error"} {
		_ = console.Set(level, func(call goja.FunctionCall) goja.Value {
			r.t.Logf("k6 VU %d console.%s: %v", id, level, call.Arguments)
			return goja.Undefined()
		})
	}
	must(r.t, vm.Set("console", console))
	if _, err := vm.RunProgram(r.prog); err != nil {
		r.t.Fatalf("init code fails: %v", err)
	}
	return vu
}

// call calls an exported function of the script with data; a missing one
// returns undefined.
func (vu *k6VU) call(name string, data goja.Value) goja.Value {
	vu.run.t.Helper()
	fn, ok := goja.AssertFunction(vu.vm.Get(name))
	if !ok {
		return goja.Undefined()
	}
	v, err := fn(goja.Undefined(), data)
	if err != nil {
		vu.run.t.Fatalf("%s fails: %v", name, err)
	}
	return v
}

// importData passes setup's result into this VU as k6 does: as JSON.
func (vu *k6VU) importData(data any) goja.Value {
	vu.run.t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		vu.run.t.Fatal(err)
	}
	parse, _ := goja.AssertFunction(vu.vm.Get("JSON").ToObject(vu.vm).Get("parse"))
	v, err := parse(goja.Undefined(), vu.vm.ToValue(string(b)))
	if err != nil {
		vu.run.t.Fatal(err)
	}
	return v
}

// runK6 runs setup, iterations rounds of every VU's default function, then
// teardown.
func (r *k6Run) runK6(vus, iterations int) {
	r.t.Helper()
	main := r.newVU(0)
	data := main.call("setup", goja.Undefined()).Export()
	users := make([]*k6VU, vus)
	args := make([]goja.Value, vus)
	for i := range users {
		users[i] = r.newVU(i + 1)
		args[i] = users[i].importData(data)
	}
	for it := range iterations {
		for i, vu := range users {
			must(r.t, vu.vm.Set("__ITER", it))
			vu.call("__default", args[i])
		}
	}
	main.call("teardown", main.importData(data))
}

// defined reports whether an argument was passed (goja hands a missing
// goja.Value argument over as nil).
func defined(v goja.Value) bool {
	return v != nil && !goja.IsUndefined(v) && !goja.IsNull(v)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// module returns the shim of one k6 module; an unknown one fails the test,
// so that a script using more of k6 extends the shim.
func (vu *k6VU) module(name string) goja.Value {
	vm, r := vu.vm, vu.run
	o := vm.NewObject()
	set := func(k string, v any) { _ = o.Set(k, v) }
	switch name {
	case "k6/http":
		set("get", func(u string, params goja.Value) goja.Value { return vu.request(http.MethodGet, u, "", params) })
		set("post", func(u string, body string, params goja.Value) goja.Value {
			return vu.request(http.MethodPost, u, body, params)
		})
	case "k6":
		set("check", func(val goja.Value, sets *goja.Object, _ goja.Value) bool {
			all := true
			for _, k := range sets.Keys() {
				ok := false
				if fn, isFn := goja.AssertFunction(sets.Get(k)); isFn {
					res, err := fn(goja.Undefined(), val)
					if err != nil {
						panic(err)
					}
					ok = res.ToBoolean()
				} else {
					ok = sets.Get(k).ToBoolean()
				}
				if ok {
					r.passed[k]++
				} else {
					r.failed[k]++
					all = false
				}
			}
			return all
		})
		set("fail", func(msg string) { panic(vm.NewGoError(fmt.Errorf("fail: %s", msg))) })
		set("sleep", func(float64) {}) // nothing to wait for in a test
	case "k6/crypto":
		set("sha256", func(in goja.Value, enc string) string {
			sum := sha256.Sum256(vu.bytes(in))
			switch enc {
			case "hex":
				return hex.EncodeToString(sum[:])
			case "base64":
				return base64.StdEncoding.EncodeToString(sum[:])
			case "base64url":
				return base64.URLEncoding.EncodeToString(sum[:])
			case "base64rawurl":
				return base64.RawURLEncoding.EncodeToString(sum[:])
			}
			panic(vm.NewTypeError("sha256: output encoding %q not in the shim", enc))
		})
		set("randomBytes", func(n int) goja.ArrayBuffer {
			b := make([]byte, n)
			_, _ = rand.Read(b)
			return vm.NewArrayBuffer(b)
		})
	case "k6/encoding":
		set("b64encode", func(in goja.Value, enc goja.Value) string {
			e := "std"
			if defined(enc) {
				e = enc.String()
			}
			codec := map[string]*base64.Encoding{"std": base64.StdEncoding, "rawstd": base64.RawStdEncoding,
				"url": base64.URLEncoding, "rawurl": base64.RawURLEncoding}[e]
			if codec == nil {
				panic(vm.NewTypeError("b64encode: encoding %q", e))
			}
			return codec.EncodeToString(vu.bytes(in))
		})
	case "k6/metrics":
		set("Counter", func(call goja.ConstructorCall) *goja.Object {
			metric := call.Argument(0).String()
			_ = call.This.Set("add", func(v float64) { r.metrics[metric] += v })
			return nil
		})
	default:
		r.t.Fatalf("the k6 shim has no module %q", name)
	}
	return o
}

// bytes returns a string's or an ArrayBuffer's bytes.
func (vu *k6VU) bytes(v goja.Value) []byte {
	switch x := v.Export().(type) {
	case string:
		return []byte(x)
	case goja.ArrayBuffer:
		return x.Bytes()
	}
	panic(vu.vm.NewTypeError("expected a string or an ArrayBuffer"))
}

// request is k6/http's request: params.headers and params.redirects
// honoured, cookies kept in the VU's jar; a transport error is a response
// with status 0 and error set, as in k6.
func (vu *k6VU) request(method, u, body string, params goja.Value) goja.Value {
	vm := vu.vm
	vu.redirects = 10 // k6's default maxRedirects
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		panic(vm.NewGoError(err))
	}
	if !defined(params) {
		params = vm.NewObject()
	}
	if p, ok := params.Export().(map[string]any); ok {
		if h, ok := p["headers"].(map[string]any); ok {
			for k, v := range h {
				req.Header.Set(k, fmt.Sprint(v))
			}
		}
		switch n := p["redirects"].(type) {
		case int64:
			vu.redirects = int(n)
		case float64:
			vu.redirects = int(n)
		}
	}
	res := vm.NewObject()
	resp, err := vu.client.Do(req)
	if err != nil {
		_ = res.Set("status", 0)
		_ = res.Set("error", err.Error())
		_ = res.Set("body", "")
		_ = res.Set("headers", vm.NewObject())
		return res
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		panic(vm.NewGoError(err))
	}
	headers := vm.NewObject()
	for k, v := range resp.Header {
		_ = headers.Set(k, strings.Join(v, ", "))
	}
	_ = res.Set("status", resp.StatusCode)
	_ = res.Set("body", string(b))
	_ = res.Set("headers", headers)
	_ = res.Set("url", resp.Request.URL.String())
	_ = res.Set("error", "")
	_ = res.Set("json", func(call goja.FunctionCall) goja.Value {
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			panic(vm.NewGoError(fmt.Errorf("json: %w", err)))
		}
		if sel := call.Argument(0); defined(sel) {
			for _, part := range strings.Split(sel.String(), ".") {
				m, ok := v.(map[string]any)
				if !ok {
					return goja.Undefined()
				}
				if v, ok = m[part]; !ok {
					return goja.Undefined()
				}
			}
		}
		return vm.ToValue(v)
	})
	return res
}
