// Package loadtest holds Valet's load generators and the k6 scripts shipped
// for users. k6 itself is never installed or imported (its Go module is
// AGPL); this test keeps the scripts from rotting by compiling each one with
// goja, the JavaScript engine k6 embeds, and running it once against stub k6
// modules. k6_issuer_test.go goes further and runs them against a real
// issuer on a small stand-in for k6's API (k6shim_test.go).
package loadtest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dop251/goja"
)

var (
	importDefault = regexp.MustCompile(`(?m)^\s*import\s+([A-Za-z_$][\w$]*)\s+from\s+['"]([^'"]+)['"];?\s*$`)
	importStar    = regexp.MustCompile(`(?m)^\s*import\s+\*\s+as\s+([A-Za-z_$][\w$]*)\s+from\s+['"]([^'"]+)['"];?\s*$`)
	importNamed   = regexp.MustCompile(`(?m)^\s*import\s+\{([^}]*)\}\s+from\s+['"]([^'"]+)['"];?\s*$`)
	importBare    = regexp.MustCompile(`(?m)^\s*import\s+['"][^'"]+['"];?\s*$`)
	exportDefault = regexp.MustCompile(`(?m)^export\s+default\s+`)
	exportDecl    = regexp.MustCompile(`(?m)^export\s+(const|let|var|function|async\s+function|class)\b`)
)

// toScript rewrites an ES module into a script goja can run: each import
// binds its names to __module(<path>) (a stub in the dry run, the shim's
// modules against a real issuer), `export default <expr>` becomes
// `var __default = <expr>`, and other exports lose the keyword. Anything
// else left with import or export syntax fails to compile, which is the
// point.
func toScript(src string) string {
	src = importStar.ReplaceAllString(src, "const $1 = __module('$2');")
	src = importDefault.ReplaceAllString(src, "const $1 = __module('$2');")
	src = importNamed.ReplaceAllStringFunc(src, func(m string) string {
		sub := importNamed.FindStringSubmatch(m)
		var decl []string
		for _, n := range strings.Split(sub[1], ",") {
			n = strings.TrimSpace(n)
			if n == "" {
				continue
			}
			name, alias := n, n
			if a, b, ok := strings.Cut(n, " as "); ok {
				name, alias = strings.TrimSpace(a), strings.TrimSpace(b)
			}
			decl = append(decl, alias+" = __module('"+sub[2]+"')."+name)
		}
		return "const " + strings.Join(decl, ", ") + ";"
	})
	src = importBare.ReplaceAllString(src, "")
	src = exportDefault.ReplaceAllString(src, "var __default = ")
	return exportDecl.ReplaceAllString(src, "$1")
}

// prelude defines __module, whose every module is __stub: a callable (and
// constructible) that returns a plausible token response and whose every
// property is another stub, standing in for k6's modules; open, which
// returns two refresh tokens; and __ENV with what the scripts need.
const prelude = `
const __response = { status: 200,
  body: '{"access_token":"a.b.c","token_type":"Bearer","expires_in":300,"refresh_token":"vrt_stub.next"}',
  headers: { 'Cache-Control': 'no-store' },
  json: function (p) { const v = JSON.parse(this.body); return p === undefined ? v : v[p]; } };
function __stub() {
  return new Proxy(function () {}, {
    get: function (t, p) { return p === Symbol.toPrimitive ? undefined : (p === 'then' ? undefined : __stub()); },
    apply: function (t, self, args) {
      for (const a of args) {
        if (a && typeof a === 'object' && !Array.isArray(a)) {
          for (const k of Object.keys(a)) { if (typeof a[k] === 'function') a[k](__response); }
        }
      }
      return __response;
    },
    construct: function () { return __stub(); },
  });
}
function __module(name) { return __stub(); }
function open(path) { return 'vrt_a\nvrt_b\n'; }
var __ENV = { CLIENT_SECRET: 'vcs_test', CLIENT_ID: 'svc', TOKEN_URL: 'http://127.0.0.1/token', VUS: '2', SEED_FILE: 'seed.txt' };
var __VU = 1, __ITER = 0;
`

func TestK6ScriptsCompileAndRun(t *testing.T) {
	files, err := filepath.Glob("k6/*.js")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no k6 scripts under k6/")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			script := toScript(string(raw))
			prog, err := goja.Compile(f, prelude+script, false)
			if err != nil {
				t.Fatalf("does not compile: %v", err)
			}
			vm := goja.New()
			if _, err := vm.RunProgram(prog); err != nil {
				t.Fatalf("top level fails: %v", err)
			}
			if opts := vm.Get("options"); opts == nil || goja.IsUndefined(opts) {
				t.Error("no exported options")
			}
			// As k6 does: setup's result is every other call's argument.
			data := goja.Undefined()
			for _, name := range []string{"setup", "__default", "teardown"} {
				fn, ok := goja.AssertFunction(vm.Get(name))
				if !ok {
					if name == "__default" {
						t.Fatal("no default export function")
					}
					continue
				}
				v, err := fn(goja.Undefined(), data)
				if err != nil {
					t.Fatalf("%s fails: %v", name, err)
				}
				if name == "setup" {
					data = v
				}
			}
		})
	}
}

// TestToScriptRejectsBrokenScripts: the check fails on syntax rot.
func TestToScriptRejectsBrokenScripts(t *testing.T) {
	for name, src := range map[string]string{
		"syntax error":       "import http from 'k6/http';\nexport default function () { http.get('x' }\n",
		"unsupported export": "export { a as b };\n",
	} {
		if _, err := goja.Compile(name, prelude+toScript(src), false); err == nil {
			t.Errorf("%s: compiled", name)
		}
	}
}
