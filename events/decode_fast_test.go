package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// FuzzDecodeFastMatchesSlow checks that Decode, with its fast path, agrees
// with decodeSlow, the encoding/json reference, on every input: the same
// Event (reflect.DeepEqual) when it accepts, the same sentinel when it
// refuses. It also checks that whatever decodeFast accepts on its own,
// decodeSlow accepts identically.
func FuzzDecodeFastMatchesSlow(f *testing.F) {
	for _, seed := range decodeSeeds(f) {
		f.Add(seed)
	}
	for _, seed := range fastSeeds(f) {
		f.Add(seed.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkFastMatchesSlow(t, in)
	})
}

// checkFastMatchesSlow fails t unless Decode and decodeFast agree with
// decodeSlow on in. It reports whether decodeFast accepted in.
func checkFastMatchesSlow(t *testing.T, in []byte) bool {
	t.Helper()
	orig := bytes.Clone(in)
	want, wantErr := decodeSlow(in)
	fast, fastOK := decodeFast(in)
	got, gotErr := Decode(in)
	if !bytes.Equal(in, orig) {
		t.Fatalf("decoding modified its input %q to %q", orig, in)
	}
	if fastOK {
		if wantErr != nil {
			t.Fatalf("decodeFast accepts what decodeSlow refuses (%v):\n%q\n%#v", wantErr, in, fast)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("decodeFast and decodeSlow differ on %q:\n fast %#v\n      %#v\n slow %#v\n      %#v", in, fast, fast.Payload, want, want.Payload)
		}
	}
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("Decode(%q) = %v, decodeSlow = %v", in, gotErr, wantErr)
	}
	if wantErr != nil {
		for _, sentinel := range []error{ErrMalformed, ErrUnknownType, ErrUnsupportedVersion} {
			if errors.Is(gotErr, sentinel) != errors.Is(wantErr, sentinel) {
				t.Fatalf("Decode(%q) = %v, decodeSlow = %v", in, gotErr, wantErr)
			}
		}
		if gotErr.Error() != wantErr.Error() {
			t.Fatalf("Decode(%q) error %q, decodeSlow %q", in, gotErr, wantErr)
		}
		return fastOK
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode and decodeSlow differ on %q:\n Decode %#v\n slow   %#v", in, got, want)
	}
	return fastOK
}

type fastSeed struct {
	name string
	in   []byte
	// fast says what decodeFast must do: "accept", "decline" (leave it to
	// decodeSlow), or "" for either.
	fast string
}

