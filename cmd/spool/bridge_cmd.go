package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// runBridge is `spool bridge status`: the upstream links of a running
// Spool, read from its HTTP API.
func runBridge(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "status" {
		fmt.Fprintln(stderr, "usage: spool bridge status [--http ADDR] [--json]")
		return 2
	}
	fs := newFlagSet("spool bridge status", stderr)
	addr := httpAddrFlag(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON as it is")
	if code := parseFlags(fs, args[1:]); code >= 0 {
		return code
	}
	body, url, err := apiGet(ctx, *addr, "/api/v1/bridge")
	if err != nil {
		return fail(stderr, "%v", err)
	}
	if *asJSON {
		stdout.Write(body)
		return 0
	}
	var st struct {
		Links []struct {
			Link        string    `json:"link"`
			State       string    `json:"state"`
			Lag         int64     `json:"lag"`
			LagBytes    int64     `json:"lag_bytes"`
			Oldest      time.Time `json:"oldest_unmirrored"`
			RecPerSec   float64   `json:"records_per_sec"`
			BytesPerSec float64   `json:"bytes_per_sec"`
			Records     int64     `json:"records"`
			Bytes       int64     `json:"bytes"`
			Gaps        int64     `json:"gaps"`
			Skipped     int64     `json:"skipped"`
			LastError   string    `json:"last_error"`
			LastErrorAt time.Time `json:"last_error_at"`
			Partitions  []struct {
				Topic       string `json:"topic"`
				Partition   int32  `json:"partition"`
				Destination string `json:"destination"`
				Cursor      int64  `json:"cursor"`
				HW          int64  `json:"high_watermark"`
				Lag         int64  `json:"lag"`
				Gaps        int64  `json:"gaps"`
				Skipped     int64  `json:"skipped"`
				Stalled     bool   `json:"stalled"`
			} `json:"partitions"`
		} `json:"links"`
		Downstream []struct {
			Name      string `json:"name"`
			Copied    int64  `json:"copied"`
			Committed int64  `json:"committed"`
			Dropped   int64  `json:"dropped"`
			LastError string `json:"last_error"`
		} `json:"downstream"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return fail(stderr, "%s: %v", url, err)
	}
	if len(st.Links) == 0 && len(st.Downstream) == 0 {
		fmt.Fprintln(stdout, "no links configured")
		return 0
	}
	for _, d := range st.Downstream {
		fmt.Fprintf(stdout, "downstream %s: copied %d records (%d committed upstream), dropped %d (too large)\n", d.Name, d.Copied, d.Committed, d.Dropped)
		if d.LastError != "" {
			fmt.Fprintf(stdout, "  last error: %s\n", d.LastError)
		}
	}
	for _, l := range st.Links {
		fmt.Fprintf(stdout, "link %s: %s, lag %d records (%s), mirrored %d records (%d bytes), gaps %d, skipped %d (too large upstream), %.0f records/s (%s/s)\n",
			l.Link, l.State, l.Lag, byteSize(l.LagBytes), l.Records, l.Bytes, l.Gaps, l.Skipped, l.RecPerSec, byteSize(int64(l.BytesPerSec)))
		if !l.Oldest.IsZero() {
			fmt.Fprintf(stdout, "  oldest unmirrored record: %s (%s ago)\n", l.Oldest.Format(time.RFC3339), time.Since(l.Oldest).Round(time.Second))
		}
		if l.LastError != "" {
			fmt.Fprintf(stdout, "  last error (%s): %s\n", l.LastErrorAt.Format(time.RFC3339), l.LastError)
		}
		tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  TOPIC\tPARTITION\tDESTINATION\tCURSOR\tEND\tLAG\tGAPS\tSKIPPED\tSTALLED")
		for _, p := range l.Partitions {
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%v\n", p.Topic, p.Partition, p.Destination, p.Cursor, p.HW, p.Lag, p.Gaps, p.Skipped, p.Stalled)
		}
		tw.Flush()
	}
	return 0
}
