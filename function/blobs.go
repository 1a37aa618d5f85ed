package function

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/batonflow/baton/store"
)

// blobTimeout bounds one blob read or write against a store: the runtimes
// read modules outside any request's context.
const blobTimeout = time.Minute

// Blobs is a content-addressed store of function artifacts, so that a
// deployed module survives its source file being moved or rebuilt. It
// keeps them in the workflow store (NewStoreBlobs), where every server
// sharing that store finds them, or in a directory (OpenBlobs).
type Blobs struct {
	dir string // set for a directory
	st  store.Blobs
}

// OpenBlobs opens (creating it if needed) a blob directory.
func OpenBlobs(dir string) (*Blobs, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("function blobs: %w", err)
	}
	return &Blobs{dir: dir}, nil
}

// NewStoreBlobs keeps artifacts in st. Modules found in legacyDir, the blob
// directory of earlier versions, move into st first, so that functions
// deployed before keep working; the directory is removed once empty.
func NewStoreBlobs(ctx context.Context, st store.Blobs, legacyDir string) (*Blobs, error) {
	b := &Blobs{st: st}
	if legacyDir == "" {
		return b, nil
	}
	entries, err := os.ReadDir(legacyDir)
	if errors.Is(err, os.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("function blobs: %w", err)
	}
	for _, e := range entries {
		hexsum, ok := strings.CutSuffix(e.Name(), ".wasm")
		if !ok || e.IsDir() {
			continue
		}
		path := filepath.Join(legacyDir, e.Name())
		data, digest, err := (&Blobs{}).Read(path)
		if err != nil {
			return nil, fmt.Errorf("function blobs: %w", err)
		}
		if digest != digestPrefix+hexsum {
			return nil, fmt.Errorf("function blobs: %s is corrupt: its content does not match its name", path)
		}
		if err := st.PutBlob(ctx, digest, data); err != nil {
			return nil, fmt.Errorf("function blobs: moving %s into the store: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("function blobs: %w", err)
		}
	}
	_ = os.Remove(legacyDir) // fails, harmlessly, while anything else is in it
	return b, nil
}

// Dir is the blob directory; "" when blobs live in a store.
func (b *Blobs) Dir() string { return b.dir }

func checkDigest(digest string) (hexsum string, err error) {
	hexsum, ok := strings.CutPrefix(digest, digestPrefix)
	if !ok || len(hexsum) != sha256.Size*2 {
		return "", fmt.Errorf("artifact %q is not a sha256 content address", digest)
	}
	if _, err := hex.DecodeString(hexsum); err != nil {
		return "", fmt.Errorf("artifact %q is not a sha256 content address", digest)
	}
	return hexsum, nil
}

func (b *Blobs) path(digest string) (string, error) {
	hexsum, err := checkDigest(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(b.dir, hexsum+".wasm"), nil
}

// Put copies the file at path into the blob store and returns its content
// address.
func (b *Blobs) Put(path string) (string, error) {
	if b.st != nil {
		data, digest, err := (&Blobs{}).Read(path)
		if err != nil {
			return "", err
		}
		ctx, cancel := context.WithTimeout(context.Background(), blobTimeout)
		defer cancel()
		if err := b.st.PutBlob(ctx, digest, data); err != nil {
			return "", fmt.Errorf("artifact %s: %w", path, err)
		}
		return digest, nil
	}
	src, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("artifact: %w", err)
	}
	defer src.Close()
	tmp, err := os.CreateTemp(b.dir, ".upload-*")
	if err != nil {
		return "", fmt.Errorf("artifact: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), src); err != nil {
		tmp.Close()
		return "", fmt.Errorf("artifact %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("artifact: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("artifact: %w", err)
	}
	digest := digestPrefix + hex.EncodeToString(h.Sum(nil))
	dst, _ := b.path(digest)
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("artifact: %w", err)
	}
	return digest, nil
}

// Read returns an artifact's bytes and content address. The artifact is a
// content address in this blob store, or a file path (a spec that was
// never deployed, as in tests and benchmarks). Content read through an
// address is verified against it.
func (b *Blobs) Read(artifact string) ([]byte, string, error) {
	if !strings.HasPrefix(artifact, digestPrefix) {
		data, err := os.ReadFile(artifact)
		if err != nil {
			return nil, "", fmt.Errorf("artifact: %w", err)
		}
		sum := sha256.Sum256(data)
		return data, digestPrefix + hex.EncodeToString(sum[:]), nil
	}
	if b == nil || (b.st == nil && b.dir == "") {
		return nil, "", fmt.Errorf("artifact %s: no blob store configured", artifact)
	}
	data, err := b.get(artifact)
	if err != nil {
		return nil, "", fmt.Errorf("artifact %s: %w", artifact, err)
	}
	sum := sha256.Sum256(data)
	if digestPrefix+hex.EncodeToString(sum[:]) != artifact {
		return nil, "", fmt.Errorf("artifact %s is corrupt: its content does not match its address", artifact)
	}
	return data, artifact, nil
}

func (b *Blobs) get(digest string) ([]byte, error) {
	if b.st != nil {
		if _, err := checkDigest(digest); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), blobTimeout)
		defer cancel()
		return b.st.GetBlob(ctx, digest)
	}
	p, err := b.path(digest)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(p)
}

func (b *Blobs) has(digest string) bool {
	if b.st != nil {
		_, err := b.get(digest)
		return err == nil
	}
	p, err := b.path(digest)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// list returns the content address of every stored artifact.
func (b *Blobs) list() ([]string, error) {
	if b.st != nil {
		ctx, cancel := context.WithTimeout(context.Background(), blobTimeout)
		defer cancel()
		return b.st.ListBlobs(ctx)
	}
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return nil, err
	}
	var digests []string
	for _, e := range entries {
		if hexsum, ok := strings.CutSuffix(e.Name(), ".wasm"); ok && !e.IsDir() {
			digests = append(digests, digestPrefix+hexsum)
		}
	}
	return digests, nil
}

func (b *Blobs) remove(digest string) error {
	if b.st != nil {
		ctx, cancel := context.WithTimeout(context.Background(), blobTimeout)
		defer cancel()
		if err := b.st.DeleteBlob(ctx, digest); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	}
	p, err := b.path(digest)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
