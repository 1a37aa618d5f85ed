package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/client"
)

// newConsoleCommand prints a link that opens the web console logged in,
// with the credentials every remote command uses (on this machine, the
// local admin token).
func newConsoleCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Print a one-time link that opens the web console logged in",
		Long: `Print a link to the server's web console that logs its opener in with this
command's credentials (--token, $BATON_TOKEN, or on this machine the local
admin token). The link works once, within two minutes; the session it starts
lasts 12 hours. Open it in a browser on a machine that reaches --server.`,
		Args: cobra.NoArgs,
	}
	r := addRemote(cmd)
	r.run(cmd, nil, func(ctx context.Context, c *client.Client, _ []string) error {
		link, err := c.ConsoleLoginLink(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), link)
		return nil
	})
	return cmd
}
