//go:build unix

package loadtest

import (
	"syscall"
	"time"
)

// selfCPU is this process's user + system CPU time so far, to the
// microsecond (getrusage(2); /proc counts in 10 ms ticks).
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
