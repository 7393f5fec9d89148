package main

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// lockOffset is the byte tryLock locks: far past the pid written at the
// start of the file, because Windows locks are mandatory and a locked pid
// could not be read by the process that is refused.
const lockOffset = 1 << 30

// tryLock takes an exclusive lock on one byte of f without waiting. It
// reports false when another open file holds it.
func tryLock(f *os.File) (bool, error) {
	ol := windows.Overlapped{Offset: lockOffset}
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, windows.ERROR_LOCK_VIOLATION):
		return false, nil
	default:
		return false, err
	}
}
