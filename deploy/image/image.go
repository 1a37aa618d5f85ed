// Package image assembles Baton's container image from a static baton
// binary and a CA bundle, without a base image, a registry or a container
// runtime: one layer holding the binary, the certificates, the user's
// passwd entry and the empty directories a read-only root filesystem still
// needs as mount points.
package image

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the image holds and how it runs; the Helm chart and the docs rely
// on these.
const (
	BinaryPath = "/usr/local/bin/baton"
	CAPath     = "/etc/ssl/certs/ca-certificates.crt"
	// DataDir is the data directory (BATON_DATA) and the image's volume: the
	// SQLite database, the secret key and the admin token live there, so it
	// is the one place the server writes besides /tmp.
	DataDir = "/var/lib/baton"
	// UID and GID are the non-root user the server runs as (the "nonroot"
	// user of distroless images, so volumes prepared for those fit).
	UID, GID = 65532, 65532
	// Port is the API's port; BATON_ADDR listens on it on every interface.
	Port = 8780
	// DefaultCAFile is Debian's bundle (package ca-certificates).
	DefaultCAFile = "/etc/ssl/certs/ca-certificates.crt"
)

// Options say what goes into the image.
type Options struct {
	// Binary is a baton built with CGO_ENABLED=0 GOOS=linux.
	Binary string
	// CAFile is a PEM bundle of the CAs to trust (DefaultCAFile when empty).
	CAFile string
	// Version labels the image (org.opencontainers.image.version).
	Version string
	// Revision is the source commit, if known.
	Revision string
	// Created is the image's creation time and every file's modification
	// time; the zero time (the Unix epoch) keeps builds reproducible.
	Created time.Time
}

// Build assembles the image. It refuses a binary that is not a static
// Linux executable, since the image has no C library nor loader to run it.
func Build(opts Options) (v1.Image, error) {
	bin, err := os.ReadFile(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("reading the baton binary: %w", err)
	}
	arch, err := checkStatic(opts.Binary)
	if err != nil {
		return nil, err
	}
	caFile := opts.CAFile
	if caFile == "" {
		caFile = DefaultCAFile
	}
	certs, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading the CA certificates (Debian: apt-get install ca-certificates): %w", err)
	}
	if !bytes.Contains(certs, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	created := opts.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC()

	layerTar, err := rootFS(bin, certs, created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("building the layer: %w", err)
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "baton-image: " + BinaryPath + ", " + CAPath,
			Comment:   "the static baton binary and CA certificates",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("building the image: %w", err)
	}
	cfgFile, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfgFile = cfgFile.DeepCopy()
	cfgFile.Architecture = arch
	cfgFile.OS = "linux"
	cfgFile.Created = v1.Time{Time: created}
	cfgFile.Author = "Baton"
	cfgFile.Config = Config(opts.Version, opts.Revision)
	return mutate.ConfigFile(img, cfgFile)
}

// Config is how the image runs: `baton server` as the non-root user,
// listening on every interface, with its data directory as a volume. The
// server reads every further flag from BATON_<FLAG> variables.
func Config(version, revision string) v1.Config {
	labels := map[string]string{
		"org.opencontainers.image.title":       "baton",
		"org.opencontainers.image.description": "Baton: durable Serverless Workflow DSL 1.0 engine (baton server)",
		"org.opencontainers.image.source":      "https://github.com/batonflow/baton",
	}
	if version != "" {
		labels["org.opencontainers.image.version"] = version
	}
	if revision != "" {
		labels["org.opencontainers.image.revision"] = revision
	}
	return v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, GID),
		Entrypoint: []string{BinaryPath, "server"},
		Env: []string{
			"PATH=/usr/local/bin",
			"HOME=" + DataDir,
			"BATON_DATA=" + DataDir,
			fmt.Sprintf("BATON_ADDR=0.0.0.0:%d", Port),
			"BATON_LOG_FORMAT=json",
			"SSL_CERT_FILE=" + CAPath,
		},
		WorkingDir:   DataDir,
		ExposedPorts: map[string]struct{}{fmt.Sprintf("%d/tcp", Port): {}},
		Volumes:      map[string]struct{}{DataDir: {}},
		StopSignal:   "SIGTERM",
		Labels:       labels,
	}
}

// checkStatic returns the binary's architecture in Go's (and OCI's) names,
// or why it cannot run in an image without a C library.
func checkStatic(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s is not a Linux executable (build it with GOOS=linux): %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%s is dynamically linked: build it with CGO_ENABLED=0", path)
		}
	}
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s is not a Go binary: %w", path, err)
	}
	var arch string
	for _, s := range info.Settings {
		switch s.Key {
		case "GOARCH":
			arch = s.Value
		case "GOOS":
			if s.Value != "linux" {
				return "", fmt.Errorf("%s is built for %s: build it with GOOS=linux", path, s.Value)
			}
		case "CGO_ENABLED":
			if s.Value != "0" {
				return "", fmt.Errorf("%s is built with cgo: build it with CGO_ENABLED=0", path)
			}
		}
	}
	if arch == "" {
		return "", fmt.Errorf("%s records no GOARCH", path)
	}
	return arch, nil
}

// entry is one file or directory of the layer.
type entry struct {
	path     string
	mode     int64
	uid, gid int
	data     []byte // nil for a directory
}

// rootFS is the layer as a tar archive.
func rootFS(bin, certs []byte, mtime time.Time) ([]byte, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nbaton:x:%d:%d:baton:%s:/sbin/nologin\n", UID, GID, DataDir)
	group := fmt.Sprintf("root:x:0:\nbaton:x:%d:\n", GID)
	entries := []entry{
		{path: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{path: "etc/group", mode: 0o644, data: []byte(group)},
		{path: strings.TrimPrefix(CAPath, "/"), mode: 0o644, data: certs},
		{path: strings.TrimPrefix(BinaryPath, "/"), mode: 0o755, data: bin},
		// Mount points: a read-only root filesystem gets a volume here.
		{path: strings.TrimPrefix(DataDir, "/"), mode: 0o700, uid: UID, gid: GID},
		{path: "tmp", mode: 0o1777},
	}
	// Parents first, each once.
	dirs := map[string]bool{}
	for _, e := range entries {
		for d := filepath.Dir(e.path); d != "."; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for _, e := range entries {
		delete(dirs, e.path)
	}
	for d := range dirs {
		entries = append(entries, entry{path: d, mode: 0o755})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].path < entries[j].path })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.path,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: mtime,
			Format:  tar.FormatPAX,
		}
		if e.data == nil {
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("writing the layer: %w", err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("writing the layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("writing the layer: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteArchive writes the image as an archive that `podman load` and
// `docker load` read, tagged ref (baton:0.1.0, or a registry's name).
func WriteArchive(path, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image name %q: %w", ref, err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// WriteLayout writes the image into an OCI image layout directory (for
// skopeo copy oci:DIR or crane push DIR), replacing what dir held, with
// ref as its org.opencontainers.image.ref.name.
func WriteLayout(dir, ref string, img v1.Image) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing %s: %w", dir, err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref,
	})); err != nil {
		return fmt.Errorf("writing %s: %w", dir, err)
	}
	return nil
}

// Files lists the regular files and directories of the image's layer with
// their modes and owners, for inspection.
func Files(img v1.Image) (map[string]tar.Header, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	files := map[string]tar.Header{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rc.Close()
				return nil, err
			}
			files[strings.TrimSuffix(h.Name, "/")] = *h
		}
		rc.Close()
	}
	return files, nil
}
