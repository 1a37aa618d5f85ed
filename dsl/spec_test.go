package dsl

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// specDir returns the Serverless Workflow specification checkout that sits
// next to the repository.
func specDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
	spec := filepath.Join(dir, "..", "shared", "spec", "serverless-workflow")
	if _, err := os.Stat(spec); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the specification is required under CI: %v", err)
		}
		t.Skipf("specification not available: %v", err)
	}
	return spec
}

func TestSpecExamplesParse(t *testing.T) {
	dir := filepath.Join(specDir(t), "examples")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no examples in %s", dir)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			w, err := Parse(filepath.Base(f), src)
			if err != nil {
				t.Fatalf("unexpected errors:\n%v", err)
			}
			if len(w.Do) == 0 || w.Document.Name == "" {
				t.Fatalf("incomplete model: %+v", w)
			}
		})
	}
}

// ctkWorkflow is a workflow definition embedded in a conformance feature.
type ctkWorkflow struct {
	name string
	line int
	src  []byte
}

// ctkWorkflows extracts the `"""yaml` blocks that follow "Given a workflow
// with definition:" in a Gherkin feature file.
func ctkWorkflows(t *testing.T, file string) []ctkWorkflow {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var (
		out      []ctkWorkflow
		scenario string
		want     bool
		in       bool
		indent   string
		block    bytes.Buffer
		start    int
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		trimmed := strings.TrimSpace(text)
		switch {
		case in && trimmed == `"""`:
			out = append(out, ctkWorkflow{name: fmt.Sprintf("%s:%d %s", filepath.Base(file), start, scenario), line: start, src: bytes.Clone(block.Bytes())})
			in, want = false, false
			block.Reset()
		case in:
			block.WriteString(strings.TrimPrefix(text, indent))
			block.WriteByte('\n')
		case strings.HasPrefix(trimmed, "Scenario:"):
			scenario = strings.TrimSpace(strings.TrimPrefix(trimmed, "Scenario:"))
		case strings.HasPrefix(trimmed, "Given a workflow with definition:"):
			want = true
		case want && trimmed == `"""yaml`:
			in = true
			indent = text[:len(text)-len(strings.TrimLeft(text, " \t"))]
			start = line + 1
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCTKWorkflowsParse(t *testing.T) {
	features, err := filepath.Glob(filepath.Join(specDir(t), "ctk", "features", "*.feature"))
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, f := range features {
		for _, wf := range ctkWorkflows(t, f) {
			total++
			t.Run(wf.name, func(t *testing.T) {
				w, err := Parse(wf.name, wf.src)
				if err != nil {
					t.Fatalf("unexpected errors:\n%v\n--- source:\n%s", err, wf.src)
				}
				if len(w.Do) == 0 {
					t.Fatal("no tasks")
				}
			})
		}
	}
	// The features hold 21 definitions today; far fewer means the
	// extraction broke, not that the CTK shrank.
	if total < 15 {
		t.Fatalf("extracted only %d workflow definitions", total)
	}
}
