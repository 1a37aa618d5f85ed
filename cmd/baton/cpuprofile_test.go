package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestServerCPUProfile checks that `baton server --cpuprofile FILE`
// leaves a pprof profile (gzipped protobuf) once it stops.
func TestServerCPUProfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(t.TempDir(), "server.pprof")
	srv := startServerWith(t, dir, "--cpuprofile", path)
	if code := srv.do(t, "GET", "/v1/workflows", "", nil); code != 200 {
		t.Fatalf("GET /v1/workflows: %d", code)
	}
	srv.stop()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no profile after the server stopped: %v", err)
	}
	if !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) || len(data) < 64 {
		t.Fatalf("the profile is not a gzipped pprof profile: %d bytes %x", len(data), data[:min(len(data), 8)])
	}
}
