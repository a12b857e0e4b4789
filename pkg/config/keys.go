package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Key describes one leaf configuration key. Keys are derived from the Config struct by
// reflection, so the list cannot drift from what is actually decoded.
type Key struct {
	// Path is the dotted YAML path, e.g. "redis.tls.ca_file".
	Path string
	// Env is the environment variable that overrides it, e.g. "VALET_REDIS_TLS_CA_FILE".
	Env string
	// Type is the value's kind as documented: bool, string, int, duration, list of id=source or
	// list of string.
	Type string
	// Default is the value in Default(), formatted as it would be written in the environment
	// variable ("" when empty).
	Default string
	// EnvOnly marks a secret that may only come from the environment, never from the file.
	EnvOnly bool
	// FileOnly marks a field of a record in a list (bootstrap.clients[].id): it is set only in
	// the file, has no environment variable (Env is empty) and no default (lists start empty).
	FileOnly bool
}

// Type names used in Key.Type and in the documentation table.
const (
	typeBool     = "bool"
	typeString   = "string"
	typeInt      = "int"
	typeDuration = "duration"
	typeKEKList  = "list of id=source"
	typeList     = "list of string"
)

var (
	durationType = reflect.TypeOf(time.Duration(0))
	kekListType  = reflect.TypeOf([]KeyEncryptionKey(nil))
)

// leaf is a Key plus where its value lives in a Config.
type leaf struct {
	Key
	index []int
	typ   reflect.Type
}

var leaves = sync.OnceValue(func() []leaf {
	var out []leaf
	collect(reflect.TypeOf(Config{}), "", nil, false, &out)
	def := reflect.ValueOf(Default())
	for i := range out {
		if !out[i].FileOnly {
			out[i].Default = formatValue(def.FieldByIndex(out[i].index))
		}
	}
	return out
})

// Keys returns every leaf key of the configuration, in struct order, with its environment
// variable, type and default. Tooling (the CLI, the documentation test) lists keys from here.
func Keys() []Key {
	ls := leaves()
	out := make([]Key, len(ls))
	for i, l := range ls {
		out[i] = l.Key
	}
	return out
}

// envName returns the override variable of a dotted path.
func envName(path string) string {
	return "VALET_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// collect walks a struct type depth-first and appends its leaf keys. A list of records (other than
// the key-encryption keys, which have an environment form) is walked into with "[]" appended to
// its path, and every field below it is a file-only key. It panics on a field kind it cannot
// handle: that is a programming error caught by any test.
func collect(t reflect.Type, prefix string, index []int, inList bool, out *[]leaf) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		idx := append(append([]int(nil), index...), i)
		name, inline, envOnly := fieldName(f)
		if name == "" && !inline {
			continue
		}
		if inline {
			collect(f.Type, prefix, idx, inList, out)
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		if f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct && f.Type != kekListType {
			collect(f.Type.Elem(), path+"[]", nil, true, out)
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			collect(f.Type, path, idx, inList, out)
			continue
		}
		if inList {
			*out = append(*out, leaf{Key: Key{Path: path, Type: typeName(f.Type), FileOnly: true}, typ: f.Type})
			continue
		}
		*out = append(*out, leaf{
			Key:   Key{Path: path, Env: envName(path), Type: typeName(f.Type), EnvOnly: envOnly},
			index: idx,
			typ:   f.Type,
		})
	}
}

// fieldName returns a field's key name from its yaml tag, or from its env tag for an
// environment-only field (yaml:"-"). An empty name with inline false means the field is no key.
func fieldName(f reflect.StructField) (name string, inline, envOnly bool) {
	tag := f.Tag.Get("yaml")
	name, opts, _ := strings.Cut(tag, ",")
	if name == "-" {
		return f.Tag.Get("env"), false, f.Tag.Get("env") != ""
	}
	if opts == "inline" {
		return "", true, false
	}
	if name == "" {
		panic(fmt.Sprintf("config: field %s has no yaml tag", f.Name))
	}
	return name, false, false
}

// typeName returns the documented type of a leaf field.
func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return typeDuration
	case t == kekListType:
		return typeKEKList
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return typeList
	}
	switch t.Kind() {
	case reflect.Bool:
		return typeBool
	case reflect.String:
		return typeString
	case reflect.Int, reflect.Int64:
		return typeInt
	}
	panic(fmt.Sprintf("config: unsupported field type %s", t))
}

// formatValue renders a leaf value the way it is written in an environment variable.
func formatValue(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return formatDuration(time.Duration(v.Int()))
	case v.Type() == kekListType:
		parts := make([]string, v.Len())
		for i := range parts {
			k := v.Index(i).Interface().(KeyEncryptionKey)
			parts[i] = k.ID + "=" + k.Source
		}
		return strings.Join(parts, ",")
	}
	switch v.Kind() {
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.String:
		return v.String()
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	}
	panic(fmt.Sprintf("config: unsupported field type %s", v.Type()))
}

// formatDuration is time.Duration.String without the trailing zero units ("15m", not "15m0s"),
// the way people write durations in the file.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// setValue parses an environment value into a leaf field.
func setValue(v reflect.Value, raw string) error {
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("want a duration such as 30s or 15m, got %q", raw)
		}
		v.SetInt(int64(d))
		return nil
	case v.Type() == kekListType:
		list, err := parseKEKList(raw)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(list))
		return nil
	}
	switch v.Kind() {
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", raw)
		}
		v.SetBool(b)
	case reflect.String:
		v.SetString(raw)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || v.OverflowInt(n) {
			return fmt.Errorf("want an integer, got %q", raw)
		}
		v.SetInt(n)
	default:
		panic(fmt.Sprintf("config: unsupported field type %s", v.Type()))
	}
	return nil
}

// parseKEKList parses "id=source,id=source" (the environment form of keys.encryption_keys).
func parseKEKList(raw string) ([]KeyEncryptionKey, error) {
	var out []KeyEncryptionKey
	for _, item := range splitList(raw) {
		id, source, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("want a comma-separated list of id=source (source env:NAME or file:/path), got an entry without '='")
		}
		out = append(out, KeyEncryptionKey{ID: strings.TrimSpace(id), Source: strings.TrimSpace(source)})
	}
	return out, nil
}
