package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/secret"
	"github.com/batonflow/baton/store"
)

// secretKeyEnv gives the key that seals secrets when --secret-key is not
// set.
const secretKeyEnv = "BATON_SECRET_KEY"

func addSecretKeyFlag(cmd *cobra.Command, key *string) {
	cmd.Flags().StringVar(key, "secret-key", "",
		"key sealing the secret store: 32 bytes as 64 hex digits or base64 (default $"+secretKeyEnv+
			", else the "+secret.KeyFile+" file in the data directory, generated on first use)")
}

// openSecrets returns the secret store over st, sealed with the flag's key,
// $BATON_SECRET_KEY, or the data directory's key file. A shared store has
// no such file: every server on it must seal with the same key, so the key
// must be given.
func openSecrets(st *openedStore, flag string) (*secret.Store, error) {
	text := flag
	if text == "" {
		text = os.Getenv(secretKeyEnv)
	}
	if text == "" && st.shared {
		return nil, fmt.Errorf("secret key: with --store %s every server must seal secrets with the same key; "+
			"give it with --secret-key or $%s (32 bytes as 64 hex digits, e.g. from `openssl rand -hex 32`)", st.desc, secretKeyEnv)
	}
	key, err := secret.LoadKey(text, st.dir)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return secret.New(st, key)
}

// secretTarget is where the secret commands act: a server (the default)
// or, with --data, a data directory's database directly.
type secretTarget struct {
	server *serverFlag
	data   string
	key    string
}

// secretBackend is what the secret commands need, from a server or a
// local database.
type secretBackend interface {
	Set(ctx context.Context, name string, value any) error
	Names(ctx context.Context) ([]string, error)
	Delete(ctx context.Context, name string) error
}

type remoteSecrets struct {
	c interface {
		SetSecret(ctx context.Context, name string, value any) error
		SecretNames(ctx context.Context) ([]string, error)
		DeleteSecret(ctx context.Context, name string) error
	}
}

func (r remoteSecrets) Set(ctx context.Context, name string, value any) error {
	return r.c.SetSecret(ctx, name, value)
}
func (r remoteSecrets) Names(ctx context.Context) ([]string, error) { return r.c.SecretNames(ctx) }
func (r remoteSecrets) Delete(ctx context.Context, name string) error {
	return r.c.DeleteSecret(ctx, name)
}

// open returns the backend and a function that releases it.
func (t *secretTarget) open(ctx context.Context) (secretBackend, func() error, error) {
	if t.data == "" {
		c, err := t.server.client()
		if err != nil {
			return nil, nil, err
		}
		return remoteSecrets{c: c}, func() error { return nil }, nil
	}
	st, err := openStore(ctx, storeTarget{dataDir: t.data}, "secret", slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, nil, err
	}
	secrets, err := openSecrets(st, t.key)
	if err != nil {
		return nil, nil, errors.Join(err, st.Close())
	}
	return secrets, st.Close, nil
}

func newSecretCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Manage the secrets workflows read through $secrets",
		Long: "Secret sets, lists and deletes secrets on a baton server, or with --data in a data\n" +
			"directory's database directly. Values are encrypted at rest and never shown again;\n" +
			"a workflow sees a secret as $secrets.NAME when its use.secrets lists NAME.",
		Args: cobra.NoArgs,
	}
	t := &secretTarget{server: addServerFlag(cmd)}
	cmd.PersistentFlags().StringVar(&t.data, "data", "", "act on the database of this data directory instead of a server")
	cmd.PersistentFlags().StringVar(&t.key, "secret-key", "",
		"with --data: the key sealing the secrets (default $"+secretKeyEnv+", else the directory's "+secret.KeyFile+")")
	cmd.AddCommand(newSecretSetCommand(t), newSecretListCommand(t), newSecretDeleteCommand(t))
	return cmd
}

