package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// flagEnvPrefix starts the environment variable of every `baton server`
// flag: a container or a unit file configures the server through its
// environment, where a secret (the store's DSN, the secret key) can come
// from a secret store without showing in the process's arguments.
const flagEnvPrefix = "BATON_"

// flagEnvName is the environment variable of a flag: --drain-timeout is
// BATON_DRAIN_TIMEOUT.
func flagEnvName(flag string) string {
	return flagEnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// setFlagsFromEnv sets every flag the command line left alone from its
// environment variable, when that is set and not empty; the command line
// wins. A value the flag does not accept fails naming the variable. List
// flags take comma-separated values, booleans true or false.
func setFlagsFromEnv(flags *pflag.FlagSet, lookup func(string) (string, bool)) error {
	var errs []error
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" {
			return
		}
		name := flagEnvName(f.Name)
		value, ok := lookup(name)
		if !ok || value == "" {
			return
		}
		if err := flags.Set(f.Name, value); err != nil {
			errs = append(errs, fmt.Errorf("$%s (--%s): %w", name, f.Name, err))
		}
	})
	return errors.Join(errs...)
}
