package main

import (
	"context"
	"io"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return fail(stderr, "serve: not built yet")
}
