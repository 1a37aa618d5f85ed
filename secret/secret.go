// Package secret keeps workflow secrets: values a workflow reads through
// $secrets (and authentication policies through `use: secret`) and that
// Baton never stores, logs or returns in clear. Values are JSON data,
// sealed with AES-256-GCM before they reach the store; the key comes from
// the operator (--secret-key, BATON_SECRET_KEY) or from a key file that
// Baton generates in its data directory on first use.
package secret

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/batonflow/baton/store"
)

// KeySize is the length of a key: AES-256.
const KeySize = 32

// KeyFile is the name of the generated key file in a data directory.
const KeyFile = "secret.key"

// sealVersion prefixes every sealed value, so that the format (and the
// algorithm) can change without guessing what old rows hold.
const sealVersion byte = 1

// ErrInvalidName is returned for a name that cannot be a secret's.
var ErrInvalidName = errors.New("invalid secret name")

// namePattern keeps names usable as jq object keys ($secrets.name) and in
// URL paths without escaping.
var namePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,252}$`)

// ValidateName reports whether name can name a secret.
func ValidateName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%w %q: use a letter or _ first, then letters, digits, _, . or - (at most 253)", ErrInvalidName, name)
	}
	return nil
}

// ParseKey reads a key given as 64 hex digits or as standard or URL-safe
// base64 of 32 bytes.
func ParseKey(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	if len(text) == 2*KeySize {
		if key, err := hex.DecodeString(text); err == nil {
			return key, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(text); err == nil && len(key) == KeySize {
			return key, nil
		}
	}
	return nil, fmt.Errorf("a secret key is %d bytes written as 64 hex digits or in base64", KeySize)
}

// LoadKey returns the key to seal secrets with: the given text when it is
// not empty, else the key file in dir, which is created (mode 0600) with a
// random key when it does not exist yet. Engines sharing a database must
// share the key, so they should be given it explicitly.
func LoadKey(text, dir string) ([]byte, error) {
	if text != "" {
		return ParseKey(text)
	}
	if dir == "" {
		return nil, errors.New("no secret key: give one or a data directory to keep a generated one in")
	}
	path := filepath.Join(dir, KeyFile)
	data, err := os.ReadFile(path)
	if err == nil {
		key, perr := ParseKey(string(data))
		if perr != nil {
			return nil, fmt.Errorf("secret key file %s: %w", path, perr)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading the secret key file: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generating a secret key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	// O_EXCL: when two processes race to create the key, the loser reads
	// the winner's instead of overwriting it and losing every secret
	// sealed with it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadKey("", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("creating the secret key file: %w", err)
	}
	_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return nil, fmt.Errorf("writing the secret key file %s: %w", path, err)
	}
	return key, nil
}

// Store keeps secrets in a store.Store, sealed. It is safe for concurrent
// use.
type Store struct {
	st   store.Store
	aead cipher.AEAD
	now  func() time.Time
}

// New returns a secret store over st sealing with key (KeySize bytes).
func New(st store.Store, key []byte) (*Store, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return &Store{st: st, aead: aead, now: time.Now}, nil
}

// seal encrypts plaintext with the secret's name as additional data, so
// that a sealed value copied under another name does not open.
func (s *Store) seal(name string, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("generating a nonce: %w", err)
	}
	out := make([]byte, 0, 1+len(nonce)+len(plaintext)+s.aead.Overhead())
	out = append(out, sealVersion)
	out = append(out, nonce...)
	return s.aead.Seal(out, nonce, plaintext, []byte(name)), nil
}

func (s *Store) open(name string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n || sealed[0] != sealVersion {
		return nil, fmt.Errorf("secret %q: unknown sealed format", name)
	}
	plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(name))
	if err != nil {
		return nil, fmt.Errorf("secret %q cannot be decrypted with this key (was it sealed with another one?)", name)
	}
	return plain, nil
}

// DefaultNamespace is the namespace of secrets named without one. Its
// secrets are stored under their bare names, as they were before secrets
// had namespaces, so older databases keep working.
const DefaultNamespace = "default"

// storageName is the key a namespace's secret has in the store: the bare
// name in the default namespace, NAMESPACE/NAME in others. Names cannot
// contain "/", so the two never collide, and the key is the sealed value's
// additional data: a value copied into another namespace does not open.
func storageName(namespace, name string) string {
	if namespace == DefaultNamespace || namespace == "" {
		return name
	}
	return namespace + "/" + name
}

func validateNamespace(namespace string) error {
	if namespace == "" || strings.ContainsAny(namespace, "/*") || len(namespace) > 63 {
		return fmt.Errorf("%w: namespace %q", ErrInvalidName, namespace)
	}
	return nil
}

// Set stores value in the default namespace; see SetIn.
func (s *Store) Set(ctx context.Context, name string, value any) error {
	return s.SetIn(ctx, DefaultNamespace, name, value)
}

// SetIn stores value (JSON data: a string, or an object such as
// {username, password} for an authentication policy's `use: secret`)
// under name in namespace, replacing any previous value.
func (s *Store) SetIn(ctx context.Context, namespace, name string, value any) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if err := validateNamespace(namespace); err != nil {
		return err
	}
	if value == nil {
		return fmt.Errorf("secret %q: the value must not be null", name)
	}
	plain, err := json.Marshal(value)
	if err != nil {
		return fmt.Errorf("secret %q: the value is not JSON data: %w", name, err)
	}
	key := storageName(namespace, name)
	sealed, err := s.seal(key, plain)
	if err != nil {
		return fmt.Errorf("secret %q: %w", name, err)
	}
	return s.st.PutSecret(ctx, &store.Secret{Name: key, Value: sealed, UpdatedAt: s.now().UTC()})
}

// Names lists the secrets of the default namespace; see NamesIn.
func (s *Store) Names(ctx context.Context) ([]string, error) {
	return s.NamesIn(ctx, DefaultNamespace)
}

// NamesIn lists the names of a namespace's secrets, sorted; values are
// never listed.
func (s *Store) NamesIn(ctx context.Context, namespace string) ([]string, error) {
	if err := validateNamespace(namespace); err != nil {
		return nil, err
	}
	all, err := s.st.ListSecretNames(ctx)
	if err != nil {
		return nil, err
	}
	names := []string{}
	for _, key := range all {
		ns, name, qualified := strings.Cut(key, "/")
		if !qualified {
			ns, name = DefaultNamespace, key
		}
		if ns == namespace {
			names = append(names, name)
		}
	}
	return names, nil
}

// Delete removes a secret of the default namespace; see DeleteIn.
func (s *Store) Delete(ctx context.Context, name string) error {
	return s.DeleteIn(ctx, DefaultNamespace, name)
}

// DeleteIn removes a namespace's secret; store.ErrNotFound when there is
// none.
func (s *Store) DeleteIn(ctx context.Context, namespace, name string) error {
	if err := validateNamespace(namespace); err != nil {
		return err
	}
	return s.st.DeleteSecret(ctx, storageName(namespace, name))
}

// Secrets returns secrets of the default namespace; see SecretsIn.
func (s *Store) Secrets(ctx context.Context, names []string) (map[string]any, error) {
	return s.SecretsIn(ctx, DefaultNamespace, names)
}

// SecretsIn returns the named secrets of a namespace that exist, opened,
// as JSON data. It is what the engine asks when an invocation starts or
// resumes: a workflow reads only its own namespace's secrets.
func (s *Store) SecretsIn(ctx context.Context, namespace string, names []string) (map[string]any, error) {
	if err := validateNamespace(namespace); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(names))
	byKey := make(map[string]string, len(names))
	for _, name := range names {
		// A name with a "/" would reach into another namespace's keys;
		// it names no secret.
		if ValidateName(name) != nil {
			continue
		}
		key := storageName(namespace, name)
		keys = append(keys, key)
		byKey[key] = name
	}
	rows, err := s.st.GetSecrets(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(rows))
	for _, row := range rows {
		name, ok := byKey[row.Name]
		if !ok {
			continue
		}
		plain, err := s.open(row.Name, row.Value)
		if err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(plain))
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("secret %q holds no JSON value: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}
