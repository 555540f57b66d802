// Package cli holds the cobra commands of the claudecap binary. Each command
// parses flags, calls one pkg/ package and renders its result; no decisions
// are made here.
package cli

import (
	"github.com/spf13/cobra"
)

// NewRootCommand returns the claudecap command with every subcommand attached.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "claudecap",
		Short: "Size Claude API workers to your organization's rate limits",
		Long: `claudecap keeps fleets of Claude API workers as large as their queues need and
never larger than the organization's Anthropic rate limits allow.

  plan      capacity and cost planning for a workload
  loadtest  Anthropic-native load testing (open and closed loop)
  mock      a local Messages API with tier rate limits
  proxy     the rate-limit-aware sidecar every worker call goes through`,
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.AddCommand(
		// Subcommands register here, one line each.
		newPlanCommand(),
		newLoadtestCommand(),
		newMockCommand(),
		newProxyCommand(),
	)
	return root
}