// fastSeeds are inputs at the edges of what decodeFast handles.
func fastSeeds(t testing.TB) []fastSeed {
	t.Helper()
	tr := string(encoded(t, TypeTokenRevoked))
	key := string(encoded(t, TypeKeyPublished))
	subj := string(encoded(t, TypeSubjectRevoked))
	rot := string(encoded(t, TypeFamilyRotated))
	hb := string(encoded(t, TypeHeartbeat))
	rep := strings.Replace
	seeds := []fastSeed{
		{"token.revoked as encoded", []byte(tr), "accept"},
		{"with actor", []byte(rep(tr, `"time":`, `"actor":"system","time":`, 1)), "accept"},
		{"unicode actor", []byte(rep(tr, `"time":`, `"actor":"Zoë Ångström","time":`, 1)), "accept"},
		{"unicode jti", []byte(rep(tr, `"jti":"tok_1"`, `"jti":"tök_1"`, 1)), "accept"},
		{"unknown envelope attribute", []byte(rep(tr, `"time":`, `"traceparent":"00-4bf9-01","time":`, 1)), "accept"},
		{"unknown nested envelope value", []byte(rep(tr, `"time":`, `"x":{"a\"b\u00e9\\":[1,-2.5e+3,0.0,1E-7,true,false,null,"\/\b\f\n\r\t",{},[]]},"time":`, 1)), "accept"},
		{"unknown data field of another type", []byte(rep(tr, `"jti":`, `"kid":"a.b","generation":"x","jti":`, 1)), "accept"},
		{"whitespace everywhere", []byte(" \r\n\t" + strings.NewReplacer(`,"`, " ,\r\n\t\"", `":`, "\"\t: ", `{"`, "{ \"", "}", " }").Replace(tr) + "\n\t "), "accept"},
		{"data before type", []byte(rep(rep(tr, `"type":"token.revoked",`, "", 1), `}}`, `},"type":"token.revoked"}`, 1)), "accept"},
		{"data first", []byte(`{"data":{"jti":"j","exp":5},"specversion":"1.0","id":"i","source":"s","type":"token.revoked","schemaversion":"1.3","time":"2026-11-25T19:52:03Z"}`), "accept"},
		{"no datacontenttype", []byte(rep(tr, `"datacontenttype":"application/json",`, "", 1)), "accept"},
		{"datacontenttype with parameters", []byte(rep(tr, `"application/json"`, `"Application/JSON; charset=utf-8"`, 1)), "accept"},
		{"schemaversion 01.12", []byte(rep(tr, `"schemaversion":"1.0"`, `"schemaversion":"01.12"`, 1)), "accept"},
		{"time with an offset", []byte(rep(tr, `.412Z"`, `.412+01:00"`, 1)), "accept"},
		{"time with a zero offset", []byte(rep(tr, `.412Z"`, `.412+00:00"`, 1)), "accept"},
		{"time without a fraction", []byte(rep(tr, `.412Z"`, `Z"`, 1)), "accept"},
		{"time in nanoseconds", []byte(rep(tr, `.412Z"`, `.412000001Z"`, 1)), "accept"},
		{"time with ten fraction digits", []byte(rep(tr, `.412Z"`, `.4120000019Z"`, 1)), "accept"},
		{"time with a comma", []byte(rep(tr, `.412Z"`, `,412Z"`, 1)), "accept"},
		{"time on 29 February", []byte(rep(tr, `2026-11-25T`, `2024-02-29T`, 1)), "accept"},
		{"time on 29 February 2100", []byte(rep(tr, `2026-11-25T`, `2100-02-29T`, 1)), "decline"},
		{"time on 31 April", []byte(rep(tr, `2026-11-25T`, `2026-04-31T`, 1)), "decline"},
		{"time at 24:00", []byte(rep(tr, `T19:52:03`, `T24:00:00`, 1)), "decline"},
		{"time at a leap second", []byte(rep(tr, `T19:52:03`, `T23:59:60`, 1)), "decline"},
		{"time in year 0", []byte(rep(tr, `2026-11-25T`, `0000-01-01T`, 1)), "accept"},
		{"time with a lower-case z", []byte(rep(tr, `.412Z"`, `.412z"`, 1)), "decline"},
		{"time with a lower-case t", []byte(rep(tr, `2026-11-25T`, `2026-11-25t`, 1)), "decline"},
		{"time with a space", []byte(rep(tr, `2026-11-25T`, `2026-11-25 `, 1)), "decline"},
		{"time with an empty fraction", []byte(rep(tr, `.412Z"`, `.Z"`, 1)), "decline"},
		{"exp of 18 digits", []byte(rep(tr, `"exp":`, `"exp":123456789012345678,"x":`, 1)), "accept"},
		{"grace true", []byte(rot), "accept"},
		{"grace false", []byte(rep(rot, `"grace":true`, `"grace":false`, 1)), "accept"},
		{"empty optional string", []byte(rep(hb, `"service":"issuer"`, `"service":""`, 1)), "accept"},

		{"key differs in case", []byte(rep(tr, `"id":`, `"ID":`, 1)), "decline"},
		{"data key differs in case", []byte(rep(tr, `"data":`, `"Data":`, 1)), "decline"},
		{"payload key differs in case", []byte(rep(tr, `"jti":`, `"JTI":`, 1)), "decline"},
		{"payload key with a dash", []byte(rep(tr, `"client_id":`, `"client-id":`, 1)), "decline"},
		{"kelvin sign kid", []byte(rep(key, `"kid":`, `"`+"\u212a"+`id":`, 1)), "decline"},
		{"long s sub", []byte(rep(subj, `"sub":`, `"`+"\u017f"+`ub":`, 1)), "decline"},
		{"escaped key", []byte(rep(tr, `"jti":`, `"j\u0074i":`, 1)), "decline"},
		{"escaped unknown key", []byte(rep(tr, `"jti":`, `"x\u0074":1,"jti":`, 1)), "decline"},
		{"non-ASCII unknown key", []byte(rep(tr, `"jti":`, `"é":1,"jti":`, 1)), "decline"},
		{"duplicate id", []byte(rep(tr, `"source":`, `"id":"other","source":`, 1)), "decline"},
		{"duplicate jti", []byte(rep(tr, `"exp":`, `"jti":"other","exp":`, 1)), "decline"},
		{"jti then null jti", []byte(rep(tr, `"exp":`, `"jti":null,"exp":`, 1)), "decline"},
		{"null actor", []byte(rep(tr, `"time":`, `"actor":null,"time":`, 1)), "decline"},
		{"null time", []byte(rep(tr, `"id":`, `"time":null,"id":`, 1)), "decline"},
		{"null exp", []byte(rep(tr, `"exp":`, `"exp":null,"x":`, 1)), "decline"},
		{"escaped jti", []byte(rep(tr, `"jti":"tok_1"`, `"jti":"tok\u005f1"`, 1)), "decline"},
		{"escaped id", []byte(rep(tr, `"id":"`, `"id":"a\/`, 1)), "decline"},
		{"escaped time", []byte(rep(tr, `.412Z"`, `.412\u005a"`, 1)), "decline"},
		{"invalid UTF-8 jti", []byte(rep(tr, `"jti":"tok_1"`, "\"jti\":\"t\xffk\"", 1)), "decline"},
		{"invalid UTF-8 actor", []byte(rep(tr, `"time":`, "\"actor\":\"a\xed\xa0\x80b\",\"time\":", 1)), "decline"},
		{"exp -0", []byte(rep(tr, `"exp":`, `"exp":-0,"x":`, 1)), "decline"},
		{"exp 0", []byte(rep(tr, `"exp":`, `"exp":0,"x":`, 1)), "decline"},
		{"exp negative", []byte(rep(tr, `"exp":`, `"exp":-5,"x":`, 1)), "decline"},
		{"exp 01", []byte(rep(tr, `"exp":`, `"exp":01,"x":`, 1)), "decline"},
		{"exp 1.0", []byte(rep(tr, `"exp":`, `"exp":1.0,"x":`, 1)), "decline"},
		{"exp 1e3", []byte(rep(tr, `"exp":`, `"exp":1e3,"x":`, 1)), "decline"},
		{"exp of 19 digits", []byte(rep(tr, `"exp":`, `"exp":1234567890123456789,"x":`, 1)), "decline"},
		{"exp a string", []byte(rep(tr, `"exp":`, `"exp":"5","x":`, 1)), "decline"},
		{"exp true", []byte(rep(tr, `"exp":`, `"exp":true,"x":`, 1)), "decline"},
		{"grace 1", []byte(rep(rot, `"grace":true`, `"grace":1`, 1)), "decline"},
		{"grace a string", []byte(rep(rot, `"grace":true`, `"grace":"true"`, 1)), "decline"},
		{"grace truex", []byte(rep(rot, `"grace":true`, `"grace":truex`, 1)), "decline"},
		{"id a number", []byte(rep(tr, `"id":"`, `"id":5,"x":"`, 1)), "decline"},
		{"data a string", []byte(rep(tr, `"data":{"jti":"tok_1"`, `"data":"{\"jti\":\"tok_1\"}","y":{"jti":"tok_1"`, 1)), "decline"},
		{"data empty", []byte(rep(tr, `"data":{`, `"data":{},"x":{`, 1)), "decline"},
		{"unknown type", []byte(rep(tr, `"token.revoked"`, `"token.issued"`, 1)), "decline"},
		{"schemaversion 2.0", []byte(rep(tr, `"schemaversion":"1.0"`, `"schemaversion":"2.0"`, 1)), "decline"},
		{"missing time", []byte(rep(tr, `"time":"2026-11-25T19:52:03.412Z",`, "", 1)), "decline"},
		{"trailing garbage", []byte(tr + "x"), "decline"},
		{"trailing comma", []byte(rep(tr, `}}`, `},}`, 1)), "decline"},
		{"trailing comma in data", []byte(rep(tr, `}}`, `,}}`, 1)), "decline"},
		{"leading byte order mark", []byte("\ufeff" + tr), "decline"},
		{"form feed", []byte(rep(tr, `,`, ",\f", 1)), "decline"},
		{"no-break space", []byte(rep(tr, `,`, ",\u00a0", 1)), "decline"},
		{"control character in an unknown string", []byte(rep(tr, `"jti":`, "\"x\":\"a\x01\",\"jti\":", 1)), "decline"},
		{"bad escape in an unknown string", []byte(rep(tr, `"jti":`, `"x":"\x",`+`"jti":`, 1)), "decline"},
		{"short unicode escape", []byte(rep(tr, `"jti":`, `"x":"\u12",`+`"jti":`, 1)), "decline"},
		{"number 1.", []byte(rep(tr, `"jti":`, `"x":1.,"jti":`, 1)), "decline"},
		{"number 1e", []byte(rep(tr, `"jti":`, `"x":1e+,"jti":`, 1)), "decline"},
		{"number -", []byte(rep(tr, `"jti":`, `"x":-,"jti":`, 1)), "decline"},
		{"number +1", []byte(rep(tr, `"jti":`, `"x":+1,"jti":`, 1)), "decline"},
		{"number .5", []byte(rep(tr, `"jti":`, `"x":.5,"jti":`, 1)), "decline"},
		{"literal nul", []byte(rep(tr, `"jti":`, `"x":nul,"jti":`, 1)), "decline"},
		{"missing colon", []byte(rep(tr, `"jti":`, `"x" 1,"jti":`, 1)), "decline"},
		{"missing comma", []byte(rep(tr, `"jti":`, `"x":1 "jti":`, 1)), "decline"},
		{"array closed by brace", []byte(rep(tr, `"jti":`, `"x":[1},"jti":`, 1)), "decline"},
		{"nested too deep for the fast path", []byte(rep(tr, `"jti":`, `"x":`+strings.Repeat("[", maxFastDepth+1)+strings.Repeat("]", maxFastDepth+1)+`,"jti":`, 1)), "decline"},
		{"nested as deep as the fast path goes", []byte(rep(tr, `"jti":`, `"x":`+strings.Repeat(`{"a":`, maxFastDepth)+"1"+strings.Repeat("}", maxFastDepth)+`,"jti":`, 1)), "accept"},
		{"nested beyond encoding/json", []byte(rep(tr, `"jti":`, `"x":`+strings.Repeat("[", 10001)+strings.Repeat("]", 10001)+`,"jti":`, 1)), "decline"},
		{"truncated", []byte(tr[:len(tr)-1]), "decline"},
	}
	return seeds
}

