package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/client"
)

func newPolicyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Show and set namespaces' policies: capabilities, egress, limits, retention",
		Long: "Policy shows and replaces a namespace's policy on a baton server: which capabilities\n" +
			"its workflows and functions may use, where their calls may connect, the limits that\n" +
			"bound them and how long finished invocations are kept. What a namespace's document\n" +
			"leaves out comes from the server's flags (see docs/policy.md).",
		Args: cobra.NoArgs,
	}
	r := addRemote(cmd)
	cmd.AddCommand(newPolicyGetCommand(r), newPolicySetCommand(r))
	return cmd
}

func newPolicyGetCommand(r *remote) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get NAMESPACE",
		Short: "Show the policy in force in a namespace",
		Long: "Get prints every setting in force in the namespace, marking with * those its own\n" +
			"document sets; -o json or -o yaml print the document and the policy in force.",
		Example: "  baton policy get team-a\n  baton policy get team-a -o yaml",
		Args:    cobra.ExactArgs(1),
	}
	out := addOutputFlag(cmd)
	r.run(cmd, out, func(ctx context.Context, c *client.Client, args []string) error {
		p, err := c.Policy(ctx, args[0])
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), p, func(w io.Writer) error { return policyTable(w, p) })
	})
	return cmd
}

// policyTable lists the settings in force, one a line.
func policyTable(w io.Writer, p *api.NamespacePolicy) error {
	eff, own := map[string]string{}, map[string]string{}
	if err := flatten(p.Effective, eff); err != nil {
		return err
	}
	if err := flatten(p.Policy, own); err != nil {
		return err
	}
	keys := make([]string, 0, len(eff))
	for k := range eff {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(w, "SETTING\tVALUE\t")
	for _, k := range keys {
		mark := ""
		if _, set := own[k]; set {
			mark = "*"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", k, eff[k], mark)
	}
	return nil
}

// flatten turns a document into dotted keys and printable values.
func flatten(v any, into map[string]string) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // byte counts print whole, not as 4.194304e+06
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return err
	}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, child := range t {
				key := k
				if prefix != "" {
					key = prefix + "." + k
				}
				walk(key, child)
			}
		case []any:
			parts := make([]string, len(t))
			for i, e := range t {
				parts[i] = fmt.Sprint(e)
			}
			into[prefix] = strings.Join(parts, ",")
		case nil:
		default:
			into[prefix] = fmt.Sprint(t)
		}
	}
	walk("", doc)
	return nil
}

func newPolicySetCommand(r *remote) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "set NAMESPACE -f POLICY.yaml",
		Short: "Replace a namespace's policy document",
		Long: "Set replaces the namespace's policy with the document in the file (YAML or JSON; - for\n" +
			"stdin). Settings the document leaves out come from the server's defaults.",
		Example: "  baton policy set team-a -f team-a-policy.yaml\n" +
			"  echo '{\"capabilities\":{\"shell\":true}}' | baton policy set team-a -f -",
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the policy document, YAML or JSON (- for stdin)")
	r.run(cmd, nil, func(ctx context.Context, c *client.Client, args []string) error {
		if file == "" {
			return fmt.Errorf("give the policy document with -f FILE")
		}
		var data []byte
		var err error
		if file == "-" {
			data, err = io.ReadAll(cmd.InOrStdin())
		} else {
			data, err = os.ReadFile(file)
		}
		if err != nil {
			return fmt.Errorf("reading the policy document: %w", err)
		}
		doc, err := policyJSON(data)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if _, err := c.SetPolicy(ctx, args[0], doc); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "policy of namespace %s set\n", args[0])
		return nil
	})
	return cmd
}

// policyJSON reads a YAML or JSON document as JSON.
func policyJSON(data []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		return trimmed, nil
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a YAML or JSON document: %w", err)
	}
	if doc == nil {
		doc = map[string]any{}
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, fmt.Errorf("a policy document is a mapping, got %T", doc)
	}
	return json.Marshal(doc)
}
