package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set by the build (-ldflags "-X main.version=... -X main.commit=...").
var (
	version = "dev"
	commit  = "unknown"
)

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintf(stdout, "spool %s (commit %s, %s%s, %s/%s)\n", version, commit, runtime.Version(), armLevel(), runtime.GOOS, runtime.GOARCH)
	return 0
}

// armLevel returns ", GOARM=N" for a 32-bit ARM build, else "": the armv6
// (Pi Zero or 1) and armv7 (Pi 2 or 3) builds differ only in GOARM, which
// the build records.
func armLevel() string {
	if runtime.GOARCH != "arm" {
		return ""
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "GOARM" {
				return ", GOARM=" + s.Value
			}
		}
	}
	return ""
}
