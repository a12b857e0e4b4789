package main

import (
	"fmt"
	"slices"
	"time"
)

// dist summarizes durations.
type dist struct {
	n             int
	p50, p99, max time.Duration
}

func summarize(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return dist{n: len(s), p50: quantile(s, 0.50), p99: quantile(s, 0.99), max: s[len(s)-1]}
}

// quantile is the nearest-rank quantile of sorted s.
func quantile(s []time.Duration, q float64) time.Duration {
	r := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(r, len(s)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// result is one measurement at N edges.
type result struct {
	kind  string // "steady" or "burst"
	edges int
	// revocations sent, and how many got a 200.
	sent, ok int
	// rate is the /revoke rate achieved (200s per second of sending).
	rate float64
	// revokeLat is send → 200 of /revoke.
	revokeLat dist
	// pair is 200 → rejection, over every (token, edge) pair; all is, per
	// token, 200 → the last edge's rejection.
	pair, all dist
	// fromSend is, per token, /revoke sent → the last edge's rejection (an
	// upper bound including the whole request).
	fromSend dist
	// early counts pairs whose edge rejected before the client had its 200
	// (counted as 0); missing counts pairs never rejected within the wait.
	early, missing int
	// wall is first send → every edge rejects every token (burst).
	wall time.Duration
}

func printResults(rs []result) {
	fmt.Println()
	fmt.Println("Revocation propagation: 200 of /revoke → Verify returns ErrRevoked (ms)")
	fmt.Printf("%-6s %5s %7s %6s | %-15s | %-24s | %-24s | %-22s | %6s %4s %8s\n",
		"phase", "edges", "revoked", "rev/s", "/revoke p50 p99", "every edge p50/p99/max", "each pair p50/p99/max", "sent→every p50/p99/max", "early", "miss", "wall")
	for _, r := range rs {
		wall := "-"
		if r.wall > 0 {
			wall = ms(r.wall)
		}
		fmt.Printf("%-6s %5d %7d %6.0f | %-15s | %-24s | %-24s | %-22s | %6d %4d %8s\n",
			r.kind, r.edges, r.ok, r.rate,
			ms(r.revokeLat.p50)+" "+ms(r.revokeLat.p99),
			ms(r.all.p50)+" / "+ms(r.all.p99)+" / "+ms(r.all.max),
			ms(r.pair.p50)+" / "+ms(r.pair.p99)+" / "+ms(r.pair.max),
			ms(r.fromSend.p50)+" / "+ms(r.fromSend.p99)+" / "+ms(r.fromSend.max),
			r.early, r.missing, wall)
	}
	fmt.Println("  every edge: per token, 200 → the last of the N edges rejects it (the SLO's quantity);")
	fmt.Println("  each pair: over every (token, edge); early: edge rejected before the client saw its 200 (counted 0);")
	fmt.Println("  sent→every: per token, /revoke sent → the last edge rejects (includes the whole request);")
	fmt.Println("  wall (burst): first /revoke sent → every edge rejects every token.")
}
