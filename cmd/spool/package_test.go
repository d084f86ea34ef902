package main

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spoolmq/spool/edge/config"
)

// repoRoot is the repository's top directory, from this package's.
const repoRoot = "../.."

// runScript runs a script of the repository with env added to a clean
// environment and returns its combined output, failing the test on a
// non-zero exit.
func runScript(t *testing.T, within time.Duration, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot, name), args...)
	cmd.Env = append(childEnv(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// output runs a command and returns its stdout, failing the test on an
// error.
func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr)
	}
	return string(out)
}

// needTool skips the test when a tool is missing, unless
// SPOOL_REQUIRE_PEERS is set (as scripts/test.sh does, after installing it).
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("SPOOL_REQUIRE_PEERS") != "" {
			t.Fatalf("%s is required (SPOOL_REQUIRE_PEERS is set): %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
}

// TestDebianPackage builds the amd64 package with scripts/package.sh and
// checks it as dpkg would install it: the control fields, the conffile
// list, the files with their owners and modes in the archive, their
// contents after `dpkg-deb -x` into a scratch root, the stamped binary,
// the maintainer scripts, the shipped config (it validates and listens on
// loopback only) and `systemd-analyze verify` on the unit where it exists.
func TestDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a release binary and a package; skipped with -short")
	}
	needTool(t, "dpkg-deb")
	dist := t.TempDir()
	out := runScript(t, 5*time.Minute, []string{"DIST=" + dist, "VERSION=9.8.7-test"}, "scripts/package.sh", "amd64")
	t.Logf("scripts/package.sh amd64:\n%s", out)
	deb := filepath.Join(dist, "spool_9.8.7+test_amd64.deb")
	if _, err := os.Stat(deb); err != nil {
		t.Fatalf("no package %s: %v\n%s", deb, err, out)
	}

	for field, want := range map[string]string{"Package": "spool", "Architecture": "amd64", "Version": "9.8.7+test", "Section": "net"} {
		if got := strings.TrimSpace(output(t, "dpkg-deb", "-f", deb, field)); got != want {
			t.Errorf("control field %s = %q, want %q", field, got, want)
		}
	}
	info := output(t, "dpkg-deb", "-I", deb)
	for _, script := range []string{"preinst", "postinst", "prerm", "postrm", "conffiles"} {
		if !strings.Contains(info, " "+script) {
			t.Errorf("control archive has no %s:\n%s", script, info)
		}
	}

	// The archive's members as dpkg records them: mode and owner/group.
	listing := output(t, "dpkg-deb", "-c", deb)
	for _, want := range []string{
		`-rwxr-xr-x root/root +\d+ \S+ \S+ \./usr/bin/spool\n`,
		`-rw-r----- root/spool +\d+ \S+ \S+ \./etc/spool/spool\.yaml\n`,
		`-rw-r--r-- root/root +\d+ \S+ \S+ \./lib/systemd/system/spool\.service\n`,
		`-rw-r--r-- root/root +\d+ \S+ \S+ \./usr/share/doc/spool/copyright\n`,
	} {
		if !regexp.MustCompile(want).MatchString(listing) {
			t.Errorf("no member matching %q in:\n%s", want, listing)
		}
	}

	root := t.TempDir()
	output(t, "dpkg-deb", "-x", deb, root)
	control := filepath.Join(t.TempDir(), "DEBIAN")
	output(t, "dpkg-deb", "-e", deb, control)
	if b, err := os.ReadFile(filepath.Join(control, "conffiles")); err != nil || string(b) != "/etc/spool/spool.yaml\n" {
		t.Errorf("conffiles = %q (%v), want /etc/spool/spool.yaml", b, err)
	}

	files := map[string]struct {
		mode   fs.FileMode
		source string // file of the repository it must equal, if any
	}{
		"usr/bin/spool":                    {0o755, ""},
		"etc/spool/spool.yaml":             {0o640, "configs/spool-service.yaml"},
		"lib/systemd/system/spool.service": {0o644, "configs/spool.service"},
		"usr/share/doc/spool/copyright":    {0o644, "scripts/package/copyright"},
	}
	var got []string
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, path)
			got = append(got, rel)
		}
		return err
	})
	if len(got) != len(files) {
		t.Errorf("package files %v, want exactly %d", got, len(files))
	}
	for name, want := range files {
		path := filepath.Join(root, name)
		st, err := os.Stat(path)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if st.Mode().Perm() != want.mode || !st.Mode().IsRegular() {
			t.Errorf("%s: mode %v, want %v", name, st.Mode(), want.mode)
		}
		if want.source != "" {
			a, _ := os.ReadFile(path)
			b, err := os.ReadFile(filepath.Join(repoRoot, want.source))
			if err != nil || string(a) != string(b) {
				t.Errorf("%s differs from %s (%v)", name, want.source, err)
			}
		}
	}

	// The binary is the static, stamped amd64 build.
	bin := filepath.Join(root, "usr/bin/spool")
	v := output(t, bin, "version")
	if !regexp.MustCompile(`^spool 9\.8\.7-test \(commit [0-9a-f]{4,}, go1\.\d+.*, linux/amd64\)\n$`).MatchString(v) {
		t.Errorf("spool version printed %q, want version 9.8.7-test and a commit", v)
	}
	if elf := output(t, "go", "version", "-m", bin); !strings.Contains(elf, "CGO_ENABLED=0") || !strings.Contains(elf, "-trimpath=true") {
		t.Errorf("binary not built with CGO_ENABLED=0 and -trimpath:\n%s", elf)
	}

	// Maintainer scripts: valid sh; the user, group and data directory.
	for script, wants := range map[string][]string{
		"preinst":  {"groupadd --system spool", "useradd --system --gid spool --home-dir /var/lib/spool", "groupadd --system gpio", "groupadd --system i2c"},
		"postinst": {"install -d -o spool -g spool -m 0750 /var/lib/spool", "systemctl daemon-reload"},
		"prerm":    {"systemctl disable --now spool"},
		"postrm":   {"systemctl daemon-reload"},
	} {
		path := filepath.Join(control, script)
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s: %v, mode %v: not an executable script", script, err, st.Mode())
			continue
		}
		output(t, "sh", "-n", path)
		b, _ := os.ReadFile(path)
		for _, want := range wants {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s lacks %q", script, want)
			}
		}
	}

	// The shipped config is valid and needs no users: loopback only.
	cfg, err := config.Load(filepath.Join(root, "etc/spool/spool.yaml"))
	if err != nil {
		t.Fatalf("the packaged config: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the packaged config: %v", err)
	}
	for name, addr := range map[string]string{"mqtt.addr": cfg.MQTT.Addr, "kafka.addr": cfg.Kafka.Addr, "http.addr": cfg.HTTP.Addr} {
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("packaged config %s = %q, want a loopback address", name, addr)
		}
	}
	if cfg.Data != "/var/lib/spool" || cfg.MemoryLimit == 0 {
		t.Errorf("packaged config: data %q, memory_limit %v; want /var/lib/spool and a limit", cfg.Data, cfg.MemoryLimit)
	}

	t.Run("systemd-analyze", func(t *testing.T) {
		verifyUnit(t, filepath.Join(root, "lib/systemd/system/spool.service"), bin)
	})
}

