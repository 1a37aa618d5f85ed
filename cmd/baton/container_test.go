package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const containerDoc = `document: {dsl: '1.0.0', namespace: test, name: box, version: '1.0.0'}
do:
  - box:
      run:
        container:
          image: alpine:3
          command: echo "$1"
          arguments: [hello]
          environment: {TOKEN: abc}
          pullPolicy: never
`

// fakeRuntime writes an executable called name into dir that stands in
// for docker or podman: it records its name and arguments in dir/argv and
// prints who ran it with the TOKEN it was given.
func fakeRuntime(t *testing.T, dir, name string) {
	t.Helper()
	script := "#!/bin/sh\nprintf '%s\\n' \"${0##*/}\" \"$@\" > \"${0%/*}/argv\"\necho \"ran by ${0##*/} TOKEN=$TOKEN\"\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestContainerRuntimeSelection runs a container task through `baton run`
// with stand-in runtimes on PATH: podman is preferred to docker, the flag
// and $BATON_CONTAINER_RUNTIME choose, and the command line is the one
// docs/calls.md shows. It needs no container engine, so it runs
// everywhere.
func TestContainerRuntimeSelection(t *testing.T) {
	bin := t.TempDir()
	fakeRuntime(t, bin, "podman")
	fakeRuntime(t, bin, "docker")
	doc := writeFile(t, t.TempDir(), "box.yaml", containerDoc)
	run := func(env []string, args ...string) result {
		t.Helper()
		// Only the stand-ins are on PATH: a real docker or podman of the
		// machine must not be found.
		env = append([]string{"PATH=" + bin}, env...)
		return baton(t, env, append([]string{"run", doc, "--data", t.TempDir()}, args...)...)
	}
	argv := func() []string {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(bin, "argv"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	}

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"auto-detect prefers podman", nil, nil, "podman"},
		{"flag", nil, []string{"--container-runtime", "docker"}, "docker"},
		{"environment", []string{"BATON_CONTAINER_RUNTIME=docker"}, nil, "docker"},
		{"flag over environment", []string{"BATON_CONTAINER_RUNTIME=docker"}, []string{"--container-runtime", "podman"}, "podman"},
		{"absolute path", nil, []string{"--container-runtime", filepath.Join(bin, "docker")}, "docker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run(tc.env, tc.args...).expect(t, 0, "\"ran by "+tc.want+" TOKEN=abc\"\n", "")
			got := argv()
			if len(got) < 5 || got[0] != tc.want || got[1] != "run" || got[2] != "--rm" || got[3] != "--name" ||
				!strings.HasPrefix(got[4], "box-") || !strings.HasSuffix(got[4], ".test-box") {
				t.Fatalf("argv %q", got)
			}
			want := []string{"--pull=never", "-e", "TOKEN", "--entrypoint", "/bin/sh", "alpine:3", "-c", `echo "$1"`, "sh", "hello"}
			if strings.Join(got[5:], "\x00") != strings.Join(want, "\x00") {
				t.Fatalf("argv after the name %q, want %q", got[5:], want)
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		run(nil, "--container-runtime", "dokker").expect(t, 1, "",
			"baton: --container-runtime \"dokker\": use docker, podman or the absolute path of a compatible runtime\n")
		empty := t.TempDir()
		res := baton(t, []string{"PATH=" + empty, "BATON_CONTAINER_RUNTIME=podman"}, "run", doc, "--data", t.TempDir())
		if res.code != 1 || !strings.HasPrefix(res.stderr, "baton: $BATON_CONTAINER_RUNTIME \"podman\": ") {
			t.Fatalf("a runtime named but missing: %+v", res)
		}
		// Nothing named and nothing on PATH: only container tasks fail,
		// with a configuration error that says how to configure one.
		res = baton(t, []string{"PATH=" + empty}, "run", doc, "--data", t.TempDir())
		if res.code != 1 || !strings.Contains(res.stderr, "configuration") || !strings.Contains(res.stderr, "--container-runtime") {
			t.Fatalf("no runtime: %+v", res)
		}
	})
}

// TestContainerRealRuntime runs a container task through the machine's
// podman or docker. It skips, under CI too, when neither can run a
// container here: CI machines commonly have a docker client without a
// daemon, or a rootless podman that the sandbox refuses, and this test
// must not pull images over the network. TestContainerRuntimeSelection
// covers everything Baton itself does; this test only confirms that a
// real runtime accepts that command line. Set BATON_TEST_CONTAINER_IMAGE
// to an image present locally (default alpine:3) to run it.
func TestContainerRealRuntime(t *testing.T) {
	runtime, err := containerRuntime("")
	if err != nil || runtime == "" {
		t.Skipf("no container runtime (podman, docker) on PATH: %v", err)
	}
	image := os.Getenv("BATON_TEST_CONTAINER_IMAGE")
	if image == "" {
		image = "alpine:3"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, runtime, "run", "--rm", "--pull=never", image, "true").CombinedOutput(); err != nil {
		t.Skipf("%s cannot run a container of %s here: %v: %s", runtime, image, err, strings.TrimSpace(string(out)))
	}
	doc := writeFile(t, t.TempDir(), "box.yaml", strings.Replace(containerDoc, "alpine:3", image, 1))
	res := baton(t, nil, "run", doc, "--data", t.TempDir(), "--container-runtime", runtime)
	res.expect(t, 0, "\"hello\\n\"\n", "")
}
