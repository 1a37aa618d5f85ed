package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/client"
)

func newTokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage the API tokens of a server",
		Long: "Token creates, lists and revokes API tokens. A token holds one role (viewer, operator,\n" +
			"developer or admin) in one namespace, or in every namespace (*). It is shown once, when\n" +
			"it is created; the server keeps only its hash. Managing tokens needs the admin role.",
		Args: cobra.NoArgs,
	}
	r := addRemote(cmd)
	cmd.AddCommand(newTokenCreateCommand(r), newTokenListCommand(r), newTokenRevokeCommand(r))
	return cmd
}

func newTokenCreateCommand(r *remote) *cobra.Command {
	var namespace, role, name string
	var expires time.Duration
	cmd := &cobra.Command{
		Use:   "create --namespace NS --role ROLE [--name N] [--expires D]",
		Short: "Create a token and print it (once)",
		Example: "  baton token create --namespace team-a --role developer --name ci --expires 720h\n" +
			"  export BATON_TOKEN=$(baton token create --namespace team-a --role viewer -o json | jq -r .token)",
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(cmd)
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "the namespace the token acts in (* for every one)")
	cmd.Flags().StringVar(&role, "role", "", "viewer, operator, developer or admin")
	cmd.Flags().StringVar(&name, "name", "", "a name to recognise the token by")
	cmd.Flags().DurationVar(&expires, "expires", 0, "lifetime of the token (e.g. 720h); 0 never expires")
	r.run(cmd, out, func(ctx context.Context, c *client.Client, args []string) error {
		if namespace == "" || role == "" {
			return errors.New("--namespace and --role are required")
		}
		if expires < 0 {
			return errors.New("--expires must not be negative")
		}
		req := api.TokenRequest{Namespace: namespace, Role: role, Name: name}
		if expires > 0 {
			req.ExpiresIn = expires.String()
		}
		created, err := c.CreateToken(ctx, req)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), created, func(w io.Writer) error {
			fmt.Fprintln(w, created.Secret)
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s: %s in %s; it is not shown again\n", created.ID, created.Role, created.Namespace)
			return nil
		})
	})
	return cmd
}

func newTokenListCommand(r *remote) *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List tokens (never their secrets)", Args: cobra.NoArgs}
	out := addOutputFlag(cmd)
	r.run(cmd, out, func(ctx context.Context, c *client.Client, args []string) error {
		items, err := c.ListTokens(ctx)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), api.TokenList{Items: items}, func(w io.Writer) error {
			row(w, "ID", "NAME", "NAMESPACE", "ROLE", "CREATED", "EXPIRES", "CREATED BY")
			for _, t := range items {
				expiresAt := "never"
				if t.ExpiresAt != nil {
					expiresAt = formatTime(*t.ExpiresAt)
				}
				name := t.Name
				if name == "" {
					name = "-"
				}
				row(w, t.ID, name, t.Namespace, t.Role, formatTime(t.CreatedAt), expiresAt, t.CreatedBy)
			}
			return nil
		})
	})
	return cmd
}

func newTokenRevokeCommand(r *remote) *cobra.Command {
	cmd := &cobra.Command{Use: "revoke ID", Short: "Revoke a token at once", Args: cobra.ExactArgs(1)}
	r.run(cmd, nil, func(ctx context.Context, c *client.Client, args []string) error {
		if err := c.RevokeToken(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", args[0])
		return nil
	})
	return cmd
}

func newAuditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read the audit log of administrative changes",
		Args:  cobra.NoArgs,
	}
	r := addRemote(cmd)
	var namespace string
	var after int64
	var limit int
	list := &cobra.Command{
		Use:   "list [--namespace NS] [--after SEQ] [--limit N]",
		Short: "List audit entries, oldest first",
		Args:  cobra.NoArgs,
	}
	out := addOutputFlag(list)
	list.Flags().StringVarP(&namespace, "namespace", "n", "", "only this namespace's entries")
	list.Flags().Int64Var(&after, "after", 0, "entries after this sequence number")
	list.Flags().IntVar(&limit, "limit", 100, "at most this many entries (1 to 1000)")
	r.run(list, out, func(ctx context.Context, c *client.Client, args []string) error {
		page, err := c.ListAudit(ctx, namespace, after, limit)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), page, func(w io.Writer) error {
			row(w, "SEQ", "TIME", "SUBJECT", "NAMESPACE", "ACTION", "TARGET", "STATUS")
			for _, e := range page.Items {
				row(w, strconv.FormatInt(e.Seq, 10), formatTime(e.Time), e.Subject, e.Namespace, e.Action, e.Target, strconv.Itoa(e.Status))
			}
			return nil
		})
	})
	cmd.AddCommand(list)
	return cmd
}