// verifyUnit runs `systemd-analyze verify` on a copy of unit whose
// ExecStart names bin (verify checks the executable exists). verify exits
// 0 on unknown keys and bad values, printing a warning: any output fails.
func verifyUnit(t *testing.T, unit, bin string) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skipf("systemd-analyze not installed, the unit is not verified: %v", err)
	}
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "ExecStart=/usr/bin/spool ", "ExecStart="+bin+" ", 1)
	if text == string(b) {
		t.Fatalf("%s has no ExecStart=/usr/bin/spool", unit)
	}
	copy := writeFile(t, t.TempDir(), "spool.service", text)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "systemd-analyze", "verify", "--man=no", copy)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=on-failure", "User=spool", "SupplementaryGroups=gpio i2c",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/spool", "StateDirectory=spool", "LimitNOFILE="} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want)).MatchString(text) {
			t.Errorf("the unit lacks %s", want)
		}
	}
	// Options that would break GPIO access or the armhf build on a 64-bit
	// kernel (see the unit's comments).
	for _, bad := range []string{"PrivateDevices=yes", "ProtectClock=yes", "DeviceAllow=", "DevicePolicy=", "ProtectKernelTunables=yes", "SystemCallArchitectures="} {
		if regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(bad)).MatchString(text) {
			t.Errorf("the unit sets %s", bad)
		}
	}
}

