package events

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// decodeFast is Decode's fast path: one pass over the input that parses the
// envelope and the payload together, allocating only the strings, the raw
// data and the payload it returns. It handles the shape Encode writes (in
// any key order, with any JSON whitespace, with unknown attributes and
// fields), and reports ok == false, so that Decode falls back to decodeSlow,
// whenever it is not certain to produce exactly what decodeSlow would:
//
//   - any syntax it does not fully check, or nesting deeper than maxFastDepth;
//   - a key that is not plain ASCII without escapes (encoding/json matches
//     keys case-insensitively, with Unicode folding);
//   - a key that is not exactly one of the target's field names but would,
//     or nearly would, match one case-insensitively;
//   - a field given twice (encoding/json lets the last one win, and a null
//     one not at all);
//   - a field value of a kind other than the field's: null, a string with an
//     escape or invalid UTF-8, a number with a fraction, an exponent or more
//     than 18 digits;
//   - anything refused: an unknown type, data that is not an object, or an
//     envelope or payload that fails validation. Every error therefore comes
//     from decodeSlow, with its exact sentinel and message.
//
// FuzzDecodeFastMatchesSlow checks that whatever decodeFast accepts,
// decodeSlow accepts too, with a reflect.DeepEqual result.
func decodeFast(b []byte) (Event, bool) {
	if len(b) > MaxEventBytes {
		return Event{}, false
	}
	var (
		span [envFields][2]int // value bytes; for strings, without the quotes
		seen uint16
		ft   *fastType
		p    Payload
	)
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return Event{}, false
	}
	i = skipWS(b, i+1)
	for {
		k0, k1, ok := scanKey(b, i)
		if !ok {
			return Event{}, false
		}
		i = skipWS(b, k1+1)
		if i >= len(b) || b[i] != ':' {
			return Event{}, false
		}
		i = skipWS(b, i+1)
		key := b[k0:k1]
		f := envField(key)
		switch {
		case f < 0:
			for _, name := range envNames {
				if looseEqual(key, name) {
					return Event{}, false
				}
			}
			if i, ok = skipValue(b, i, 0); !ok {
				return Event{}, false
			}
		case seen&(1<<f) != 0:
			return Event{}, false
		case f == envData:
			if i >= len(b) || b[i] != '{' {
				return Event{}, false
			}
			start := i
			if seen&(1<<envType) != 0 {
				// The usual order (Encode's): the type is known, so the
				// payload is parsed right away.
				if ft = fastTypes[string(b[span[envType][0]:span[envType][1]])]; ft == nil || ft.fields == nil {
					return Event{}, false
				}
				p = ft.new()
				i, ok = parseData(b, i, ft, reflect.ValueOf(p).Elem())
			} else {
				i, ok = skipValue(b, i, 0)
			}
			if !ok {
				return Event{}, false
			}
			span[f] = [2]int{start, i}
		default:
			s0, s1, ok := scanString(b, i)
			if !ok {
				return Event{}, false
			}
			span[f] = [2]int{s0, s1}
			i = s1 + 1
		}
		if f >= 0 {
			seen |= 1 << f
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return Event{}, false
		}
		if b[i] == '}' {
			break
		}
		if b[i] != ',' {
			return Event{}, false
		}
		i = skipWS(b, i+1)
	}
	if skipWS(b, i+1) != len(b) {
		return Event{}, false
	}
	const required = 1<<envSpecVersion | 1<<envID | 1<<envSource | 1<<envType | 1<<envSchemaVersion | 1<<envTime | 1<<envData
	if seen&required != required {
		return Event{}, false
	}
	str := func(f int) []byte { return b[span[f][0]:span[f][1]] }
	if p == nil {
		// data came before type.
		if ft = fastTypes[string(str(envType))]; ft == nil || ft.fields == nil {
			return Event{}, false
		}
		p = ft.new()
		if end, ok := parseData(b, span[envData][0], ft, reflect.ValueOf(p).Elem()); !ok || end != span[envData][1] {
			return Event{}, false
		}
	}
	env := Envelope{
		SpecVersion:     internString(str(envSpecVersion)),
		ID:              string(str(envID)),
		Source:          sources.intern(str(envSource)),
		Type:            ft.typ,
		SchemaVersion:   internString(str(envSchemaVersion)),
		Actor:           internString(str(envActor)),
		DataContentType: internString(str(envDataContentType)),
		Data:            append(json.RawMessage(nil), str(envData)...),
	}
	// Exactly what encoding/json does with it: the quoted bytes, as they
	// are; parseTimeUTC takes the form Encode writes.
	var ok bool
	if env.Time, ok = parseTimeUTC(str(envTime)); !ok {
		if err := env.Time.UnmarshalJSON(b[span[envTime][0]-1 : span[envTime][1]+1]); err != nil {
			return Event{}, false
		}
	}
	if env.validate() != nil || p.validate() != nil {
		return Event{}, false
	}
	return Event{Envelope: env, Payload: p}, true
}