// TestDecodeFastEdges runs the edge cases through the differential check and
// pins down which side of the fast path each falls on, so that the fast path
// is known to be taken for the shapes producers write.
func TestDecodeFastEdges(t *testing.T) {
	for _, s := range fastSeeds(t) {
		t.Run(s.name, func(t *testing.T) {
			fastOK := checkFastMatchesSlow(t, s.in)
			switch {
			case s.fast == "accept" && !fastOK:
				t.Errorf("decodeFast declines %q; want it to accept", s.in)
			case s.fast == "decline" && fastOK:
				t.Errorf("decodeFast accepts %q; want it to leave it to decodeSlow", s.in)
			}
		})
	}
}

// TestDecodeFastTakesEveryType checks that every type's encoding, the docs
// examples and the re-encodings encoding/json makes of them (keys sorted, so
// data before type) take the fast path with the slow path's result.
func TestDecodeFastTakesEveryType(t *testing.T) {
	var inputs [][]byte
	for _, typ := range Types() {
		b, err := sampleEvent(t, typ).WithActor("admin-cli").Encode()
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, b, mutate(t, b, func(map[string]any) {}))
	}
	for _, ex := range docExamples(t) {
		inputs = append(inputs, ex.body)
	}
	for _, in := range inputs {
		if !checkFastMatchesSlow(t, in) {
			t.Errorf("decodeFast declines %s", in)
		}
	}
}

