package config

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	docPath     = "../../docs/configuration.md"
	examplePath = "../../docs/valet.example.yaml"
	tableHeader = "| key | env | type | default | description |"
	noDefault   = "(none)"
)

// docRow is one row of the key table in docs/configuration.md.
type docRow struct {
	key, env, typ, def string
}

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("read the configuration documentation: %v", err)
	}
	return string(b)
}

// docTable extracts the key table: the one table whose header is tableHeader.
func docTable(t *testing.T, doc string) []docRow {
	t.Helper()
	lines := strings.Split(doc, "\n")
	start := slices.Index(lines, tableHeader)
	if start < 0 {
		t.Fatalf("%s has no table with header %q", docPath, tableHeader)
	}
	if slices.Index(lines[start+1:], tableHeader) >= 0 {
		t.Fatalf("%s has more than one key table", docPath)
	}
	var rows []docRow
	for i, line := range lines[start+2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 5 {
			t.Fatalf("%s line %d: want 5 cells, got %d (is there a '|' in a description?)", docPath, start+3+i, len(cells))
		}
		for j := range cells {
			cells[j] = strings.Trim(strings.TrimSpace(cells[j]), "`")
		}
		rows = append(rows, docRow{key: cells[0], env: cells[1], typ: cells[2], def: cells[3]})
	}
	return rows
}

// TestDocTableMatchesKeys keeps the key table of docs/configuration.md and Keys() equal in both
// directions, with the same variables, types and defaults.
func TestDocTableMatchesKeys(t *testing.T) {
	rows := docTable(t, readDoc(t))
	documented := map[string]docRow{}
	for _, r := range rows {
		if _, dup := documented[r.key]; dup {
			t.Errorf("key %s is documented twice", r.key)
		}
		documented[r.key] = r
	}
	keys := map[string]Key{}
	for _, k := range Keys() {
		keys[k.Path] = k
	}
	for _, r := range rows {
		if _, ok := keys[r.key]; !ok {
			t.Errorf("key %s is documented but is not in the Config struct", r.key)
		}
	}
	for _, k := range Keys() {
		r, ok := documented[k.Path]
		if !ok {
			t.Errorf("key %s (%s) is missing from the table in %s", k.Path, k.Env, docPath)
			continue
		}
		def, env := r.def, r.env
		if def == noDefault {
			def = ""
		}
		if env == noDefault {
			env = "" // a field of a list of records: file only
		}
		if env != k.Env {
			t.Errorf("key %s: documented env %q, want %q", k.Path, r.env, k.Env)
		}
		if r.typ != k.Type {
			t.Errorf("key %s: documented type %q, want %q", k.Path, r.typ, k.Type)
		}
		if def != k.Default {
			t.Errorf("key %s: documented default %q, want %q (write %s for an empty default)", k.Path, r.def, k.Default, noDefault)
		}
	}
}

// docExample returns the one fenced yaml block of the documentation.
func docExample(t *testing.T, doc string) string {
	t.Helper()
	parts := strings.Split(doc, "```yaml\n")
	if len(parts) != 2 {
		t.Fatalf("%s: want exactly one ```yaml block (the production example), got %d", docPath, len(parts)-1)
	}
	block, _, ok := strings.Cut(parts[1], "```")
	if !ok {
		t.Fatalf("%s: the ```yaml block is not closed", docPath)
	}
	return block
}

// TestDocExample checks the production example of the documentation: it parses strictly and
// validates without any environment, equals docs/valet.example.yaml, and sets every key, so a
// new key cannot be left out of it.
func TestDocExample(t *testing.T) {
	example := docExample(t, readDoc(t))
	cfg, err := Parse([]byte(example), noEnv)
	if err != nil {
		t.Fatalf("the documented example does not load:\n%v", err)
	}
	if cfg.Dev {
		t.Error("the production example runs in dev mode")
	}
	file, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatalf("read the example file: %v", err)
	}
	if string(file) != example {
		t.Errorf("%s differs from the ```yaml block of %s; keep them identical", examplePath, docPath)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(example), &doc); err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	collectPaths(doc.Content[0], "", set)
	for _, k := range Keys() {
		if !k.EnvOnly && !set[k.Path] {
			t.Errorf("the example does not set %s", k.Path)
		}
	}
}

// collectPaths records the dotted path of every key in a YAML mapping tree; keys of the records
// of a list are recorded as list[].key, the way Keys names them.
func collectPaths(n *yaml.Node, prefix string, set map[string]bool) {
	if n.Kind == yaml.SequenceNode {
		for _, item := range n.Content {
			collectPaths(item, prefix+"[]", set)
		}
		return
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		path := n.Content[i].Value
		if prefix != "" {
			path = prefix + "." + path
		}
		set[path] = true
		collectPaths(n.Content[i+1], path, set)
	}
}

// sample returns a value for a leaf that differs from its default, so that setting it is
// visible.
func sample(t *testing.T, l leaf, def reflect.Value) reflect.Value {
	t.Helper()
	v := reflect.New(l.typ).Elem()
	switch {
	case l.typ == durationType:
		v.SetInt(def.Int() + 7_000_000_000)
	case l.typ == kekListType:
		v.Set(reflect.ValueOf([]KeyEncryptionKey{{ID: "a", Source: "env:A"}, {ID: "b", Source: "file:/b"}}))
	case l.typ.Kind() == reflect.Bool:
		v.SetBool(!def.Bool())
	case l.typ.Kind() == reflect.String:
		v.SetString("sample-" + l.Path)
	case l.typ.Kind() == reflect.Int || l.typ.Kind() == reflect.Int64:
		v.SetInt(def.Int() + 7)
	default:
		t.Fatalf("no sample for %s of type %s", l.Path, l.typ)
	}
	return v
}

