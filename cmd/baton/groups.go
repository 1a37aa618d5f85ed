package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// rejectUnknownSubcommands makes every command group (a command that only
// holds subcommands: baton itself, workflow, invocation, fn, ...) fail on a
// word that names none of its subcommands. Cobra would otherwise print the
// group's help and exit 0 for `baton workflow aply x`, so a typo in a script
// would pass unnoticed. A group given no word at all still prints its help.
func rejectUnknownSubcommands(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		rejectUnknownSubcommands(sub)
	}
	if !cmd.HasSubCommands() || cmd.Runnable() {
		return
	}
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		return unknownSubcommand(cmd, args[0])
	}
}

// unknownSubcommand is the one-line error for a word that is no subcommand
// of group, with cobra's suggestions when some name is close.
func unknownSubcommand(group *cobra.Command, word string) error {
	msg := fmt.Sprintf("unknown command %q for %q", word, group.CommandPath())
	if group.SuggestionsMinimumDistance <= 0 {
		// Cobra's own default, which it sets only on its own error path.
		group.SuggestionsMinimumDistance = 2
	}
	if suggestions := group.SuggestionsFor(word); len(suggestions) > 0 {
		msg += "; did you mean " + strings.Join(suggestions, " or ") + "?"
	}
	return fmt.Errorf("%s", msg)
}