// TestDecodeFastMatchesSlowOnSeeds runs the seed corpus of the Decode fuzz
// tests through the differential check.
func TestDecodeFastMatchesSlowOnSeeds(t *testing.T) {
	for _, in := range decodeSeeds(t) {
		checkFastMatchesSlow(t, in)
	}
}

// TestFastEnvelopeFields keeps envNames in step with Envelope: decodeFast
// fills the envelope by hand, so a new attribute must be added there too.
func TestFastEnvelopeFields(t *testing.T) {
	rt := reflect.TypeFor[Envelope]()
	var names []string
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	if !reflect.DeepEqual(names, envNames[:]) {
		t.Fatalf("Envelope JSON fields are %q; decodeFast knows %q", names, envNames)
	}
}

// TestFastPayloadFields checks that decodeFast fills every payload type, and
// that the sample payloads set every field, so that the tests above compare
// every field on both paths.
func TestFastPayloadFields(t *testing.T) {
	samples := samplePayloads()
	for _, typ := range Types() {
		ft := fastTypes[string(typ)]
		if ft == nil || ft.typ != typ || ft.fields == nil {
			t.Errorf("%s always takes the slow path", typ)
			continue
		}
		v := reflect.ValueOf(samples[typ]).Elem()
		if len(ft.fields) != v.NumField() {
			t.Errorf("%s: decodeFast fills %d fields of %d", typ, len(ft.fields), v.NumField())
		}
		for i := range v.NumField() {
			if v.Field(i).IsZero() {
				t.Errorf("sample %s leaves %s unset", typ, v.Type().Field(i).Name)
			}
		}
	}
}

