package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"
)

// containerRuntimeEnv names the container runtime when the flag is not
// given.
const containerRuntimeEnv = "BATON_CONTAINER_RUNTIME"

// containerRuntimes are the runtimes auto-detection looks for on PATH, in
// order: podman first because it runs rootless without a daemon.
var containerRuntimes = []string{"podman", "docker"}

func addContainerRuntimeFlag(cmd *cobra.Command, runtime *string) {
	cmd.Flags().StringVar(runtime, "container-runtime", "",
		"command that runs `run: container` tasks: docker, podman or the absolute path of one (default $"+
			containerRuntimeEnv+", else podman or docker found on PATH)")
}

// containerRuntime resolves the runtime of `run: container` tasks: the
// flag, then $BATON_CONTAINER_RUNTIME, then podman or docker on PATH. It
// returns "" when none is found: the engine then fails container tasks
// with a configuration error naming the flag, and everything else runs.
// A runtime named explicitly must exist, so a typo fails at start.
func containerRuntime(flag string) (string, error) {
	name, source := flag, "--container-runtime"
	if name == "" {
		name, source = os.Getenv(containerRuntimeEnv), "$"+containerRuntimeEnv
	}
	if name == "" {
		for _, candidate := range containerRuntimes {
			if path, err := exec.LookPath(candidate); err == nil {
				return path, nil
			}
		}
		return "", nil
	}
	if name != "docker" && name != "podman" && !filepath.IsAbs(name) {
		return "", fmt.Errorf("%s %q: use docker, podman or the absolute path of a compatible runtime", source, name)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", source, name, err)
	}
	return path, nil
}
