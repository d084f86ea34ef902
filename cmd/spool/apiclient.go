package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// httpAddrFlag is --http, the HTTP API of the running spool serve.
func httpAddrFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("SPOOL_HTTP_ADDR")
	if def == "" {
		def = "127.0.0.1:8080"
	}
	return fs.String("http", def, "the HTTP address of the running spool serve (env SPOOL_HTTP_ADDR)")
}

// apiGet reads one JSON document from the running spool's HTTP API. The
// error says whether nothing answered or what it answered.
func apiGet(ctx context.Context, addr, path string) (body []byte, url string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url = "http://" + strings.TrimPrefix(addr, "http://") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, url, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, url, fmt.Errorf("no spool answering at %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, url, fmt.Errorf("%s: %s %s %v", url, resp.Status, strings.TrimSpace(string(body)), err)
	}
	return body, url, nil
}
