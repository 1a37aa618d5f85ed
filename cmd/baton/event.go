package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/batonflow/baton/client"
)

func newEventCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "event",
		Aliases: []string{"events"},
		Short:   "Send CloudEvents to a server's event log",
		Args:    cobra.NoArgs,
	}
	r := addRemote(cmd)
	cmd.AddCommand(newEventSendCommand(r))
	return cmd
}

func newEventSendCommand(r *remote) *cobra.Command {
	var typ, source, subject, id, data string
	cmd := &cobra.Command{
		Use:   "send --type TYPE [--data JSON]",
		Short: "Send one CloudEvent (POST /v1/events)",
		Long: "Send ingests one CloudEvent into the server's durable event log: `listen` tasks waiting\n" +
			"for it go on, and workflows started by such events (schedule.on, triggers) start. It\n" +
			"prints the event's id, source and position in the log. Sending the same --source and\n" +
			"--id twice logs it once.",
		Example: "  baton event send --type com.example.order.paid --data '{\"order\": 42}'\n" +
			"  baton event send --type com.example.order.paid --source shop --id pay-42 --data @paid.json",
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&typ, "type", "", "the event's type (required)")
	cmd.Flags().StringVar(&source, "source", "baton-cli", "the event's source")
	cmd.Flags().StringVar(&subject, "subject", "", "the event's subject")
	cmd.Flags().StringVar(&id, "id", "", "the event's id (default a new UUID)")
	cmd.Flags().StringVar(&data, "data", "", "the event's data: JSON, or @FILE to read it from a file (@- for stdin)")
	out := addOutputFlag(cmd)
	r.run(cmd, out, func(ctx context.Context, c *client.Client, args []string) error {
		if typ == "" {
			return errors.New("--type is required: the CloudEvent's type, e.g. com.example.order.paid")
		}
		if id == "" {
			u, err := uuid.NewRandom()
			if err != nil {
				return fmt.Errorf("event id: %w", err)
			}
			id = u.String()
		}
		ev := map[string]any{
			"specversion": "1.0",
			"id":          id,
			"source":      source,
			"type":        typ,
			"time":        time.Now().UTC().Format(time.RFC3339Nano),
		}
		if subject != "" {
			ev["subject"] = subject
		}
		if cmd.Flags().Changed("data") {
			raw, err := readInput(data)
			if err != nil {
				return err
			}
			var v any
			if raw != nil {
				if err := json.Unmarshal(raw, &v); err != nil {
					return fmt.Errorf("--data: %w", err)
				}
			}
			ev["datacontenttype"] = "application/json"
			ev["data"] = v
		}
		accepted, err := c.PostEvents(ctx, []map[string]any{ev})
		if err != nil {
			return err
		}
		return out.print(cmd.OutOrStdout(), accepted, func(w io.Writer) error {
			row(w, "ID", "SOURCE", "SEQ", "DUPLICATE")
			for _, a := range accepted.Items {
				row(w, a.ID, a.Source, fmt.Sprint(a.Seq), fmt.Sprint(a.Duplicate))
			}
			return nil
		})
	})
	return cmd
}
