package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads the configuration file at path over Default(), applies VALET_* overrides from
// lookupEnv (os.LookupEnv when nil) and validates the result. An empty path means defaults and
// environment only. It returns every problem found, each naming its key, so an operator can fix
// them in one go.
func Load(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("read config file: %w", err)
		}
	}
	cfg, err := Parse(data, lookupEnv)
	if err != nil && path != "" {
		return nil, fmt.Errorf("config file %s:\n%w", path, err)
	}
	return cfg, err
}

// Parse is Load from bytes: strict YAML over Default(), then VALET_* overrides from lookupEnv
// (os.LookupEnv when nil), then Validate. Empty data means defaults and environment only.
func Parse(data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	cfg := Default()
	if err := decode(data, &cfg); err != nil {
		return nil, err
	}
	if err := applyEnv(&cfg, lookupEnv); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// decode decodes one YAML document onto cfg, refusing unknown keys, values of the wrong type and
// empty values, each reported with its dotted key path. yaml.v3 with KnownFields does the actual
// decoding; the walk before it exists to name keys by their full path, which yaml.v3 does not.
func decode(data []byte, cfg *Config) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file, or comments only
		}
		return fmt.Errorf("parse YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("the file holds more than one YAML document; keep the configuration in one")
	}
	var errs []error
	check(&doc, reflect.TypeOf(Config{}), "", &errs)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(cfg); err != nil {
		return fmt.Errorf("decode YAML: %w", err)
	}
	return nil
}

// check compares a YAML node with the Go type it decodes into and appends a problem for every
// unknown key, empty value and value of the wrong shape or type.
func check(n *yaml.Node, t reflect.Type, path string, errs *[]error) {
	for n.Kind == yaml.DocumentNode || n.Kind == yaml.AliasNode {
		if n.Kind == yaml.DocumentNode {
			if len(n.Content) == 0 {
				return
			}
			n = n.Content[0]
		} else {
			n = n.Alias
		}
	}
	name := path
	if name == "" {
		name = "the document"
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		if t.Kind() == reflect.Struct && t != durationType || t.Kind() == reflect.Slice {
			return // an empty section or list changes nothing
		}
		*errs = append(*errs, fmt.Errorf("%s: line %d: no value; write \"\" for an empty string, or remove the key to keep the default", name, n.Line))
		return
	}
	switch {
	case t.Kind() == reflect.Struct && t != durationType:
		if n.Kind != yaml.MappingNode {
			*errs = append(*errs, fmt.Errorf("%s: line %d: want a mapping of keys, got %s", name, n.Line, kindName(n)))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if path != "" {
				key = path + "." + k.Value
			}
			ft, ok := fieldType(t, k.Value)
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s: line %d: unknown key", key, k.Line))
				continue
			}
			check(v, ft, key, errs)
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			*errs = append(*errs, fmt.Errorf("%s: line %d: want a list, got %s", name, n.Line, kindName(n)))
			return
		}
		for i, item := range n.Content {
			check(item, t.Elem(), path+"["+strconv.Itoa(i)+"]", errs)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			*errs = append(*errs, fmt.Errorf("%s: line %d: want a %s, got %s", name, n.Line, typeName(t), kindName(n)))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			*errs = append(*errs, fmt.Errorf("%s: line %d: want a %s, got %q", name, n.Line, typeHint(t), n.Value))
		}
	}
}

// fieldType returns the type of the field of struct t that YAML key name decodes into, looking
// through inline fields.
func fieldType(t reflect.Type, name string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" {
			if ft, ok := fieldType(f.Type, name); ok {
				return ft, true
			}
			continue
		}
		if tag != "-" && tag == name {
			return f.Type, true
		}
	}
	return nil, false
}

// kindName names a YAML node's shape for error messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// typeHint names a leaf type for error messages, with an example where the syntax is not obvious.
func typeHint(t reflect.Type) string {
	switch typeName(t) {
	case typeDuration:
		return "duration such as 30s or 15m"
	case typeBool:
		return "boolean (true or false)"
	case typeInt:
		return "integer"
	}
	return typeName(t)
}

// applyEnv sets every leaf key whose VALET_* variable is set to a non-empty value. Keys are found
// by enumerating the struct, never by parsing variable names, because key names contain
// underscores. An empty variable counts as unset, so a compose file passing through an unset
// ${VAR} does not wipe a value from the file.
func applyEnv(cfg *Config, lookupEnv func(string) (string, bool)) error {
	root := reflect.ValueOf(cfg).Elem()
	var errs []error
	for _, l := range leaves() {
		if l.FileOnly {
			continue // lists of records have no environment form
		}
		raw, ok := lookupEnv(l.Env)
		if !ok || raw == "" {
			continue
		}
		if err := setValue(root.FieldByIndex(l.index), raw); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", l.Env, l.Path, err))
		}
	}
	return errors.Join(errs...)
}
