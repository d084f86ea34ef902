// Command spool is the Spool edge event broker: one binary, with the
// appliance (spool serve) and its client and offline tools as subcommands.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