// TestMaintainerScripts runs the package's preinst and postinst (as dpkg
// would on install, then again on upgrade) with the system tools they call
// replaced by fakes that record each call: a fresh install creates the
// spool group and system user and the gpio and i2c groups, then the data directory
// owned by spool and the config's group; an upgrade, where they exist,
// creates nothing again.
func TestMaintainerScripts(t *testing.T) {
	tmp := t.TempDir()
	fakes, state := filepath.Join(tmp, "bin"), filepath.Join(tmp, "state")
	calls := filepath.Join(tmp, "calls")
	for _, dir := range []string{fakes, state} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// getent DB NAME succeeds once groupadd or useradd created NAME.
	fake := map[string]string{
		"getent":    `[ -e "$STATE/$1-$2" ]`,
		"groupadd":  `for a; do name=$a; done; touch "$STATE/group-$name"`,
		"useradd":   `for a; do name=$a; done; touch "$STATE/passwd-$name"`,
		"install":   `:`,
		"stat":      `[ -e "$STATE/chgrp" ] && echo spool || echo root`,
		"chgrp":     `touch "$STATE/chgrp"`,
		"systemctl": `:`,
	}
	for name, body := range fake {
		script := "#!/bin/sh\necho \"" + name + " $*\" >>\"$CALLS\"\n" + body + "\n"
		if err := os.WriteFile(filepath.Join(fakes, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run := func(script string, args ...string) string {
		t.Helper()
		os.Remove(calls)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{filepath.Join(repoRoot, "scripts/package", script)}, args...)...)
		cmd.Env = []string{"PATH=" + fakes + ":/usr/bin:/bin", "STATE=" + state, "CALLS=" + calls}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", script, args, err, out)
		}
		b, _ := os.ReadFile(calls)
		return string(b)
	}

	pre := run("preinstall.sh", "install")
	for _, want := range []string{
		"groupadd --system spool\n",
		"useradd --system --gid spool --home-dir /var/lib/spool --no-create-home --shell /usr/sbin/nologin --comment Spool edge event broker spool\n",
		"groupadd --system gpio\n",
		"groupadd --system i2c\n",
	} {
		if !strings.Contains(pre, want) {
			t.Errorf("fresh preinst did not run %q; calls:\n%s", want, pre)
		}
	}
	post := run("postinstall.sh", "configure")
	for _, want := range []string{"install -d -o spool -g spool -m 0750 /var/lib/spool\n", "chgrp spool /etc/spool/spool.yaml\n"} {
		if !strings.Contains(post, want) {
			t.Errorf("fresh postinst did not run %q; calls:\n%s", want, post)
		}
	}

	// An upgrade: the users exist and the config has its group.
	if pre := run("preinstall.sh", "upgrade", "0.9.0"); strings.Contains(pre, "add ") {
		t.Errorf("preinst on upgrade created users or groups again:\n%s", pre)
	}
	if post := run("postinstall.sh", "configure", "0.9.0"); strings.Contains(post, "chgrp") || !strings.Contains(post, "install -d") {
		t.Errorf("postinst on upgrade; calls:\n%s", post)
	}
	for _, script := range []string{"preremove.sh", "postremove.sh"} {
		run(script, "remove")
	}
}

