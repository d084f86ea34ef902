//go:build !linux

package log

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

// Reserve: no fallocate here; files grow as they are written.
func (f osFile) Reserve(off, n int64) error { return errReserveUnsupported }
