// Package conformance is the test suite every store backend must pass: the
// pattern of dex's storage/conformance. A backend's test only builds the store
// and calls RunTests and RunConcurrencyTests; its benchmarks likewise build
// the store and call the shared bodies (BenchRedeemAuthCode and the others),
// so that every backend's figures measure the same work.
package conformance

import (
	"testing"

	"github.com/valetauth/valet/pkg/store"
)

// NewStore returns a fresh, empty store for one subtest; it registers its own
// cleanup with t.
type NewStore func(t *testing.T) store.Store

// subtest is one named case run against a fresh store.
type subtest struct {
	name string
	run  func(t *testing.T, s store.Store)
}

// RunTests runs every functional case, each on a fresh empty store: missing,
// duplicate, round-trip, update, expiry, revocation and cut-off cases.
func RunTests(t *testing.T, newStore NewStore) {
	run(t, newStore, grantTests, revocationTests, registryTests)
}

// RunConcurrencyTests runs the contention cases (many goroutines against one
// record): exactly one winner, never two live branches.
func RunConcurrencyTests(t *testing.T, newStore NewStore) {
	run(t, newStore, concurrencyTests)
}

func run(t *testing.T, newStore NewStore, groups ...[]subtest) {
	t.Helper()
	for _, g := range groups {
		for _, tc := range g {
			t.Run(tc.name, func(t *testing.T) {
				tc.run(t, newStore(t))
			})
		}
	}
}
