//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package main

import (
	"errors"
	"os"
)

// errLocked is lockFile's error when another open file holds the lock.
var errLocked = errors.New("locked")

// lockFile does nothing where flock does not exist: Pebble's own lock on
// the store still keeps a second server out, with its own message.
func lockFile(f *os.File) error { return nil }