// Envelope attributes, indexes into envNames.
const (
	envSpecVersion = iota
	envID
	envSource
	envType
	envSchemaVersion
	envTime
	envActor
	envDataContentType
	envData
	envFields
)

// envNames are the JSON names of Envelope's fields (TestFastEnvelopeFields
// keeps them in step).
var envNames = [envFields]string{"specversion", "id", "source", "type", "schemaversion", "time", "actor", "datacontenttype", "data"}

func envField(key []byte) int {
	// One comparison per key, chosen by its length and first byte, rather
	// than one per name: this runs for every attribute of every event.
	f := -1
	switch len(key) {
	case 2:
		f = envID
	case 4:
		switch key[0] {
		case 't':
			if key[1] == 'y' {
				f = envType
			} else {
				f = envTime
			}
		case 'd':
			f = envData
		}
	case 5:
		f = envActor
	case 6:
		f = envSource
	case 11:
		f = envSpecVersion
	case 13:
		f = envSchemaVersion
	case 15:
		f = envDataContentType
	}
	if f >= 0 && string(key) == envNames[f] {
		return f
	}
	return -1
}

// maxFastDepth bounds the nesting of unknown values decodeFast skips;
// anything deeper goes to decodeSlow (encoding/json allows 10000 levels).
const maxFastDepth = 64

// fastType describes how decodeFast fills one payload type.
type fastType struct {
	typ Type
	new func() Payload
	// fields are the payload's JSON fields, or nil when decodeFast cannot
	// fill them exactly as encoding/json would: then events of this type
	// always take the slow path.
	fields []fastField
}

type fastField struct {
	name  string       // JSON name
	index int          // in the struct
	kind  reflect.Kind // String, Int64 or Bool
}

// fastTypes maps each registered type's name to how decodeFast fills its
// payload. It is derived from the payload structs by reflection, so that a
// field added to a payload is decoded by both paths alike.
var fastTypes = func() map[string]*fastType {
	m := make(map[string]*fastType, len(registry))
	for t, newPayload := range registry {
		m[string(t)] = &fastType{typ: t, new: newPayload, fields: fastFields(reflect.TypeOf(newPayload()))}
	}
	return m
}()

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// fastFields returns the JSON fields of pt, a pointer to a payload struct,
// or nil unless every one is a plain string, int64 or bool field with a
// lower-case name and no option but omitempty: the cases parseData decodes
// exactly like encoding/json.
func fastFields(pt reflect.Type) []fastField {
	if pt.Kind() != reflect.Pointer || pt.Elem().Kind() != reflect.Struct ||
		pt.Implements(jsonUnmarshalerType) || pt.Implements(textUnmarshalerType) {
		return nil
	}
	st := pt.Elem()
	var out []fastField
	for i := range st.NumField() {
		f := st.Field(i)
		if f.Anonymous {
			return nil
		}
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if opts != "" && opts != "omitempty" || !simpleName(name) {
			return nil
		}
		switch f.Type.Kind() {
		case reflect.String, reflect.Int64, reflect.Bool:
		default:
			return nil
		}
		if reflect.PointerTo(f.Type).Implements(jsonUnmarshalerType) || reflect.PointerTo(f.Type).Implements(textUnmarshalerType) {
			return nil
		}
		for _, g := range out {
			if looseEqual([]byte(name), g.name) {
				return nil
			}
		}
		out = append(out, fastField{name: name, index: i, kind: f.Type.Kind()})
	}
	if len(out) == 0 || len(out) > 32 {
		return nil
	}
	return out
}