func newSecretSetCommand(t *secretTarget) *cobra.Command {
	var value, fromFile string
	var literals []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "set NAME (--value V | --from-file F | --from-literal KEY=VALUE...)",
		Short: "Create or replace a secret",
		Long: "Set stores a secret. --value gives a string, --from-file a file's contents (- for stdin),\n" +
			"and --from-literal, repeated, an object of strings, such as the username and password\n" +
			"that an authentication policy's `use: secret` expects. With --json, the value or file\n" +
			"is read as a JSON document instead of a string.",
		Example: "  baton secret set apiKey --value s3cr3t\n" +
			"  baton secret set petstore --from-literal username=alice --from-literal password=wonderland\n" +
			"  baton secret set oauth --from-file oauth.json --json\n" +
			"  baton secret set token --from-file token.txt --data ./data",
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&value, "value", "", "the secret's value")
	cmd.Flags().StringVar(&fromFile, "from-file", "", "read the value from this file (- for stdin)")
	cmd.Flags().StringArrayVar(&literals, "from-literal", nil, "KEY=VALUE field of an object value (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "parse --value or --from-file as JSON")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		name := args[0]
		if err := secret.ValidateName(name); err != nil {
			return err
		}
		v, err := secretValue(cmd, value, fromFile, literals, asJSON)
		if err != nil {
			return err
		}
		backend, release, err := t.open(cmd.Context())
		if err != nil {
			return err
		}
		err = backend.Set(cmd.Context(), name, v)
		if err = errors.Join(err, release()); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "secret %s set\n", name)
		return nil
	})
	return cmd
}

// secretValue reads the value from exactly one of the sources.
func secretValue(cmd *cobra.Command, value, fromFile string, literals []string, asJSON bool) (any, error) {
	given := 0
	for _, f := range []string{"value", "from-file", "from-literal"} {
		if cmd.Flags().Changed(f) {
			given++
		}
	}
	if given != 1 {
		return nil, errors.New("give exactly one of --value, --from-file and --from-literal")
	}
	if len(literals) > 0 {
		if asJSON {
			return nil, errors.New("--json applies to --value and --from-file, not --from-literal")
		}
		obj := make(map[string]any, len(literals))
		for _, lit := range literals {
			k, v, ok := strings.Cut(lit, "=")
			if !ok || k == "" {
				return nil, errors.New("every --from-literal must be KEY=VALUE with a non-empty KEY")
			}
			if _, dup := obj[k]; dup {
				return nil, fmt.Errorf("--from-literal: key %q given twice", k)
			}
			obj[k] = v
		}
		return obj, nil
	}
	text := value
	source := "--value"
	if cmd.Flags().Changed("from-file") {
		var data []byte
		var err error
		if fromFile == "-" {
			data, err = io.ReadAll(cmd.InOrStdin())
		} else {
			data, err = os.ReadFile(fromFile)
		}
		if err != nil {
			return nil, fmt.Errorf("reading the secret: %w", err)
		}
		text, source = string(data), fromFile
		if !asJSON {
			// A file saved by an editor ends with a newline that is no
			// part of a token or password.
			text = strings.TrimSuffix(strings.TrimSuffix(text, "\n"), "\r")
		}
	}
	if !asJSON {
		if text == "" {
			return nil, errors.New("the secret's value is empty")
		}
		return text, nil
	}
	var v any
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		// The parser's message is left out: it may quote the secret.
		return nil, fmt.Errorf("%s is not valid JSON", source)
	}
	if v == nil {
		return nil, errors.New("the secret's value must not be null")
	}
	return v, nil
}

func newSecretListCommand(t *secretTarget) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List the secrets' names (never their values)",
		Example: "  baton secret list\n  baton secret list --data ./data -o json",
		Args:    cobra.NoArgs,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if err := out.validate(); err != nil {
			return err
		}
		backend, release, err := t.open(cmd.Context())
		if err != nil {
			return err
		}
		names, err := backend.Names(cmd.Context())
		if err = errors.Join(err, release()); err != nil {
			return err
		}
		list := api.SecretList{Items: make([]api.SecretRef, len(names))}
		for i, n := range names {
			list.Items[i] = api.SecretRef{Name: n}
		}
		return out.print(cmd.OutOrStdout(), list, func(w io.Writer) error {
			row(w, "NAME")
			for _, n := range names {
				row(w, n)
			}
			return nil
		})
	})
	return cmd
}

func newSecretDeleteCommand(t *secretTarget) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a secret",
		Example: "  baton secret delete apiKey",
		Args:    cobra.ExactArgs(1),
	}
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		backend, release, err := t.open(cmd.Context())
		if err != nil {
			return err
		}
		err = backend.Delete(cmd.Context(), args[0])
		if errors.Is(err, store.ErrNotFound) {
			err = fmt.Errorf("secret %s not found", args[0])
		}
		if err = errors.Join(err, release()); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "secret %s deleted\n", args[0])
		return nil
	})
	return cmd
}
