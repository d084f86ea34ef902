package main

import (
	"context"
	"io"
)

func runLog(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return fail(stderr, "log: not built yet")
}
