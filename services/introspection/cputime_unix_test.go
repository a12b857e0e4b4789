//go:build unix

package introspection_test

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user and system) this process has used:
// the service's, not redis-server's.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
