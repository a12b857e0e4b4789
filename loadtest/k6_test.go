// Package loadtest holds Valet's load generators and the k6 scripts shipped
// for users. k6 itself is never installed or imported (its Go module is
// AGPL); this test keeps the scripts from rotting by compiling each one with
// goja, the JavaScript engine k6 embeds, and running it once against stub k6
// modules.
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
	importDefault = regexp.MustCompile(`(?m)^\s*import\s+([A-Za-z_$][\w$]*)\s+from\s+['"][^'"]+['"];?\s*$`)
	importStar    = regexp.MustCompile(`(?m)^\s*import\s+\*\s+as\s+([A-Za-z_$][\w$]*)\s+from\s+['"][^'"]+['"];?\s*$`)
	importNamed   = regexp.MustCompile(`(?m)^\s*import\s+\{([^}]*)\}\s+from\s+['"][^'"]+['"];?\s*$`)
	importBare    = regexp.MustCompile(`(?m)^\s*import\s+['"][^'"]+['"];?\s*$`)
	exportDefault = regexp.MustCompile(`(?m)^export\s+default\s+`)
	exportDecl    = regexp.MustCompile(`(?m)^export\s+(const|let|var|function|async\s+function|class)\b`)
)

// toScript rewrites an ES module into a script goja can run: each import
// binds its names to a stub, `export default <expr>` becomes
// `var __default = <expr>`, and other exports lose the keyword. Anything
// else left with import or export syntax fails to compile, which is the
// point.
func toScript(src string) string {
	src = importStar.ReplaceAllString(src, "const $1 = __stub();")
	src = importDefault.ReplaceAllString(src, "const $1 = __stub();")
	src = importNamed.ReplaceAllStringFunc(src, func(m string) string {
		names := importNamed.FindStringSubmatch(m)[1]
		var decl []string
		for _, n := range strings.Split(names, ",") {
			n = strings.TrimSpace(n)
			if n == "" {
				continue
			}
			if _, alias, ok := strings.Cut(n, " as "); ok {
				n = strings.TrimSpace(alias)
			}
			decl = append(decl, n+" = __stub()")
		}
		return "const " + strings.Join(decl, ", ") + ";"
	})
	src = importBare.ReplaceAllString(src, "")
	src = exportDefault.ReplaceAllString(src, "var __default = ")
	return exportDecl.ReplaceAllString(src, "$1")
}

// prelude defines __stub, a callable that returns a plausible response and
// whose every property is another stub, standing in for k6's modules; and
// __ENV with what the scripts need.
const prelude = `
const __response = { status: 200, body: '{"token_type":"Bearer"}', headers: { 'Cache-Control': 'no-store' },
  json: function (p) { return p === 'token_type' ? 'Bearer' : {}; } };
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
  });
}
var __ENV = { CLIENT_SECRET: 'vcs_test', CLIENT_ID: 'svc', TOKEN_URL: 'http://127.0.0.1/token' };
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
			for _, name := range []string{"setup", "__default", "teardown"} {
				fn, ok := goja.AssertFunction(vm.Get(name))
				if !ok {
					if name == "__default" {
						t.Fatal("no default export function")
					}
					continue
				}
				if _, err := fn(goja.Undefined()); err != nil {
					t.Fatalf("%s fails: %v", name, err)
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
