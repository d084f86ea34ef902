package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// runSensors is `spool sensors list`: the sensors and actuators of a
// running Spool, read from its HTTP API.
func runSensors(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "list" {
		fmt.Fprintln(stderr, "usage: spool sensors list [--http ADDR] [--json]")
		return 2
	}
	fs := newFlagSet("spool sensors list", stderr)
	addr := httpAddrFlag(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON as it is")
	if code := parseFlags(fs, args[1:]); code >= 0 {
		return code
	}
	body, url, err := apiGet(ctx, *addr, "/api/v1/sensors")
	if err != nil {
		return fail(stderr, "%v", err)
	}
	if *asJSON {
		stdout.Write(body)
		return 0
	}
	var st struct {
		Sensors []struct {
			Name        string `json:"name"`
			Driver      string `json:"driver"`
			Topic       string `json:"topic"`
			State       string `json:"state"`
			Readings    int64  `json:"readings"`
			Dropped     int64  `json:"dropped"`
			LastReading *struct {
				Time   time.Time `json:"time"`
				Values []struct {
					Name  string  `json:"name"`
					Value float64 `json:"value"`
					Unit  string  `json:"unit"`
				} `json:"values"`
			} `json:"last_reading"`
			LastError string    `json:"last_error"`
			RetryAt   time.Time `json:"retry_at"`
			DropError string    `json:"drop_error"`
		} `json:"sensors"`
		Actuators []struct {
			Name      string `json:"name"`
			Topic     string `json:"topic"`
			Pin       string `json:"pin"`
			State     string `json:"state"`
			Output    string `json:"output"`
			Applied   int64  `json:"applied"`
			Invalid   int64  `json:"invalid"`
			LastError string `json:"last_error"`
		} `json:"actuators"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return fail(stderr, "%s: %v", url, err)
	}
	if len(st.Sensors) == 0 && len(st.Actuators) == 0 {
		fmt.Fprintln(stdout, "no sensors or actuators configured")
		return 0
	}
	if len(st.Sensors) > 0 {
		tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "SENSOR\tDRIVER\tTOPIC\tSTATE\tREADINGS\tDROPPED\tLAST READING")
		for _, s := range st.Sensors {
			last := "-"
			if r := s.LastReading; r != nil {
				var vs []string
				for _, v := range r.Values {
					vs = append(vs, v.Name+"="+strconv.FormatFloat(v.Value, 'g', 6, 64)+v.Unit)
				}
				last = r.Time.Local().Format("15:04:05") + " " + strings.Join(vs, " ")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", s.Name, s.Driver, s.Topic, s.State, s.Readings, s.Dropped, last)
		}
		tw.Flush()
		for _, s := range st.Sensors {
			if s.LastError != "" && s.State == "failed" {
				fmt.Fprintf(stdout, "%s: %s (retry at %s)\n", s.Name, s.LastError, s.RetryAt.Local().Format("15:04:05"))
			}
			if s.DropError != "" && s.Dropped > 0 {
				fmt.Fprintf(stdout, "%s: last dropped reading: %s\n", s.Name, s.DropError)
			}
		}
	}
	if len(st.Actuators) > 0 {
		if len(st.Sensors) > 0 {
			fmt.Fprintln(stdout)
		}
		tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ACTUATOR\tPIN\tTOPIC\tSTATE\tOUTPUT\tAPPLIED\tINVALID")
		for _, a := range st.Actuators {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", a.Name, a.Pin, a.Topic, a.State, a.Output, a.Applied, a.Invalid)
		}
		tw.Flush()
		for _, a := range st.Actuators {
			if a.LastError != "" && a.State == "failed" {
				fmt.Fprintf(stdout, "%s: %s\n", a.Name, a.LastError)
			}
		}
	}
	return 0
}
