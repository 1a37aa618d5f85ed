package main

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestServerFlagsFromEnvironment(t *testing.T) {
	env := map[string]string{
		"BATON_DRAIN_TIMEOUT": "45s",
		"BATON_ADDR":          "0.0.0.0:9999",
		"BATON_ALLOWED_HOSTS": "baton.example,baton.internal",
		"BATON_PREWARM":       "false",
		"BATON_LOG_LEVEL":     "", // empty: as if unset
	}
	cmd := newServerCommand()
	if err := cmd.ParseFlags([]string{"--addr", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	if err := setFlagsFromEnv(cmd.Flags(), lookup); err != nil {
		t.Fatal(err)
	}
	flags := cmd.Flags()
	if d, _ := flags.GetDuration("drain-timeout"); d != 45*time.Second {
		t.Errorf("--drain-timeout = %v, want 45s from $BATON_DRAIN_TIMEOUT", d)
	}
	if addr, _ := flags.GetString("addr"); addr != "127.0.0.1:0" {
		t.Errorf("--addr = %q: the command line must win over $BATON_ADDR", addr)
	}
	if hosts, _ := flags.GetStringSlice("allowed-hosts"); strings.Join(hosts, " ") != "baton.example baton.internal" {
		t.Errorf("--allowed-hosts = %q, want the two hosts of $BATON_ALLOWED_HOSTS", hosts)
	}
	if on, _ := flags.GetBool("prewarm"); on {
		t.Error("--prewarm stayed true despite BATON_PREWARM=false")
	}
	if lvl, _ := flags.GetString("log-level"); lvl != "info" {
		t.Errorf("--log-level = %q: an empty variable must leave the default", lvl)
	}
}

// Every flag has its own variable, and none takes the name of a variable
// the client commands read with another meaning.
func TestServerFlagEnvNamesAreDistinct(t *testing.T) {
	clientOnly := map[string]bool{serverEnv: true, tokenEnv: true, caCertEnv: true}
	seen := map[string]string{}
	newServerCommand().Flags().VisitAll(func(f *pflag.Flag) {
		name := flagEnvName(f.Name)
		if other, ok := seen[name]; ok {
			t.Errorf("--%s and --%s share %s", f.Name, other, name)
		}
		seen[name] = f.Name
		if clientOnly[name] {
			t.Errorf("--%s's variable %s means something else to the client commands", f.Name, name)
		}
	})
	for flag, want := range map[string]string{"store": storeEnv, "data": dataEnv, "secret-key": secretKeyEnv, "container-runtime": containerRuntimeEnv} {
		if got := flagEnvName(flag); got != want {
			t.Errorf("--%s reads %s, documented as %s", flag, got, want)
		}
	}
}

func TestServerFlagFromEnvironmentRejected(t *testing.T) {
	res := baton(t, []string{"BATON_DRAIN_TIMEOUT=soon", "BATON_DATA=" + t.TempDir()}, "server", "--addr", "127.0.0.1:0")
	if res.code != exitUsage || !strings.Contains(res.stderr, "$BATON_DRAIN_TIMEOUT (--drain-timeout)") || !strings.Contains(res.stderr, `"soon"`) {
		t.Fatalf("exit %d, stderr:\n%s\nwant exit %d naming $BATON_DRAIN_TIMEOUT and its value", res.code, res.stderr, exitUsage)
	}
}

// A server configured through its environment alone, as in a container.
func TestServerConfiguredFromEnvironment(t *testing.T) {
	data := t.TempDir()
	srv := startServerArgs(t, []string{"BATON_LOG_FORMAT=json", "BATON_RETENTION=2d", "BATON_DATA=" + data}, "--data", data)
	// The server listens before it is ready (it resumes and preloads in
	// the background), so readiness is waited for, not sampled once.
	waitUntil(t, 30*time.Second, "GET /readyz answers 200", func() bool {
		return srv.do(t, "GET", "/readyz", "", nil) == 200
	})
	srv.stop()
	first, _, _ := strings.Cut(srv.logs.String(), "\n")
	if !strings.HasPrefix(first, "{") {
		t.Fatalf("BATON_LOG_FORMAT=json: the first log line is %q", first)
	}
}
