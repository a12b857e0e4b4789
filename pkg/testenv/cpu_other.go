//go:build !unix

package testenv

import "time"

func processCPU() time.Duration { return 0 }
