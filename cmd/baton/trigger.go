package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/api"
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
	server := addServerFlag(cmd)
	cmd.AddCommand(newTriggerCreateCommand(server), newTriggerListCommand(server), newTriggerDeleteCommand(server))
	return cmd
}

func newTriggerCreateCommand(server *serverFlag) *cobra.Command {
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
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if err := out.validate(); err != nil {
			return err
		}
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
		c, err := server.client()
		if err != nil {
			return err
		}
		created, err := c.CreateTrigger(cmd.Context(), t)
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

func newTriggerListCommand(server *serverFlag) *cobra.Command {
	cmd := &cobra.Command{Use: "list", Short: "List triggers", Args: cobra.NoArgs}
	out := addOutputFlag(cmd)
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		if err := out.validate(); err != nil {
			return err
		}
		c, err := server.client()
		if err != nil {
			return err
		}
		items, err := c.ListTriggers(cmd.Context())
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

func newTriggerDeleteCommand(server *serverFlag) *cobra.Command {
	cmd := &cobra.Command{Use: "delete NAME", Short: "Delete a trigger", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) error {
		c, err := server.client()
		if err != nil {
			return err
		}
		if err := c.DeleteTrigger(cmd.Context(), args[0]); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "trigger %s deleted\n", args[0])
		return nil
	})
	return cmd
}
