package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/auth"
	"github.com/batonflow/baton/console"
	"github.com/batonflow/baton/store"
)

// adminTokenFile is the local admin credential in the data directory.
const adminTokenFile = "admin.token"

// securityConfig is how `baton server` protects its API.
type securityConfig struct {
	tlsCert, tlsKey, tlsClientCA string
	allowedHosts, allowedOrigins []string
	insecure                     bool
	oidc                         oidcConfig
}

func addSecurityFlags(cmd *cobra.Command) *securityConfig {
	c := &securityConfig{}
	f := cmd.Flags()
	f.StringVar(&c.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (chain)")
	f.StringVar(&c.tlsKey, "tls-key", "", "the PEM private key of --tls-cert")
	f.StringVar(&c.tlsClientCA, "tls-client-ca", "", "require client certificates signed by these PEM CAs (mutual TLS)")
	f.StringSliceVar(&c.allowedHosts, "allowed-hosts", nil,
		"host names the API answers to besides IP addresses, localhost and the TLS certificate's names (DNS rebinding protection; * for any)")
	f.StringSliceVar(&c.allowedOrigins, "allowed-origins", nil, "origins (https://console.example) whose pages may change things through the API")
	f.BoolVar(&c.insecure, "insecure", false, "allow a non-loopback --addr without TLS: tokens then cross the network in clear")
	addOIDCFlags(cmd, &c.oidc)
	return c
}

// isLoopbackAddr reports whether a listen address only accepts
// connections from this machine.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkExposure refuses to serve bearer tokens in clear beyond this
// machine unless the operator says so.
func (c *securityConfig) checkExposure(addr string) error {
	if c.tlsCert != "" || isLoopbackAddr(addr) || c.insecure {
		return nil
	}
	return fmt.Errorf("refusing to serve %s without TLS: credentials would cross the network in clear; give --tls-cert and --tls-key, or --insecure", addr)
}

// tlsConfig loads the certificate and client CA, nil without --tls-cert.
func (c *securityConfig) tlsConfig() (*tls.Config, error) {
	if c.tlsCert == "" && c.tlsKey == "" {
		if c.tlsClientCA != "" {
			return nil, errors.New("--tls-client-ca needs --tls-cert and --tls-key")
		}
		return nil, nil
	}
	if c.tlsCert == "" || c.tlsKey == "" {
		return nil, errors.New("give both --tls-cert and --tls-key")
	}
	cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("loading the TLS certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.tlsClientCA != "" {
		pem, err := os.ReadFile(c.tlsClientCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-client-ca %s holds no PEM certificate", c.tlsClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// certificateNames are the DNS names of the served certificate: requests
// naming them are no DNS rebinding.
func certificateNames(cfg *tls.Config) []string {
	if cfg == nil {
		return nil
	}
	var names []string
	for _, c := range cfg.Certificates {
		if len(c.Certificate) == 0 {
			continue
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			continue
		}
		names = append(names, leaf.DNSNames...)
	}
	return names
}

// ensureLocalAdmin keeps a working admin token in <data>/admin.token
// (0600), creating one when the file is missing or its token no longer
// works: the owner of the data directory administers the server, and the
// CLI on this machine finds the credential without being told.
func ensureLocalAdmin(ctx context.Context, dir string, tokens *auth.Tokens, logger *slog.Logger) error {
	path := filepath.Join(dir, adminTokenFile)
	if data, err := os.ReadFile(path); err == nil {
		if _, err := tokens.Verify(ctx, strings.TrimSpace(string(data))); err == nil {
			return os.Chmod(path, 0o600)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	secret, row, err := tokens.Create(ctx, auth.NewTokenRequest{
		Namespace: auth.AllNamespaces, Role: auth.Admin, Name: "local admin", CreatedBy: "baton server",
	})
	if err != nil {
		return fmt.Errorf("creating the local admin token: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".admin-token-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(secret + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	logger.Info("created the local admin token", "file", path, "id", row.ID)
	return nil
}

// tokenCacheTTL is how long the server trusts a token row it read: every
// request is authenticated, and a store read per request was about 6% of
// the server's CPU under load. Revoking through this server takes effect
// at once; replicas sharing a PostgreSQL store notice within this time.
const tokenCacheTTL = time.Second

// securedAPI is everything serve needs to protect the API: the handler's
// options and the listener's TLS configuration.
type securedAPI struct {
	options []api.Option
	tls     *tls.Config
	// sessions are the console's login cookies, which the API accepts as
	// well; authn checks the tokens they carry (the API's credentials
	// without the cookie).
	sessions *console.Sessions
	authn    auth.Authenticator
}

// setup prepares the credentials and the TLS configuration; serve has
// called checkExposure before opening anything.
func (c *securityConfig) setup(ctx context.Context, dir string, st store.Store, logger *slog.Logger) (*securedAPI, error) {
	tlsCfg, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	tokenStore, ok := st.(store.TokenStore)
	if !ok {
		return nil, fmt.Errorf("the store %T keeps no tokens", st)
	}
	// The directory holds the database, the secret key and the admin
	// token: only its owner may list or enter it.
	if err := os.Chmod(dir, 0o700); err != nil {
		logger.Warn("cannot restrict the data directory to its owner", "dir", dir, "error", err)
	}
	tokens := &auth.Tokens{Store: tokenStore, CacheTTL: tokenCacheTTL}
	if err := ensureLocalAdmin(ctx, dir, tokens, logger); err != nil {
		return nil, err
	}
	chain := auth.Chain{tokens}
	if c.oidc.issuer != "" {
		v, err := c.oidc.verifier(ctx, &http.Client{})
		if err != nil {
			return nil, err
		}
		chain = append(chain, v)
	}
	key, err := consoleKey(dir)
	if err != nil {
		return nil, err
	}
	sessions, err := console.NewSessions(key)
	if err != nil {
		return nil, err
	}
	opts := []api.Option{
		api.WithAuth(sessions.Authenticator(chain)),
		api.WithTokens(tokens),
		api.WithAllowedHosts(append(append([]string(nil), c.allowedHosts...), certificateNames(tlsCfg)...)...),
		api.WithAllowedOrigins(c.allowedOrigins...),
	}
	if audit, ok := st.(store.AuditStore); ok {
		opts = append(opts, api.WithAudit(audit))
	}
	return &securedAPI{options: opts, tls: tlsCfg, sessions: sessions, authn: chain}, nil
}

// consoleKeyFile seals the console's session cookies; kept in the data
// directory so that a restart does not log everyone out.
const consoleKeyFile = "console.key"

// consoleKey reads the console key of dir, creating it the first time.
func consoleKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, consoleKeyFile)
	key, err := os.ReadFile(path)
	if err == nil && len(key) == console.KeySize {
		return key, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading the console key: %w", err)
	}
	key = console.NewKey()
	tmp, err := os.CreateTemp(dir, ".console-key-*")
	if err != nil {
		return nil, fmt.Errorf("creating the console key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("writing the console key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("writing the console key: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("writing the console key: %w", err)
	}
	return key, nil
}