func TestFastFieldsRefusesWhatItCannotDecode(t *testing.T) {
	type withString struct {
		N int64 `json:"n,string"`
	}
	type withFloat struct {
		F float64 `json:"f"`
	}
	type withUntagged struct {
		Name string
	}
	type withTime struct {
		T Type      `json:"t"`
		S time2text `json:"s"`
	}
	type embedded struct {
		withFloat
	}
	type folded struct {
		A string `json:"client_id"`
		B string `json:"clientid"`
	}
	for _, v := range []any{&withString{}, &withFloat{}, &withUntagged{}, &withTime{}, &embedded{}, &folded{}, withFloat{}} {
		if f := fastFields(reflect.TypeOf(v)); f != nil {
			t.Errorf("fastFields(%T) = %v, want nil", v, f)
		}
	}
}

// time2text is a string decoded through UnmarshalText.
type time2text string

func (t *time2text) UnmarshalText(b []byte) error { *t = time2text(b); return nil }

// TestDecodeFastMatchesSlowGenerated runs the differential check on events
// generated with the variations byte-level fuzzing reaches slowly: keys
// repeated, dropped, reordered or differing in case (also by Unicode
// folding), values of the wrong kind or escaped, unknown fields, whitespace.
func TestDecodeFastMatchesSlowGenerated(t *testing.T) {
	n := 4000
	if testing.Short() {
		n = 500
	}
	rng := rand.New(rand.NewPCG(1, 2))
	types := Types()
	odd := []string{
		`null`, `""`, `"\u0041"`, `"a\u00e9"`, `"é"`, "\"\xff\"", `"a b"`, `0`, `-0`, `1`, `-1`, `07`,
		`1.5`, `1e3`, `12345678901234567890`, `123456789012345678`, `true`, `false`, `[]`, `{}`,
		`{"a":[1,"b",{"c":null}]}`, `"1.0"`, `"2.0"`, `"1.9"`, `"token.revoked"`, `"key.retired"`,
		`"2026-11-25T19:52:03Z"`, `"2026-11-25T19:52:03.5+02:00"`, `"application/json"`, `"user"`,
		`"client"`, `"ES256"`, `"none"`, `"` + testThumbprint + `"`, `"k1"`, `"a.b"`, `"tok_1"`,
	}
	key := func(name string) string {
		switch rng.IntN(40) {
		case 0:
			return strings.ToUpper(name)
		case 1:
			return strings.ToUpper(name[:1]) + name[1:]
		case 2:
			return strings.Replace(strings.Replace(name, "k", "\u212a", 1), "s", "\u017f", 1)
		case 3:
			return "x" + name
		case 4:
			return strings.ReplaceAll(name, "_", "-")
		case 5:
			return strings.Replace(name, "i", `\u0069`, 1)
		}
		return name
	}
	ws := func() string {
		if rng.IntN(4) != 0 {
			return ""
		}
		return []string{" ", "\n\t", "\r\n  ", "\t"}[rng.IntN(4)]
	}
	object := func(pairs [][2]string) string {
		if rng.IntN(5) == 0 {
			rng.Shuffle(len(pairs), func(i, j int) { pairs[i], pairs[j] = pairs[j], pairs[i] })
		}
		var b strings.Builder
		b.WriteString(ws() + "{")
		for i, p := range pairs {
			if i > 0 {
				b.WriteString(ws() + ",")
			}
			b.WriteString(ws() + `"` + p[0] + `"` + ws() + ":" + ws() + p[1] + ws())
		}
		b.WriteString("}" + ws())
		return b.String()
	}
	// vary edits pairs: with wild set, it drops, repeats, renames and
	// changes fields; either way, it may add an unknown one.
	vary := func(pairs [][2]string, wild bool) [][2]string {
		var out [][2]string
		for _, p := range pairs {
			if !wild {
				out = append(out, p)
				continue
			}
			switch r := rng.IntN(100); {
			case r < 3: // dropped
				continue
			case r < 6: // repeated
				out = append(out, p, [2]string{p[0], odd[rng.IntN(len(odd))]})
				continue
			case r < 12:
				p[1] = odd[rng.IntN(len(odd))]
			}
			p[0] = key(p[0])
			out = append(out, p)
		}
		if rng.IntN(5) == 0 {
			out = append(out, [2]string{"x" + strconv.Itoa(rng.IntN(3)), odd[rng.IntN(len(odd))]})
		}
		return out
	}
	fast := 0
	for range n {
		typ := types[rng.IntN(len(types))]
		e := sampleEvent(t, typ)
		pv := reflect.ValueOf(e.Payload).Elem()
		var data [][2]string
		for i := range pv.NumField() {
			name, _, _ := strings.Cut(pv.Type().Field(i).Tag.Get("json"), ",")
			v, err := json.Marshal(pv.Field(i).Interface())
			if err != nil {
				t.Fatal(err)
			}
			data = append(data, [2]string{name, string(v)})
		}
		if rng.IntN(10) == 0 {
			typ = types[rng.IntN(len(types))] // a payload of another type
		}
		env := [][2]string{
			{"specversion", `"1.0"`}, {"id", `"` + e.ID + `"`}, {"source", `"` + e.Source + `"`},
			{"type", `"` + string(typ) + `"`}, {"schemaversion", `"1.0"`},
			{"time", `"2026-11-25T19:52:03.412Z"`}, {"actor", `"admin-cli"`},
			{"datacontenttype", `"application/json"`}, {"data", object(vary(data, rng.IntN(2) == 0))},
		}
		if checkFastMatchesSlow(t, []byte(object(vary(env, rng.IntN(2) == 0)))) {
			fast++
		}
	}
	if fast < n/10 || fast > n*9/10 {
		t.Errorf("decodeFast took %d of %d generated events; the generator no longer exercises both paths", fast, n)
	}
	t.Logf("decodeFast took %d of %d generated events", fast, n)
}