func simpleName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// parseData parses the payload object starting at b[i] into pv, the payload
// struct, and returns the index just past it.
func parseData(b []byte, i int, ft *fastType, pv reflect.Value) (int, bool) {
	var seen uint32
	i = skipWS(b, i+1) // past '{'
	for {
		k0, k1, ok := scanKey(b, i)
		if !ok {
			return 0, false
		}
		i = skipWS(b, k1+1)
		if i >= len(b) || b[i] != ':' {
			return 0, false
		}
		i = skipWS(b, i+1)
		key := b[k0:k1]
		n := -1
		for j := range ft.fields {
			if string(key) == ft.fields[j].name {
				n = j
				break
			}
		}
		if n < 0 {
			for j := range ft.fields {
				if looseEqual(key, ft.fields[j].name) {
					return 0, false
				}
			}
			if i, ok = skipValue(b, i, 0); !ok {
				return 0, false
			}
		} else {
			if seen&(1<<n) != 0 {
				return 0, false
			}
			seen |= 1 << n
			f := &ft.fields[n]
			switch f.kind {
			case reflect.String:
				s0, s1, ok := scanString(b, i)
				if !ok {
					return 0, false
				}
				if s1 > s0 {
					pv.Field(f.index).SetString(internString(b[s0:s1]))
				}
				i = s1 + 1
			case reflect.Int64:
				v, next, ok := scanInt(b, i)
				if !ok {
					return 0, false
				}
				pv.Field(f.index).SetInt(v)
				i = next
			case reflect.Bool:
				switch {
				case hasLiteral(b, i, "true"):
					pv.Field(f.index).SetBool(true)
					i += len("true")
				case hasLiteral(b, i, "false"):
					i += len("false")
				default:
					return 0, false
				}
			default:
				return 0, false
			}
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return 0, false
		}
		if b[i] == '}' {
			return i + 1, true
		}
		if b[i] != ',' {
			return 0, false
		}
		i = skipWS(b, i+1)
	}
}

// internString returns string(v), sharing one string for values common in
// events rather than allocating another.
func internString(v []byte) string {
	switch string(v) {
	case "":
		return ""
	case SpecVersion: // also SchemaVersion
		return SpecVersion
	case "application/json":
		return "application/json"
	case "system":
		return "system"
	case ReasonRefreshReuse:
		return ReasonRefreshReuse
	case ReasonCodeReuse:
		return ReasonCodeReuse
	case ReasonAdmin:
		return ReasonAdmin
	case ReasonClient: // also SubjectClient
		return ReasonClient
	case ReasonLogout:
		return ReasonLogout
	case SubjectUser:
		return SubjectUser
	case "ES256":
		return "ES256"
	case "EdDSA":
		return "EdDSA"
	case "RS256":
		return "RS256"
	case "compromised":
		return "compromised"
	case "authorization_code":
		return "authorization_code"
	case "urn:ietf:params:oauth:grant-type:device_code":
		return "urn:ietf:params:oauth:grant-type:device_code"
	case "issuer":
		return "issuer"
	case "introspection":
		return "introspection"
	case "revocation":
		return "revocation"
	}
	return string(v)
}

// looseEqual reports whether key could name the field name under any
// case-insensitive matching: it compares ASCII letters without case and
// ignores '_' and '-'. Keys it matches but that are not exactly name make
// decodeFast give up rather than guess how encoding/json matches them.
func looseEqual(key []byte, name string) bool {
	i, j := 0, 0
	for {
		for i < len(key) && (key[i] == '_' || key[i] == '-') {
			i++
		}
		for j < len(name) && (name[j] == '_' || name[j] == '-') {
			j++
		}
		if i == len(key) || j == len(name) {
			return i == len(key) && j == len(name)
		}
		if lowerASCII(key[i]) != lowerASCII(name[j]) {
			return false
		}
		i++
		j++
	}
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// skipWS returns the index of the first byte at or after i that is not JSON
// whitespace.
func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// scanKey scans the object key that must start at b[i] and returns the span
// of its bytes, b[k0:k1], with b[k1] the closing quote. Only printable ASCII
// without escapes is accepted: anything else could match a field through
// encoding/json's Unicode case folding.
func scanKey(b []byte, i int) (k0, k1 int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return i + 1, j, true
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return 0, 0, false
		}
	}
	return 0, 0, false
}

// scanString scans the string value that must start at b[i] and returns the
// span of its contents, b[s0:s1], with b[s1] the closing quote, when they are
// exactly the decoded string: no escapes and valid UTF-8.
func scanString(b []byte, i int) (s0, s1 int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, false
	}
	ascii := true
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			if !ascii && !utf8.Valid(b[i+1:j]) {
				return 0, 0, false
			}
			return i + 1, j, true
		case c == '\\' || c < 0x20:
			return 0, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return 0, 0, false
}