// An administrator may delete a conffile; dpkg then leaves it deleted on
// upgrade. postinst succeeds then, and leaves the missing file alone: here
// stat and chgrp behave as the real ones do on a missing file.
func TestPostinstWithoutConffile(t *testing.T) {
	tmp := t.TempDir()
	fakes := filepath.Join(tmp, "bin")
	if err := os.Mkdir(fakes, 0o755); err != nil {
		t.Fatal(err)
	}
	fake := map[string]string{
		"install":   `exit 0`,
		"systemctl": `exit 0`,
		// /etc/spool/spool.yaml does not exist.
		"stat":  `echo "stat: cannot statx '/etc/spool/spool.yaml': No such file or directory" >&2; exit 1`,
		"chgrp": `echo "chgrp: cannot access '/etc/spool/spool.yaml': No such file or directory" >&2; exit 1`,
	}
	for name, body := range fake {
		if err := os.WriteFile(filepath.Join(fakes, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", filepath.Join(repoRoot, "scripts/package/postinstall.sh"), "configure", "0.9.0")
	cmd.Env = []string{"PATH=" + fakes + ":/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("postinst configure (upgrade, the conffile deleted by the administrator) failed: %v\n%s", err, out)
	}
}

// debVersion runs scripts/package.sh with VERSION=version on a stand-in
// binary and returns the package's Version field.
func debVersion(t *testing.T, version string) string {
	t.Helper()
	dist := t.TempDir()
	if err := os.WriteFile(filepath.Join(dist, "spool-linux-amd64"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	runScript(t, 5*time.Minute, []string{"DIST=" + dist, "VERSION=" + version, "SKIP_BUILD=1"}, "scripts/package.sh", "amd64")
	debs, _ := filepath.Glob(filepath.Join(dist, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("packages %v", debs)
	}
	return strings.TrimSpace(output(t, "dpkg-deb", "-f", debs[0], "Version"))
}

// Package versions sort as the releases do, or apt would not upgrade: a
// release candidate before its release (v1.2.0-rc1 as 1.2.0~rc1), and a
// commit git describe places after a tag after that tag.
func TestDebVersionOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("runs nfpm")
	}
	needTool(t, "dpkg-deb")
	for _, c := range []struct{ version, want, op, than string }{
		{"v1.2.0-rc1", "1.2.0~rc1", "lt", "1.2.0"},
		{"v1.2.0-rc1-3-gabc1234-dirty", "1.2.0~rc1+3+gabc1234+dirty", "lt", "1.2.0"},
		{"v1.2.0-3-gabc1234", "1.2.0+3+gabc1234", "gt", "1.2.0"},
	} {
		got := debVersion(t, c.version)
		if got != c.want {
			t.Errorf("VERSION=%s packages as Version %s, want %s", c.version, got, c.want)
		}
		if err := exec.Command("dpkg", "--compare-versions", got, c.op, c.than).Run(); err != nil {
			t.Errorf("VERSION=%s packages as Version %s, which dpkg does not sort %s %s", c.version, got, c.op, c.than)
		}
	}
}

// Debian policy 12.5: every package ships its copyright file as
// /usr/share/doc/<package>/copyright (lintian: no-copyright-file, an error).
func TestDebHasCopyright(t *testing.T) {
	if testing.Short() {
		t.Skip("runs nfpm")
	}
	needTool(t, "dpkg-deb")
	dist := t.TempDir()
	if err := os.WriteFile(filepath.Join(dist, "spool-linux-amd64"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	runScript(t, 5*time.Minute, []string{"DIST=" + dist, "VERSION=1.0.0", "SKIP_BUILD=1"}, "scripts/package.sh", "amd64")
	listing := output(t, "dpkg-deb", "-c", filepath.Join(dist, "spool_1.0.0_amd64.deb"))
	if !strings.Contains(listing, "./usr/share/doc/spool/copyright\n") {
		t.Errorf("the package has no /usr/share/doc/spool/copyright:\n%s", listing)
	}
}