// FuzzParseTimeUTC checks that parseTimeUTC, decodeFast's parser of the time
// attribute, returns exactly what time.Time's UnmarshalJSON does whenever it
// accepts.
func FuzzParseTimeUTC(f *testing.F) {
	for _, seed := range []string{
		"2026-11-25T19:52:03.412Z", "2026-11-25T19:52:03Z", "2026-11-25T19:52:03.123456789Z",
		"2026-11-25T19:52:03.1234567891Z", "2024-02-29T00:00:00Z", "2100-02-29T00:00:00Z",
		"2026-04-31T00:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z",
		"2026-11-25T24:00:00Z", "2026-11-25T23:59:60Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z",
		"2026-11-25T19:52:03.Z", "2026-11-25T19:52:03,5Z", "2026-11-25T19:52:03+01:00", "-001-11-25T19:52:03Z",
		"2026-11-25t19:52:03z", "+026-11-25T19:52:03Z", "2026-11-25T19:52:03.4 Z",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		got, ok := parseTimeUTC(v)
		if !ok {
			return
		}
		var want time.Time
		quoted := append(append([]byte{'"'}, v...), '"')
		if err := want.UnmarshalJSON(quoted); err != nil {
			t.Fatalf("parseTimeUTC accepts %q, UnmarshalJSON refuses it: %v", v, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parseTimeUTC(%q) = %#v, UnmarshalJSON gives %#v", v, got, want)
		}
	})
}

