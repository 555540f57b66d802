// Command claudecap plans capacity, load-tests, mocks and proxies the Claude
// Messages API. The commands live in internal/cli; this file only runs them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/claudecap/claudecap/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.NewRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		os.Exit(1)
	}
}
