// Package batonbin builds the baton binary of the enclosing repository for
// the deploy module's tests, the way `make image` does.
package batonbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
)

var (
	once     sync.Once
	built    string
	buildErr error
)

// Static returns the path of a static, cgo-free baton for goos (linux for
// the image; the host's to run it), built once per test process into dir,
// which must outlive the tests (make it in TestMain). On linux both are the
// same build, which the go build cache shares between test packages.
func Static(dir, goos string) (string, error) {
	once.Do(func() {
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		out := filepath.Join(dir, "baton")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/baton")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+runtime.GOARCH)
		if msg, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/baton: %w\n%s", err, msg)
			return
		}
		built = out
	})
	return built, buildErr
}

// repoRoot is the main module's directory: the parent of the deploy
// module's.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := string(out[:len(out)-1])
	if filepath.Base(gomod) != "go.mod" {
		return "", fmt.Errorf("not inside a module (GOMOD=%q)", gomod)
	}
	root := filepath.Dir(filepath.Dir(gomod))
	if _, err := os.Stat(filepath.Join(root, "cmd", "baton")); err != nil {
		return "", fmt.Errorf("no cmd/baton beside the deploy module: %w", err)
	}
	return root, nil
}
