package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// TestDataDirOwnedByOneProcess starts a server on a data directory and
// checks that every other command that would open its database fails at
// once with one line naming the server, until the server is SIGKILLed:
// the lock dies with its holder.
func TestDataDirOwnedByOneProcess(t *testing.T) {
	data := t.TempDir()
	srv := startServer(t, data)
	pid := strconv.Itoa(srv.cmd.Process.Pid)
	held := "baton: data directory " + data + " is in use by `baton server` (pid " + pid + ", serving " + srv.url + "); "
	doc := writeFile(t, t.TempDir(), "hello.yaml", helloDoc("1.0.0"))

	for _, tc := range []struct {
		name string
		args []string
		hint string
	}{
		{"server", []string{"server", "--addr", "127.0.0.1:0", "--data", data}, "stop it first, or give another --data"},
		{"run", []string{"run", doc, "--data", data}, "run the workflow on that server (baton workflow apply FILE --server " + srv.url},
		{"fn", []string{"fn", "list", "--data", data}, "use --server " + srv.url + " instead of --data"},
		{"secret", []string{"secret", "list", "--data", data}, "use --server " + srv.url + " instead of --data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := baton(t, nil, tc.args...)
			if res.code != 1 || res.stdout != "" || !strings.HasPrefix(res.stderr, held+tc.hint) || strings.Count(res.stderr, "\n") != 1 {
				t.Fatalf("baton %v while a server holds the directory:\n%+v\nwant a line starting %q", tc.args, res, held+tc.hint)
			}
		})
	}

	srv.kill(t)
	res := baton(t, nil, "run", doc, "--data", data, "--input", `{"name":"Next"}`)
	if res.code != 0 || !strings.Contains(res.stdout, "Hello, Next!") {
		t.Fatalf("run after the server was SIGKILLed: %+v", res)
	}
}

// TestServerThatCannotListenResumesNothing leaves an invocation in the
// middle of an HTTP call (SIGKILL), then starts a server on a port that is
// taken: it must fail without sending the call again; a server that can
// listen then resumes it.
func TestServerThatCannotListenResumesNothing(t *testing.T) {
	ep := newEndpoint()
	ep.release = make(chan struct{})
	target := httptest.NewServer(ep)
	defer target.Close()
	data := t.TempDir()

	srv := startServer(t, data)
	if code := srv.do(t, "POST", "/v1/workflows", fmt.Sprintf(crashWorkflow, target.URL), nil); code != http.StatusCreated {
		t.Fatalf("apply: %d\n%s", code, srv.logs)
	}
	var started struct{ ID string }
	if code := srv.do(t, "POST", "/v1/workflows/test/crash/invocations", "{}", &started); code != http.StatusAccepted {
		t.Fatalf("invoke: %d", code)
	}
	waitFor(t, ep.arrived, "/before")
	waitFor(t, ep.arrived, "/slow")
	srv.kill(t)
	close(ep.release)

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	res := baton(t, nil, "server", "--addr", taken.Addr().String(), "--data", data)
	if res.code != 1 || !strings.HasPrefix(res.stderr, "baton: cannot listen on "+taken.Addr().String()) {
		t.Fatalf("server on a taken port: %+v", res)
	}
	if hits, _ := ep.counts(); hits["/slow"] != 1 {
		t.Fatalf("a server that could not listen sent /slow again: hits %v", hits)
	}

	srv = startServer(t, data)
	defer srv.stop()
	waitFor(t, ep.arrived, "/after")
	if hits, _ := ep.counts(); hits["/slow"] != 2 || hits["/after"] != 1 {
		t.Fatalf("after a restart that listens: hits %v, want /slow twice and /after once", hits)
	}
}
