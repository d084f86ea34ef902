package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The 32-bit builds differ only in GOARM: `spool version` of the armv6
// build (Pi Zero / 1) says GOARM=6, telling it from an armv7 one.
func TestVersionNamesTheARMLevel(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a release binary")
	}
	qemu, err := exec.LookPath("qemu-arm-static")
	if err != nil {
		t.Skip("no qemu-arm-static")
	}
	dist := t.TempDir()
	runScript(t, 5*time.Minute, []string{"DIST=" + dist, "VERSION=1.0.0"}, "scripts/build.sh", "armv6")
	v := output(t, qemu, filepath.Join(dist, "spool-linux-armv6"), "version")
	if !strings.Contains(v, ", GOARM=6, linux/arm)") {
		t.Errorf("the armv6 build's `spool version` printed %q, want GOARM=6 before linux/arm", strings.TrimSpace(v))
	}
}
