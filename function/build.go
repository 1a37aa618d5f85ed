package function

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// SDKPackage is the import path of the Go SDK. A package that depends on
// it is built as a reactor (-buildmode=c-shared), anything else as a WASI
// command.
const SDKPackage = "github.com/batonflow/baton/sdk/go/baton"

// BuildGo compiles the Go main package in dir into the WebAssembly module
// out, with the flags its style needs: a package using the SDK becomes a
// WASI reactor (-buildmode=c-shared, exports baton_handle), any other a
// WASI command reading stdin and writing stdout. The go command must be
// on PATH; its output is part of the error when the build fails.
func BuildGo(ctx context.Context, dir, out string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build %s: the go command is needed to build Go functions: %w", dir, err)
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("build %s: %w", dir, err)
	}
	env := append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")

	deps, err := runGo(ctx, goBin, dir, env, "list", "-deps", "-f", "{{.ImportPath}}", ".")
	if err != nil {
		return fmt.Errorf("build %s: %w", dir, err)
	}
	args := []string{"build", "-trimpath", "-o", absOut}
	if usesSDK(deps) {
		args = append(args, "-buildmode=c-shared")
	}
	args = append(args, ".")
	if _, err := runGo(ctx, goBin, dir, env, args...); err != nil {
		return fmt.Errorf("build %s: %w", dir, err)
	}
	return nil
}

func usesSDK(deps string) bool {
	for _, line := range strings.Split(deps, "\n") {
		if strings.TrimSpace(line) == SDKPackage {
			return true
		}
	}
	return false
}

func runGo(ctx context.Context, goBin, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return "", fmt.Errorf("go %s: %w", args[0], err)
		}
		return "", fmt.Errorf("go %s: %w\n%s", args[0], err, msg)
	}
	return stdout.String(), nil
}
