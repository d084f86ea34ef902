package config

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
	}{
		{"0", 0},
		{"12", 12},
		{"1048576", 1 << 20},
		{"1B", 1},
		{"1KiB", 1 << 10},
		{"512MiB", 512 << 20},
		{"2GiB", 2 << 30},
		{"3TiB", 3 << 40},
		{"1kB", 1000},
		{"1KB", 1000},
		{"2GB", 2e9},
		{"5MB", 5e6},
		{"1TB", 1e12},
		{" 64 KiB ", 64 << 10},
		{"-1", -1},
		{"4194304TiB", 1 << 62}, // the largest size
	} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseSizeInvalid(t *testing.T) {
	for _, in := range []string{
		"",
		"5XB",
		"MiB",
		"1.5GiB",
		"1 GiBs",
		"-2",
		"-1MiB",
		"1k",
		"1M",
		"1mb",
		"0x10",
		"ten",
		"4194305TiB",          // just above 1<<62
		"9223372036854775807", // fits int64, but above the limit
		"99999999999999999999",
		"8589934592GiB", // n*mult would overflow int64
	} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		} else if !strings.Contains(err.Error(), "is not a size") {
			t.Errorf("ParseSize(%q): error %q does not say what a size looks like", in, err)
		}
	}
}

func TestSizeString(t *testing.T) {
	for _, tc := range []struct {
		in   Size
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1000, "1000"},
		{1 << 10, "1KiB"},
		{1536, "1536"},
		{3 << 20, "3MiB"},
		{1 << 30, "1GiB"},
		{5 << 40, "5TiB"},
		{-1, "-1"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
		back, err := ParseSize(tc.in.String())
		if err != nil || back != tc.in {
			t.Errorf("ParseSize(%q) = %d, %v; want %d back", tc.in.String(), back, err, int64(tc.in))
		}
	}
}

func TestParseDuration(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"0s", 0},
		{"1ns", 1},
		{"30s", 30 * time.Second},
		{"15m", 15 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"1.5h", 90 * time.Minute},
		{"7d", 7 * day},
		{"1w", 7 * day},
		{"2w", 14 * day},
		{"7d12h", 7*day + 12*time.Hour},
		{"1d12h", 36 * time.Hour},
		{"1w1d", 8 * day},
		{"1d30m15s", day + 30*time.Minute + 15*time.Second},
		{"0d", 0},
		{" 3s ", 3 * time.Second},
		{"-1", -1},
		{"forever", -1},
		{" forever ", -1},
		{"106751d", 106751 * day}, // the largest whole number of days
		{"15250w", 15250 * 7 * day},
	} {
		got, err := ParseDuration(tc.in)
		if err != nil || got.D() != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got.D(), err, tc.want)
		}
	}
}

func TestParseDurationInvalid(t *testing.T) {
	for _, tc := range []struct {
		in, msg string
	}{
		{"", "is not a duration"},
		{"  ", "is not a duration"},
		{"12", "is not a duration"}, // a bare number has no unit
		{"00", "is not a duration"},
		{"d", "is not a duration"},
		{"7", "is not a duration"},
		{"7x", "is not a duration"},
		{"1.5d", "is not a duration"},
		{"7d-1h", "is not a duration"},
		{"-5s", "is not a duration"},
		{"-2", "is not a duration"},
		{"-1s", "is not a duration"},
		{"never", "is not a duration"},
		{"Forever", "is not a duration"},
		{"1d 12h", "is not a duration"},
		{"d7", "is not a duration"},
		{"3000000h", "is not a duration"}, // time.ParseDuration's own overflow
		// Days and weeks are multiplied here, so overflow is checked here:
		// these used to wrap around to a negative ("forever") or to an
		// arbitrary positive duration.
		{"106752d", "longer than 106751d"},
		{"300000d", "longer than 106751d"},
		{"15251w", "longer than 106751d"},
		{"2147483647w", "longer than 106751d"},
		{"99999999999999999999d", "longer than 106751d"},
		{"106751d24h", "longer than 106751d"},
		{"106751d1d", "longer than 106751d"},
	} {
		got, err := ParseDuration(tc.in)
		if err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", tc.in, got.D())
		} else if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseDuration(%q): error %q, want it to contain %q", tc.in, err, tc.msg)
		}
	}
}

func TestDurationString(t *testing.T) {
	for _, tc := range []struct {
		in   Duration
		want string
	}{
		{0, "0s"},
		{Duration(30 * time.Second), "30s"},
		{Duration(24 * time.Hour), "1d"},
		{Duration(7 * 24 * time.Hour), "7d"},
		{Duration(36 * time.Hour), "36h0m0s"},
		{Forever, "forever"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("Duration(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
		back, err := ParseDuration(tc.in.String())
		if err != nil || back != tc.in {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v back", tc.in.String(), back, err, tc.in)
		}
	}
}

// TestUnitsYAML decodes sizes and durations the way a config file holds
// them: plain integers, strings with units, and quoted strings.
func TestUnitsYAML(t *testing.T) {
	var v struct {
		A Size     `yaml:"a"`
		B Size     `yaml:"b"`
		C Size     `yaml:"c"`
		D Duration `yaml:"d"`
		E Duration `yaml:"e"`
		F Duration `yaml:"f"`
	}
	in := "a: 1024\nb: 2GiB\nc: \"-1\"\nd: 7d\ne: -1\nf: forever\n"
	if err := yaml.Unmarshal([]byte(in), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 1024 || v.B != 2<<30 || v.C != -1 || v.D.D() != 7*24*time.Hour || v.E != Forever || v.F != Forever {
		t.Fatalf("decoded %+v", v)
	}

	for _, tc := range []struct{ in, msg string }{
		{"a: 5XB\n", `line 1: "5XB" is not a size`},
		{"a: [1]\n", "line 1: expected a size"},
		{"\n\nd: soon\n", `line 3: "soon" is not a duration`},
		{"d: {x: 1}\n", "line 1: expected a duration"},
	} {
		err := yaml.Unmarshal([]byte(tc.in), &v)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: error %v, want it to contain %q", tc.in, err, tc.msg)
		}
	}
}

func TestUnitsText(t *testing.T) {
	var s Size
	if err := s.UnmarshalText([]byte("64MiB")); err != nil || s != 64<<20 {
		t.Errorf("Size.UnmarshalText(64MiB) = %v, %v", s, err)
	}
	if err := s.UnmarshalText([]byte("64XB")); err == nil {
		t.Error("Size.UnmarshalText(64XB) succeeded")
	}
	if b, _ := Size(64 << 20).MarshalText(); string(b) != "64MiB" {
		t.Errorf("Size.MarshalText = %q", b)
	}
	var d Duration
	if err := d.UnmarshalText([]byte("2w")); err != nil || d.D() != 14*24*time.Hour {
		t.Errorf("Duration.UnmarshalText(2w) = %v, %v", d, err)
	}
	if err := d.UnmarshalText([]byte("")); err == nil {
		t.Error("Duration.UnmarshalText(\"\") succeeded")
	}
	if b, _ := Forever.MarshalText(); string(b) != "forever" {
		t.Errorf("Forever.MarshalText = %q", b)
	}
}