// TestParseTimeUTCTakesWhatMarshalWrites checks that the times Encode writes
// (time.Time's MarshalJSON of a UTC time, 0 to 9 fraction digits) take
// parseTimeUTC rather than the slower UnmarshalJSON.
func TestParseTimeUTCTakesWhatMarshalWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 10000 {
		at := time.Unix(rng.Int64N(253402300799), 0).UTC()
		switch i % 4 {
		case 1:
			at = at.Add(time.Duration(rng.Int64N(1e9)))
		case 2:
			at = at.Add(time.Duration(rng.Int64N(1000)) * time.Millisecond)
		case 3:
			at = at.Add(time.Duration(rng.Int64N(1e6)) * time.Microsecond)
		}
		b, err := at.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseTimeUTC(b[1 : len(b)-1])
		if !ok {
			t.Fatalf("parseTimeUTC declines %s", b)
		}
		var want time.Time
		if err := want.UnmarshalJSON(b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parseTimeUTC(%s) = %#v, UnmarshalJSON gives %#v", b, got, want)
		}
	}
}

// TestDecodeSourcesConcurrently decodes events of two sources on several
// goroutines at once: the cache that spares a source string its allocation
// must never hand one event another's source.
func TestDecodeSourcesConcurrently(t *testing.T) {
	var msgs [2][]byte
	for i, src := range []string{"https://a.example.com", "https://b.example.com"} {
		e, err := New(NewID(), src, testTime, &TokenRevoked{JTI: "j", Exp: testTime.Unix() + 60})
		if err != nil {
			t.Fatal(err)
		}
		if msgs[i], err = e.Encode(); err != nil {
			t.Fatal(err)
		}
	}
	want := [2]string{"https://a.example.com", "https://b.example.com"}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				k := (i + g) % 2
				e, err := Decode(msgs[k])
				if err != nil {
					t.Error(err)
					return
				}
				if e.Source != want[k] {
					t.Errorf("decoded source %q, want %q", e.Source, want[k])
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestSchemaVersionIsOfSchemaMajor keeps the two constants in step:
// checkVersion accepts SchemaVersion without parsing it.
func TestSchemaVersionIsOfSchemaMajor(t *testing.T) {
	major, _, ok := strings.Cut(SchemaVersion, ".")
	if !ok || major != strconv.Itoa(SchemaMajor) {
		t.Fatalf("SchemaVersion %q is not of major %d", SchemaVersion, SchemaMajor)
	}
}
