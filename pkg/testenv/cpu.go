package testenv

// CPU meters for benchmarks and load generators. On a box whose cores are
// shared with other work, wall time and throughput move with what else
// runs; the CPU an operation costs moves much less, so the benchmarks report
// it beside their rates (docs/performance.md).

import "time"

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ,
// 100 on every Linux ABI).
const clockTick = 10 * time.Millisecond

// ProcessCPU is the CPU time (user and system, every thread) this process
// has used so far, or 0 where the platform does not tell: a figure computed
// from it then reads 0 rather than failing the run.
func ProcessCPU() time.Duration { return processCPU() }

// ProcessCPUOf is the CPU time (user and system, every thread) process pid
// has used so far: a separate server's share of a run. It needs /proc.
func ProcessCPUOf(pid int) (time.Duration, error) { return processCPUOf(pid) }

// LoadAverage is the one-minute load average as the kernel prints it, "?"
// where unknown: quoted beside every figure measured on a shared box.
func LoadAverage() string { return loadAverage() }
