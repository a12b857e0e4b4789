package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap/zaptest"

	"github.com/valetauth/valet/events"
	"github.com/valetauth/valet/pkg/store"
)

// memStore is an in-memory store.KeyStore with the contract's semantics
// (Version 1 on create, compare-and-set on update, list by CreatedAt then
// kid, kid/alg/state validation) and func-field hooks to inject failures.
// The Redis backend has its own conformance suite; this fake only has to be
// faithful to the contract.
type memStore struct {
	mu   sync.Mutex
	keys map[string]store.SigningKey

	// listErr, when set, fails ListKeys.
	listErr func() error
	// beforeUpdate, when set, runs before UpdateKey compares versions; a
	// non-nil error is returned instead.
	beforeUpdate func(k store.SigningKey) error
	updates      int
}

var _ Store = (*memStore)(nil)

func newMemStore() *memStore { return &memStore{keys: map[string]store.SigningKey{}} }

var kidRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

func checkKey(k store.SigningKey) error {
	if !kidRE.MatchString(k.KID) || k.Alg == "" || !slices.Contains(allStates, k.State) {
		return fmt.Errorf("memstore: invalid key %q alg %q state %q", k.KID, k.Alg, k.State)
	}
	return nil
}

func cloneKey(k store.SigningKey) store.SigningKey {
	k.PublicJWK, k.Sealed = bytes.Clone(k.PublicJWK), bytes.Clone(k.Sealed)
	return k
}

func (s *memStore) CreateKey(_ context.Context, k store.SigningKey) error {
	if err := checkKey(k); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[k.KID]; ok {
		return store.ErrAlreadyExists
	}
	k.Version = 1
	s.keys[k.KID] = cloneKey(k)
	return nil
}

func (s *memStore) UpdateKey(_ context.Context, k store.SigningKey) (store.SigningKey, error) {
	if err := checkKey(k); err != nil {
		return store.SigningKey{}, err
	}
	if s.beforeUpdate != nil {
		if err := s.beforeUpdate(k); err != nil {
			return store.SigningKey{}, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.keys[k.KID]
	if !ok {
		return store.SigningKey{}, store.ErrNotFound
	}
	if cur.Version != k.Version {
		return store.SigningKey{}, store.ErrConflict
	}
	k.Version++
	s.keys[k.KID] = cloneKey(k)
	s.updates++
	return cloneKey(k), nil
}

func (s *memStore) ListKeys(context.Context) ([]store.SigningKey, error) {
	if s.listErr != nil {
		if err := s.listErr(); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.SigningKey, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, cloneKey(k))
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].KID < out[j].KID
	})
	return out, nil
}

func (s *memStore) DeleteKey(_ context.Context, kid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[kid]; !ok {
		return store.ErrNotFound
	}
	delete(s.keys, kid)
	return nil
}

// get returns the stored key kid, failing t when there is none.
func (s *memStore) get(t *testing.T, kid string) store.SigningKey {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[kid]
	if !ok {
		t.Fatalf("store has no key %s", kid)
	}
	return cloneKey(k)
}

// inState returns the kids stored in state st.
func (s *memStore) inState(st store.KeyState) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, k := range s.keys {
		if k.State == st {
			out = append(out, k.KID)
		}
	}
	sort.Strings(out)
	return out
}

// published is one acknowledged event.
type published struct {
	seq  int
	typ  events.Type
	kid  string
	at   time.Time // the envelope time
	ev   events.Event
	dupe bool // same id as an earlier one: JetStream would have dropped it
}

// recorder is a Publisher that records what it acknowledged, like
// JetStream: an id seen before is a successful duplicate. fail, when set,
// fails a publish before anything is recorded; onPublish runs first, to
// inspect the world at the moment of publishing.
type recorder struct {
	mu        sync.Mutex
	log       []published
	ids       map[string]bool
	fail      func(e events.Event) error
	onPublish func(e events.Event)
}

func newRecorder() *recorder { return &recorder{ids: map[string]bool{}} }

func (r *recorder) Publish(_ context.Context, e events.Event) error {
	if _, err := e.Encode(); err != nil {
		return fmt.Errorf("recorder: event every consumer would refuse: %w", err)
	}
	if r.onPublish != nil {
		r.onPublish(e)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(e); err != nil {
			return err
		}
	}
	dupe := r.ids[e.ID]
	r.ids[e.ID] = true
	r.log = append(r.log, published{seq: len(r.log), typ: e.Type, kid: events.KeyID(e.Payload), at: e.Time, ev: e, dupe: dupe})
	return nil
}

