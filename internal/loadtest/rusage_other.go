//go:build !unix

package loadtest

import (
	"errors"
	"time"
)

// selfCPU is not measured where getrusage(2) is missing.
func selfCPU() (time.Duration, error) {
	return 0, errors.New("getrusage is not available on this system")
}
