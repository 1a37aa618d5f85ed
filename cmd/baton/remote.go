package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/client"
)

// Where the remote commands find the server when --server is not given.
const (
	serverEnv     = "BATON_SERVER"
	defaultServer = "http://127.0.0.1:8780"
	// defaultNamespace is the namespace of a workflow named without one.
	defaultNamespace = "default"
)

// remote is what every command of a remote group (workflow, invocation,
// trigger, secret, fn, invoke) shares: the group's --server flag and the one
// place that turns it into an API client. Each command then holds only its
// own logic; see run.
type remote struct{ url string }

// addRemote gives cmd (a group, or a lone command such as invoke) its
// --server flag, inherited by its subcommands.
func addRemote(cmd *cobra.Command) *remote {
	r := &remote{}
	def := defaultServer
	if env := os.Getenv(serverEnv); env != "" {
		def = env
	}
	cmd.PersistentFlags().StringVar(&r.url, "server", def, "URL of the baton server (env "+serverEnv+")")
	return r
}

// client returns the API client of the remote commands.
func (r *remote) client() (*client.Client, error) {
	// No client timeout: requests end with their context, and --wait may
	// legitimately hold one for minutes.
	return r.clientOver(&http.Client{})
}

// clientOver is the CLI's only constructor of an API client (the remote
// commands' and `baton bench --server`'s): whatever a request to the
// server needs (its URL, later its credentials) is decided here.
func (r *remote) clientOver(hc *http.Client) (*client.Client, error) {
	return client.New(r.url, hc)
}

// run sets cmd's RunE: it checks the -o format (when the command has one),
// builds the client and calls do with it.
func (r *remote) run(cmd *cobra.Command, out *outputFlag, do func(ctx context.Context, c *client.Client, args []string) error) {
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if out != nil {
			if err := out.validate(); err != nil {
				return err
			}
		}
		c, err := r.client()
		if err != nil {
			return err
		}
		return do(cmd.Context(), c, args)
	})
}

// parseWorkflowName reads NAMESPACE/NAME, or NAME in the default namespace.
func parseWorkflowName(arg string) (namespace, name string, err error) {
	namespace, name, qualified := strings.Cut(arg, "/")
	if !qualified {
		namespace, name = defaultNamespace, arg
	}
	if namespace == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("workflow %q: expected NAMESPACE/NAME or NAME", arg)
	}
	return namespace, name, nil
}

// readInput reads the --input flag: inline JSON, or @FILE for a file's
// contents (@- for stdin). The empty string is a null input.
func readInput(flag string) (json.RawMessage, error) {
	if flag == "" {
		return nil, nil
	}
	data := []byte(flag)
	source := "--input"
	if path, ok := strings.CutPrefix(flag, "@"); ok {
		var err error
		if path == "-" {
			source = "stdin"
			data, err = io.ReadAll(os.Stdin)
		} else {
			source = path
			data, err = os.ReadFile(path)
		}
		if err != nil {
			return nil, fmt.Errorf("reading the input: %w", err)
		}
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return nil, fmt.Errorf("%s is not valid JSON: %v (at byte %d)", source, err, syntax.Offset)
		}
		return nil, fmt.Errorf("%s is not valid JSON: %v", source, err)
	}
	return json.RawMessage(data), nil
}
