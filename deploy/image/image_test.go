package image_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/batonflow/baton/deploy/image"
	"github.com/batonflow/baton/deploy/internal/batonbin"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "baton-image-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if binary, err = batonbin.Static(dir, "linux"); err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// caFile is Debian's bundle, or a stand-in PEM where the machine has none.
func caFile(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(image.DefaultCAFile); err == nil {
		return image.DefaultCAFile
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s missing: apt-get install ca-certificates", image.DefaultCAFile)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(p, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o644)
	return p
}

func TestImage(t *testing.T) {
	ca := caFile(t)
	img, err := image.Build(image.Options{Binary: binary, CAFile: ca, Version: "1.2.3", Revision: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if c.User != "65532:65532" {
		t.Errorf("user %q, want the non-root 65532:65532", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{image.BinaryPath, "server"}) || len(c.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want baton server", c.Entrypoint, c.Cmd)
	}
	if _, ok := c.ExposedPorts["8780/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("exposed ports %v, want 8780/tcp", c.ExposedPorts)
	}
	if _, ok := c.Volumes[image.DataDir]; !ok {
		t.Errorf("volumes %v, want the data directory", c.Volumes)
	}
	for _, want := range []string{"BATON_DATA=" + image.DataDir, "BATON_ADDR=0.0.0.0:8780", "HOME=" + image.DataDir} {
		if !slices.Contains(c.Env, want) {
			t.Errorf("env %q lacks %s", c.Env, want)
		}
	}
	if cfg.OS != "linux" || cfg.Architecture == "" || c.Labels["org.opencontainers.image.version"] != "1.2.3" {
		t.Errorf("platform %s/%s, labels %v", cfg.OS, cfg.Architecture, c.Labels)
	}

	files, err := image.Files(img)
	if err != nil {
		t.Fatal(err)
	}
	var regular []string
	for p, h := range files {
		if h.Typeflag == tar.TypeReg {
			regular = append(regular, p)
		}
	}
	slices.Sort(regular)
	want := []string{"etc/group", "etc/passwd", strings.TrimPrefix(image.CAPath, "/"), strings.TrimPrefix(image.BinaryPath, "/")}
	slices.Sort(want)
	if !slices.Equal(regular, want) {
		t.Errorf("files %v, want only %v", regular, want)
	}
	if bin := files["usr/local/bin/baton"]; bin.Mode != 0o755 || bin.Uid != 0 {
		t.Errorf("the binary is mode %o owned by %d: want 755, root (the server cannot rewrite it)", bin.Mode, bin.Uid)
	}
	if data := files["var/lib/baton"]; data.Typeflag != tar.TypeDir || data.Uid != image.UID || data.Mode != 0o700 {
		t.Errorf("data directory %+v: want a directory of %d, mode 700", data, image.UID)
	}
	if tmp := files["tmp"]; tmp.Typeflag != tar.TypeDir || tmp.Mode != 0o1777 {
		t.Errorf("/tmp %+v", tmp)
	}
	for p, h := range files {
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeDir {
			t.Errorf("%s is of type %c: only files and directories belong in the image", p, h.Typeflag)
		}
	}
	passwd := readFile(t, img, "etc/passwd")
	if !strings.Contains(passwd, "baton:x:65532:65532:") {
		t.Errorf("/etc/passwd has no baton user:\n%s", passwd)
	}

	// Reproducible: the same inputs give the same digest.
	again, err := image.Build(image.Options{Binary: binary, CAFile: ca, Version: "1.2.3", Revision: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("two builds differ: %s and %s", d1, d2)
	}

	// The archive and the layout read back as the same image.
	dir := t.TempDir()
	archive, oci := filepath.Join(dir, "baton.tar"), filepath.Join(dir, "oci")
	if err := image.WriteArchive(archive, "baton:1.2.3", img); err != nil {
		t.Fatal(err)
	}
	if err := image.WriteLayout(oci, "baton:1.2.3", img); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("baton:1.2.3")
	loaded, err := tarball.ImageFromPath(archive, &tag)
	if err != nil {
		t.Fatal(err)
	}
	// The archive keeps the config and the layer; its manifest is
	// rewritten in the archive's own format.
	built, _ := img.ConfigName()
	if c, err := loaded.ConfigName(); err != nil || c != built {
		t.Errorf("the archive holds config %s (%v), built %s", c, err, built)
	}
	p, err := layout.FromPath(oci)
	if err != nil {
		t.Fatal(err)
	}
	fromLayout, err := p.Image(d1)
	if err != nil {
		t.Fatalf("the layout lacks %s: %v", d1, err)
	}
	if _, err := fromLayout.ConfigFile(); err != nil {
		t.Fatal(err)
	}

	t.Run("podman load", func(t *testing.T) { podmanLoad(t, archive) })
}

// readFile reads one file of the image's filesystem.
func readFile(t *testing.T, img v1.Image, path string) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in the image: %v", path, err)
		}
		if h.Name == path {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(data)
		}
	}
}

// Build refuses binaries that cannot run on an image without a C library.
func TestImageRefusesDynamicBinary(t *testing.T) {
	for _, tc := range []struct{ name, binary, want string }{
		{"not an executable", caFile(t), "not a Linux executable"},
		{"missing", filepath.Join(t.TempDir(), "baton"), "reading the baton binary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := image.Build(image.Options{Binary: tc.binary, CAFile: caFile(t)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	if sh, err := exec.LookPath("sh"); err == nil {
		if _, err := image.Build(image.Options{Binary: sh, CAFile: caFile(t)}); err == nil || !strings.Contains(err.Error(), "dynamically linked") && !strings.Contains(err.Error(), "not a Go binary") {
			t.Errorf("building from %s: %v, want a refusal", sh, err)
		}
	}
}

// podmanLoad loads the archive into a throw-away podman store and inspects
// it as podman sees it. Running it is refused on these machines, so this is
// as far as the image is tried.
func podmanLoad(t *testing.T, archive string) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		if os.Getenv("BATON_TEST_PODMAN") == "1" {
			t.Fatal("BATON_TEST_PODMAN=1 but podman is not on PATH")
		}
		t.Skip("podman not installed (apt-get install podman); the image was inspected in Go above")
	}
	store := t.TempDir()
	base := []string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"), "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(podman, append(slices.Clone(base), args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, errb.String())
			}
		case <-time.After(5 * time.Minute):
			cmd.Process.Kill()
			t.Fatalf("podman %s hung", strings.Join(args, " "))
		}
		return out.String()
	}
	if out := run("load", "--input", archive); !strings.Contains(out, "baton:1.2.3") {
		t.Fatalf("podman load said %q", out)
	}
	got := run("image", "inspect", "--format", "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.ExposedPorts}}|{{.Os}}", "localhost/baton:1.2.3")
	if want := `65532:65532|["/usr/local/bin/baton","server"]|{"8780/tcp":{}}|linux`; strings.TrimSpace(got) != want {
		t.Errorf("podman image inspect: %s, want %s", got, want)
	}
}
