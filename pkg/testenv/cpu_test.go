//go:build linux

package testenv

import (
	"os"
	"testing"
	"time"
)

// TestCPUMeters checks the two meters against each other on this process:
// a busy loop that runs until ProcessCPU has grown by 100 ms (however busy
// the box) must show in /proc as well, and ProcessCPU must grow at all.
func TestCPUMeters(t *testing.T) {
	self0 := ProcessCPU()
	of0, err := ProcessCPUOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	const busy = 100 * time.Millisecond
	deadline := time.Now().Add(30 * time.Second)
	for ProcessCPU()-self0 < busy {
		if time.Now().After(deadline) {
			t.Fatalf("ProcessCPU grew by %v in 30 s of busy loop", ProcessCPU()-self0)
		}
		for x := 0; x < 1e5; x++ {
			_ = x * x
		}
	}
	of, err := ProcessCPUOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// /proc counts in clock ticks: allow two of rounding.
	if d := of - of0; d < busy-2*clockTick {
		t.Fatalf("ProcessCPU grew by %v, /proc by %v", ProcessCPU()-self0, d)
	}
	if _, err := ProcessCPUOf(-1); err == nil {
		t.Fatal("ProcessCPUOf(-1): no error")
	}
	if LoadAverage() == "?" {
		t.Fatal("LoadAverage unknown on linux")
	}
}