// setFail replaces the failure function.
func (r *recorder) setFail(f func(events.Event) error) {
	r.mu.Lock()
	r.fail = f
	r.mu.Unlock()
}

// events returns the acknowledged, non-duplicate events, as "type kid".
func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.log {
		if !p.dupe {
			out = append(out, string(p.typ)+" "+p.kid)
		}
	}
	return out
}

// has reports whether an event of type t for kid was acknowledged.
func (r *recorder) has(t events.Type, kid string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.log {
		if p.typ == t && p.kid == kid {
			return true
		}
	}
	return false
}

// latest returns the type of the last event acknowledged for kid — what a
// latest-per-subject key stream keeps — or "".
func (r *recorder) latest(kid string) events.Type {
	r.mu.Lock()
	defer r.mu.Unlock()
	var t events.Type
	for _, p := range r.log {
		if p.kid == kid && !p.dupe {
			t = p.typ
		}
	}
	return t
}

var errNATSDown = errors.New("nats: no responders")

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2026, 11, 25, 19, 52, 3, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testConfig is a realistic policy: rotate hourly with a 10-minute lead,
// 15-minute tokens.
func testConfig() Config {
	return Config{
		Source:           "https://auth.example.com",
		JWKSURI:          "https://auth.example.com/jwks.json",
		Algorithm:        ES256,
		RotationInterval: time.Hour,
		PublishLeadTime:  10 * time.Minute,
		MaxTokenLifetime: 15 * time.Minute,
		ClockSkew:        30 * time.Second,
		RefreshInterval:  5 * time.Second,
	}
}

func randomKEK(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KEKSize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func testRing(t *testing.T) *KEKRing {
	t.Helper()
	r, err := NewKEKRing("kek-1", map[string][]byte{"kek-1": randomKEK(t)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fixture is one cluster: a shared store, a shared stream, a clock, a ring.
type fixture struct {
	st   *memStore
	pub  *recorder
	clk  *clock
	ring *KEKRing
	cfg  Config
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return &fixture{st: newMemStore(), pub: newRecorder(), clk: newClock(), ring: testRing(t), cfg: testConfig()}
}

// replica returns a new Manager (one issuer replica) of the cluster.
func (f *fixture) replica(t *testing.T, opts ...Option) *Manager {
	t.Helper()
	m, err := New(f.cfg, f.st, f.pub, f.ring, append([]Option{WithClock(f.clk.Now), WithLogger(zaptest.NewLogger(t))}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

func refresh(t *testing.T, m *Manager) {
	t.Helper()
	if err := m.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
}

func current(t *testing.T, m *Manager) *Signer {
	t.Helper()
	s, err := m.Current()
	if err != nil {
		t.Fatalf("Current: %v", err)
	}
	return s
}

// jwksOf returns the replica's JWKS, parsed, failing t on error.
func jwksOf(t *testing.T, m *Manager) jwk.Set {
	t.Helper()
	b, err := m.JWKS()
	if err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	set, err := jwk.Parse(b)
	if err != nil {
		t.Fatalf("parse JWKS %s: %v", b, err)
	}
	return set
}

// kidsOf returns the kids in a JWKS, sorted.
func kidsOf(set jwk.Set) []string {
	var out []string
	for i := range set.Len() {
		k, _ := set.Key(i)
		out = append(out, k.KeyID())
	}
	sort.Strings(out)
	return out
}

// privateMembers are the JWK members that hold private key material
// (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// checkPublicOnly fails t if the JWKS JSON holds any private member.
func checkPublicOnly(t *testing.T, raw []byte) {
	t.Helper()
	var doc struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("JWKS is not JSON: %v", err)
	}
	for _, k := range doc.Keys {
		for _, member := range privateMembers {
			if _, ok := k[member]; ok {
				t.Fatalf("JWKS key %s has private member %q", k["kid"], member)
			}
		}
	}
}

// claims returns RFC 9068 access-token claims (§2.2) issued at now.
func claims(now time.Time, ttl time.Duration, jti string) []byte {
	b, _ := json.Marshal(map[string]any{
		"iss":       "https://auth.example.com",
		"sub":       "svc-reports",
		"aud":       "https://api.example.com",
		"exp":       now.Add(ttl).Unix(),
		"iat":       now.Unix(),
		"jti":       jti,
		"client_id": "svc-reports",
		"scope":     "reports:read reports:write",
	})
	return b
}

func joined(s []string) string { return strings.Join(s, ",") }
