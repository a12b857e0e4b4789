// Command baseline is the floor under every latency figure of `make
// loadtest`: a bare net/http server whose handler spends a fixed amount of
// CPU (SHA-256 rounds, calibrated at start) and answers a body the size of
// a token response. Driven by wrk at the same connections on the same box
// (loadtest/baseline.sh), it shows the throughput and the latency tail that
// Go's net/http, the kernel's loopback and the shared cores allow for a
// given CPU cost per request, before any Valet code runs: what remains of a
// Valet figure above this floor is Valet's.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18090", "address to listen on")
	burn := flag.Duration("burn", 60*time.Microsecond, "CPU each request spends in the handler (calibrated SHA-256 rounds)")
	size := flag.Int("size", 700, "response body bytes (a client-credentials token response is about 700)")
	flag.Parse()

	rounds := calibrate(*burn)
	body := []byte(`{"access_token":"` + strings.Repeat("x", max(*size-60, 0)) + `","token_type":"Bearer","expires_in":300}`)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [32]byte
		for range rounds {
			b = sha256.Sum256(b[:])
		}
		runtime.KeepAlive(b)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(body)
	})
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Printf("baseline listening on %s: %d SHA-256 rounds (%s of CPU) per request, %d-byte body\n", *listen, rounds, *burn, len(body))
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// calibrate returns how many SHA-256 rounds of 32 bytes take d of CPU on
// one core, from the fastest of several timed runs (the least disturbed by
// whatever else the box runs).
func calibrate(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	const n = 20000
	best := time.Duration(1<<63 - 1)
	var b [32]byte
	for range 5 {
		start := time.Now()
		for range n {
			b = sha256.Sum256(b[:])
		}
		best = min(best, time.Since(start))
	}
	runtime.KeepAlive(b)
	return max(1, int(float64(n)*float64(d)/float64(best)))
}
