package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/core"
	"github.com/batonflow/baton/problem"
)

// Output formats of -o.
const (
	formatTable = "table"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

// outputFlag is the -o flag of the remote commands.
type outputFlag struct{ format string }

func addOutputFlag(cmd *cobra.Command) *outputFlag {
	o := &outputFlag{}
	cmd.Flags().StringVarP(&o.format, "output", "o", formatTable, "output format: table, json or yaml")
	return o
}

func (o *outputFlag) validate() error {
	switch o.format {
	case formatTable, formatJSON, formatYAML:
		return nil
	}
	return fmt.Errorf("unknown output format %q: use table, json or yaml", o.format)
}

// print writes v as JSON or YAML, or calls table for the table format.
func (o *outputFlag) print(w io.Writer, v any, table func(w io.Writer) error) error {
	switch o.format {
	case formatJSON:
		return writeJSON(w, v)
	case formatYAML:
		return writeYAML(w, v)
	default:
		tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
		if err := table(tw); err != nil {
			return err
		}
		return tw.Flush()
	}
}

func writeJSON(w io.Writer, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding JSON: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// writeYAML renders v through its JSON form, so that YAML and JSON output
// use the same field names and order.
func writeYAML(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding YAML: %w", err)
	}
	var node yaml.Node
	if err := yaml.Unmarshal(data, &node); err != nil {
		return fmt.Errorf("encoding YAML: %w", err)
	}
	blockStyle(&node)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&node); err != nil {
		return fmt.Errorf("encoding YAML: %w", err)
	}
	return enc.Close()
}

// blockStyle drops the flow style and quoting that the nodes inherited from
// JSON; the encoder quotes again whatever needs it.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// row writes one tab-separated table row.
func row(w io.Writer, cells ...string) {
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.RFC3339)
}

func formatDuration(inv *api.Invocation) string {
	if inv.EndedAt == nil {
		return "-"
	}
	return inv.EndedAt.Sub(inv.StartedAt).Round(time.Millisecond).String()
}

// compactJSON renders data for a table cell.
func compactJSON(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(data)
}

func problemLine(p *problem.Problem) string {
	if p == nil {
		return "-"
	}
	return oneLine(p.Error())
}

func workflowName(ref api.WorkflowRef) string {
	return ref.Namespace + "/" + ref.Name
}

func workflowListTable(items []api.WorkflowSummary) func(io.Writer) error {
	return func(w io.Writer) error {
		row(w, "NAMESPACE", "NAME", "VERSION", "FORMAT", "CREATED")
		for _, wf := range items {
			row(w, wf.Namespace, wf.Name, wf.Version, wf.Format, formatTime(wf.CreatedAt))
		}
		return nil
	}
}

func workflowTable(wf *api.Workflow) func(io.Writer) error {
	return func(w io.Writer) error {
		row(w, "NAMESPACE", wf.Namespace)
		row(w, "NAME", wf.Name)
		row(w, "VERSION", wf.Version)
		row(w, "VERSIONS", strings.Join(wf.Versions, ", "))
		row(w, "FORMAT", wf.Format)
		row(w, "CREATED", formatTime(wf.CreatedAt))
		return nil
	}
}

func invocationTable(inv *api.Invocation) func(io.Writer) error {
	return func(w io.Writer) error {
		row(w, "ID", inv.ID)
		row(w, "WORKFLOW", workflowName(inv.Workflow))
		row(w, "VERSION", inv.Workflow.Version)
		row(w, "STATUS", string(inv.Status))
		row(w, "STARTED", formatTime(inv.StartedAt))
		ended := "-"
		if inv.EndedAt != nil {
			ended = formatTime(*inv.EndedAt)
		}
		row(w, "ENDED", ended)
		row(w, "DURATION", formatDuration(inv))
		row(w, "INPUT", compactJSON(inv.Input))
		if inv.Status == core.StatusCompleted {
			row(w, "OUTPUT", compactJSON(inv.Output))
		}
		if inv.Error != nil {
			row(w, "ERROR", problemLine(inv.Error))
		}
		if inv.Parent != "" {
			row(w, "PARENT", inv.Parent)
		}
		return nil
	}
}

func invocationListTable(items []api.Invocation) func(io.Writer) error {
	return func(w io.Writer) error {
		row(w, "ID", "WORKFLOW", "VERSION", "STATUS", "STARTED", "DURATION")
		for i := range items {
			inv := &items[i]
			row(w, inv.ID, workflowName(inv.Workflow), inv.Workflow.Version, string(inv.Status),
				formatTime(inv.StartedAt), formatDuration(inv))
		}
		return nil
	}
}

func historyTable(events []core.Event) func(io.Writer) error {
	return func(w io.Writer) error {
		row(w, "SEQ", "TIME", "TYPE", "TASK", "ATTEMPT", "DETAIL")
		for i := range events {
			ev := &events[i]
			task, attempt := ev.Task, ""
			if task == "" {
				task = "-"
			}
			if ev.Attempt > 0 {
				attempt = strconv.Itoa(ev.Attempt)
			} else {
				attempt = "-"
			}
			row(w, strconv.FormatInt(ev.Seq, 10), formatTime(ev.Time), string(ev.Type), task, attempt,
				truncate(eventDetail(ev), maxDetailWidth))
		}
		return nil
	}
}

// eventDetail is the one fact of an event worth a table cell.
func eventDetail(ev *core.Event) string {
	switch {
	case ev.Error != nil:
		return problemLine(ev.Error)
	case ev.Timer != "" && !ev.FireAt.IsZero():
		return ev.Timer + " at " + formatTime(ev.FireAt)
	case ev.Timer != "":
		return ev.Timer
	case ev.Type == core.InvocationStarted:
		return "input " + compactJSON(ev.Input)
	case ev.Type == core.TaskCompleted, ev.Type == core.InvocationCompleted:
		return "output " + compactJSON(ev.Output)
	}
	return ""
}

// maxDetailWidth keeps a history table readable when events carry large
// data; -o json shows everything.
const maxDetailWidth = 100

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
