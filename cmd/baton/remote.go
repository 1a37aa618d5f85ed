package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
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

// Where the remote commands find their credentials.
const (
	tokenEnv  = "BATON_TOKEN"
	caCertEnv = "BATON_CA_CERT"
)

// remote is what every command of a remote group (workflow, invocation,
// trigger, secret, fn, invoke, policy, token, audit) shares: the group's
// --server flag with the credentials to present (--token, --ca-cert) and
// the one place that turns them into an API client. Each command then
// holds only its own logic; see run.
type remote struct {
	url, token, caCert string
	// localData is the invocation group's --data (see addLocalData).
	localData string
}

// addRemote gives cmd (a group, or a lone command such as invoke) its
// --server flag, inherited by its subcommands.
func addRemote(cmd *cobra.Command) *remote {
	r := &remote{}
	def := defaultServer
	if env := os.Getenv(serverEnv); env != "" {
		def = env
	}
	cmd.PersistentFlags().StringVar(&r.url, "server", def, "URL of the baton server (env "+serverEnv+")")
	cmd.PersistentFlags().StringVar(&r.token, "token", os.Getenv(tokenEnv),
		"API token (env "+tokenEnv+"; default on a loopback server: the data directory's "+adminTokenFile+")")
	cmd.PersistentFlags().StringVar(&r.caCert, "ca-cert", os.Getenv(caCertEnv), "PEM CA certificate to trust for an https server (env "+caCertEnv+")")
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
	if r.caCert != "" {
		pem, err := os.ReadFile(r.caCert)
		if err != nil {
			return nil, fmt.Errorf("--ca-cert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-cert %s holds no PEM certificate", r.caCert)
		}
		tr, ok := hc.Transport.(*http.Transport)
		if !ok || tr == nil {
			tr = &http.Transport{Proxy: http.ProxyFromEnvironment}
		} else {
			tr = tr.Clone()
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		hc = &http.Client{Transport: tr, Timeout: hc.Timeout}
	}
	token := r.token
	if token == "" {
		token = localAdminToken(r.url)
	}
	return client.NewWith(r.url, hc, client.WithToken(token))
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
		if r.localData != "" {
			c, closeAll, err := localClient(cmd.Context(), cmd, r.localData)
			if err != nil {
				return err
			}
			defer closeAll()
			return do(cmd.Context(), c, args)
		}
		c, err := r.client()
		if err != nil {
			return err
		}
		return do(cmd.Context(), c, args)
	})
}

// localAdminToken is the credential `baton server` leaves in the default
// data directory, offered only to a server on this machine: "" when the
// server is elsewhere or the file is not there.
func localAdminToken(serverURL string) string {
	u, err := url.Parse(serverURL)
	if err != nil || u.Host == "" {
		return ""
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return ""
	}
	dir, err := dataDir("")
	if err != nil {
		return ""
	}
	data, err := os.ReadFile(filepath.Join(dir, adminTokenFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
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
