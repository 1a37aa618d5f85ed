package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/client"
)

func newTriggerCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trigger",
		Short: "Manage the triggers that start workflows on a server",
		Long: "Trigger creates, lists and deletes triggers: an HTTP hook (POST /v1/hooks/PATH starts\n" +
			"the workflow with the body as input), a cron schedule, a NATS subject or an MQTT topic\n" +
			"(each message starts the workflow with the message as input).",
		Args: cobra.NoArgs,
	}
	r := addRemote(cmd)
	cmd.AddCommand(newTriggerCreateCommand(r), newTriggerListCommand(r), newTriggerDeleteCommand(r))
	return cmd
}

func newTriggerCreateCommand(r *remote) *cobra.Command {
	var workflow, hook, cron, subject, topic string
	cmd := &cobra.Command{
		Use:   "create NAME --workflow NS/NAME (--http PATH | --cron EXPR | --nats SUBJECT | --mqtt TOPIC)",
		Short: "Create a trigger",
		Example: "  baton trigger create orders --workflow shop/fulfil --http orders\n" +
			"  baton trigger create nightly --workflow ops/backup --cron '0 3 * * *'\n" +
			"  baton trigger create sensors --workflow iot/ingest --mqtt 'sensors/+/temperature'",
		Args: cobra.ExactArgs(1),
	}
	out := addOutputFlag(cmd)
	cmd.Flags().StringVar(&workflow, "workflow", "", "the workflow to start, NAMESPACE/NAME or NAME")
	cmd.Flags().StringVar(&hook, "http", "", "hook path: POST /v1/hooks/PATH starts the workflow")
	cmd.Flags().StringVar(&cron, "cron", "", "cron expression (five fields, UTC)")
	cmd.Flags().StringVar(&subject, "nats", "", "NATS subject (the server needs --events)")
	cmd.Flags().StringVar(&topic, "mqtt", "", "MQTT topic filter (the server needs --mqtt)")
	r.run(cmd, out, func(ctx context.Context, c *client.Client, args []string) error {
		if workflow == "" {
			return errors.New("--workflow is required")
		}
		namespace, name, err := parseWorkflowName(workflow)
		if err != nil {
			return err
		}
		t := api.Trigger{Name: args[0], Namespace: namespace, Workflow: name}
		given := 0
		for kind, spec := range map[string]string{"http": hook, "cron": cron, "nats": subject, "mqtt": topic} {
			if cmd.Flags().Changed(kind) {
				given++
				t.Kind, t.Spec = kind, spec
			}
		}
		if given != 1 {
			return errors.New("give exactly one of --http, --cron, --nats and --mqtt")
		}
		created, err := c.CreateTrigger(ctx, t)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), created, func(w io.Writer) error {
			fmt.Fprintf(w, "trigger %s created\n", created.Name)
			if created.Kind == "http" {
				fmt.Fprintf(w, "POST %s/v1/hooks/%s starts %s/%s\n", c.BaseURL(), created.Spec, created.Namespace, created.Workflow)
			}
			return nil
		})
	})
	return cmd
}

func newTriggerListCommand(r *remote) *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List triggers", Args: cobra.NoArgs}
	out := addOutputFlag(cmd)
	r.run(cmd, out, func(ctx context.Context, c *client.Client, args []string) error {
		items, err := c.ListTriggers(ctx)
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), api.TriggerList{Items: items}, func(w io.Writer) error {
			row(w, "NAME", "KIND", "SPEC", "WORKFLOW", "NEXT RUN", "LAST INVOCATION")
			for _, t := range items {
				next := "-"
				if t.NextRun != nil {
					next = formatTime(*t.NextRun)
				}
				last := t.LastInvocation
				if last == "" {
					last = "-"
				}
				row(w, t.Name, t.Kind, t.Spec, t.Namespace+"/"+t.Workflow, next, last)
			}
			return nil
		})
	})
	return cmd
}

func newTriggerDeleteCommand(r *remote) *cobra.Command {
	cmd := &cobra.Command{Use: "delete NAME", Short: "Delete a trigger", Args: cobra.ExactArgs(1)}
	r.run(cmd, nil, func(ctx context.Context, c *client.Client, args []string) error {
		if err := c.DeleteTrigger(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "trigger %s deleted\n", args[0])
		return nil
	})
	return cmd
}
