//go:build !unix

package bench

import "time"

// processCPU is not measured on this platform.
func processCPU() time.Duration { return 0 }

// processRSS is not measured on this platform.
func processRSS() float64 { return 0 }