// scanInt scans the number that must start at b[i] when it is an integer of
// at most 18 digits (so that it cannot overflow), which encoding/json stores
// in an int64 field as it is. It returns the value and the index past it.
func scanInt(b []byte, i int) (v int64, next int, ok bool) {
	j := i
	neg := j < len(b) && b[j] == '-'
	if neg {
		j++
	}
	d0 := j
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		v = v*10 + int64(b[j]-'0')
		j++
		if j-d0 > 18 {
			return 0, 0, false
		}
	}
	switch {
	case j == d0, b[d0] == '0' && j-d0 > 1:
		return 0, 0, false
	case j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E'):
		return 0, 0, false
	}
	if neg {
		v = -v
	}
	return v, j, true
}

func hasLiteral(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// skipValue checks the JSON value starting at b[i], as strictly as
// encoding/json, and returns the index just past it.
func skipValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{':
		if depth >= maxFastDepth {
			return 0, false
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			var ok bool
			if i >= len(b) || b[i] != '"' {
				return 0, false
			}
			if i, ok = skipString(b, i); !ok {
				return 0, false
			}
			i = skipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return 0, false
			}
			if i, ok = skipValue(b, skipWS(b, i+1), depth+1); !ok {
				return 0, false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == '}' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipWS(b, i+1)
		}
	case c == '[':
		if depth >= maxFastDepth {
			return 0, false
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = skipValue(b, i, depth+1); !ok {
				return 0, false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == ']' {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = skipWS(b, i+1)
		}
	case c == '-' || c >= '0' && c <= '9':
		return skipNumber(b, i)
	case hasLiteral(b, i, "true"):
		return i + len("true"), true
	case hasLiteral(b, i, "false"):
		return i + len("false"), true
	case hasLiteral(b, i, "null"):
		return i + len("null"), true
	}
	return 0, false
}

// skipString checks the string starting at b[i], escapes included, and
// returns the index just past its closing quote.
func skipString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, true
		case c < 0x20:
			return 0, false
		case c == '\\':
			j++
			if j >= len(b) {
				return 0, false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-j <= 4 {
					return 0, false
				}
				for _, h := range b[j+1 : j+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return 0, false
					}
				}
				j += 4
			default:
				return 0, false
			}
		}
	}
	return 0, false
}

// skipNumber checks the JSON number starting at b[i] and returns the index
// just past it: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return 0, false
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// sourceCache returns the string of the last source it was given again
// rather than allocating another: a stream's events nearly all come from one
// cluster, so one entry is enough. It is safe for concurrent use.
type sourceCache struct {
	last atomic.Pointer[string]
}

// sources is shared by every decoder: what it holds is an immutable string.
var sources sourceCache

func (c *sourceCache) intern(v []byte) string {
	if p := c.last.Load(); p != nil && *p == string(v) {
		return *p
	}
	s := string(v)
	c.last.Store(&s)
	return s
}

// parseTimeUTC parses a UTC RFC 3339 time of the form time.Time's
// MarshalJSON writes for one, "2006-01-02T15:04:05Z" with 0 to 9 fraction
// digits, into exactly the value time.Time's UnmarshalJSON returns for it.
// It reports ok == false for anything else (other offsets, out-of-range
// fields, other spellings), which the caller hands to UnmarshalJSON.
func parseTimeUTC(v []byte) (time.Time, bool) {
	// 2006-01-02T15:04:05Z
	// 01234567890123456789
	if len(v) < 20 || v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' || v[16] != ':' || v[len(v)-1] != 'Z' {
		return time.Time{}, false
	}
	year, ok1 := digitsAt(v, 0, 4)
	month, ok2 := digitsAt(v, 5, 2)
	day, ok3 := digitsAt(v, 8, 2)
	hour, ok4 := digitsAt(v, 11, 2)
	minute, ok5 := digitsAt(v, 14, 2)
	sec, ok6 := digitsAt(v, 17, 2)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 ||
		month < 1 || month > 12 || day < 1 || day > daysIn(time.Month(month), year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	if frac := v[19 : len(v)-1]; len(frac) > 0 {
		// A '.' and 1 to 9 digits.
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return time.Time{}, false
		}
		n, ok := digitsAt(frac, 1, len(frac)-1)
		if !ok {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			n *= 10
		}
		nsec = n
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

// digitsAt returns the decimal number in v[i:i+n], all digits.
func digitsAt(v []byte, i, n int) (int, bool) {
	x := 0
	for _, c := range v[i : i+n] {
		if c < '0' || c > '9' {
			return 0, false
		}
		x = x*10 + int(c-'0')
	}
	return x, true
}

// daysIn returns the number of days in month m of year y (proleptic
// Gregorian calendar, as package time counts).
func daysIn(m time.Month, y int) int {
	if m == time.February {
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	}
	return 31 - int(m-1)%7%2
}