// TestEveryKeyFromYAML sets every file key to a non-default value, marshals the Config to YAML
// and decodes it back: each key must be read into its field.
func TestEveryKeyFromYAML(t *testing.T) {
	want := Default()
	w := reflect.ValueOf(&want).Elem()
	for _, l := range leaves() {
		if l.EnvOnly || l.FileOnly {
			continue
		}
		w.FieldByIndex(l.index).Set(sample(t, l, w.FieldByIndex(l.index)))
	}
	data, err := yaml.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got := Default()
	if err := decode(data, &got); err != nil {
		t.Fatalf("decode:\n%v\n%s", err, data)
	}
	g := reflect.ValueOf(got)
	for _, l := range leaves() {
		if l.FileOnly {
			continue // TestEveryListKeyFromYAML
		}
		if gv, wv := g.FieldByIndex(l.index).Interface(), w.FieldByIndex(l.index).Interface(); !reflect.DeepEqual(gv, wv) {
			t.Errorf("%s: decoded %v, want %v", l.Path, gv, wv)
		}
	}
}

// TestEveryKeyFromEnv sets each key through its variable alone and checks that exactly its
// field changed.
func TestEveryKeyFromEnv(t *testing.T) {
	for _, l := range leaves() {
		if l.FileOnly {
			continue // lists of records have no environment form
		}
		t.Run(l.Path, func(t *testing.T) {
			want := Default()
			w := reflect.ValueOf(&want).Elem()
			s := sample(t, l, w.FieldByIndex(l.index))
			w.FieldByIndex(l.index).Set(s)

			got := Default()
			if err := applyEnv(&got, envMap(map[string]string{l.Env: formatValue(s)})); err != nil {
				t.Fatalf("%s=%s: %v", l.Env, formatValue(s), err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s=%s: got %+v, want %+v", l.Env, formatValue(s), got, want)
			}
		})
	}
}

// TestKeys checks the naming rule of the variables and that keys are unique.
func TestKeys(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Keys() {
		if k.FileOnly {
			if k.Env != "" || k.Default != "" || !strings.Contains(k.Path, "[]") {
				t.Errorf("%s: a file-only key of a list has no env and no default, got %+v", k.Path, k)
			}
			continue
		}
		if strings.Contains(k.Path, "[]") {
			t.Errorf("%s: a key inside a list is not marked FileOnly", k.Path)
		}
		if want := "VALET_" + strings.ToUpper(strings.ReplaceAll(k.Path, ".", "_")); k.Env != want {
			t.Errorf("%s: env %s, want %s", k.Path, k.Env, want)
		}
		if seen[k.Env] {
			t.Errorf("%s: env %s is used twice", k.Path, k.Env)
		}
		seen[k.Env] = true
		if k.Env == FileEnv {
			t.Errorf("%s: env collides with %s", k.Path, FileEnv)
		}
	}
	if n := len(Keys()); n < 50 {
		t.Errorf("Keys() returned %d keys; the reflection walk lost some", n)
	}
	pw := Keys()[slices.IndexFunc(Keys(), func(k Key) bool { return k.Path == "redis.password" })]
	if !pw.EnvOnly || pw.Env != "VALET_REDIS_PASSWORD" {
		t.Errorf("redis.password: got %+v, want an env-only key read from VALET_REDIS_PASSWORD", pw)
	}
}

// fill sets every field of the struct v to a non-zero sample, appending one filled record to
// every list of records, so that a round trip through YAML shows each field is decoded.
func fill(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	for i := range v.NumField() {
		f, fv := v.Type().Field(i), v.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		p := path + "." + name
		switch {
		case f.Type == durationType:
			fv.SetInt(int64(7 * time.Second))
		case f.Type.Kind() == reflect.Struct:
			fill(t, fv, p)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			elem := reflect.New(f.Type.Elem()).Elem()
			fill(t, elem, p+"[]")
			fv.Set(reflect.Append(fv, elem))
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.String:
			fv.Set(reflect.ValueOf([]string{"sample-" + p}))
		case f.Type.Kind() == reflect.String:
			fv.SetString("sample-" + p)
		case f.Type.Kind() == reflect.Bool:
			fv.SetBool(true)
		default:
			t.Fatalf("no sample for %s of type %s", p, f.Type)
		}
	}
}

// TestEveryListKeyFromYAML fills one record of every list of records (bootstrap.*), marshals it
// and decodes it back: each field must be read, and each must be a key listed by Keys.
func TestEveryListKeyFromYAML(t *testing.T) {
	want := Default()
	fill(t, reflect.ValueOf(&want.Bootstrap).Elem(), "bootstrap")
	data, err := yaml.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got := Default()
	if err := decode(data, &got); err != nil {
		t.Fatalf("decode:\n%v\n%s", err, data)
	}
	if !reflect.DeepEqual(got.Bootstrap, want.Bootstrap) {
		t.Errorf("decoded %+v, want %+v", got.Bootstrap, want.Bootstrap)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	collectPaths(doc.Content[0], "", set)
	keys := map[string]bool{}
	for _, k := range Keys() {
		keys[k.Path] = true
		if k.FileOnly && !set[k.Path] {
			t.Errorf("%s is a key but the filled configuration does not set it", k.Path)
		}
	}
	for p := range set {
		if !strings.HasPrefix(p, "bootstrap.") || keys[p] {
			continue
		}
		// Not a key itself: it must be a list of records whose fields are keys.
		if !slices.ContainsFunc(Keys(), func(k Key) bool { return strings.HasPrefix(k.Path, p+"[].") }) {
			t.Errorf("%s is decoded but Keys does not list it", p)
		}
	}
}
