package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// consoleCommand is one `$ ...` line of a ```console block with the
// output the document shows under it.
type consoleCommand struct {
	where   string // file:line
	command string
	output  []string
}

// consoleBlocks reads the ```console blocks of a Markdown file, one slice
// of commands per block. The documents are read when the test runs, so
// whatever anyone changes in them is checked.
func consoleBlocks(t *testing.T, path string) [][]consoleCommand {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks [][]consoleCommand
	var block []consoleCommand
	in := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case !in && strings.TrimSpace(line) == "```console":
			in, block = true, nil
		case in && strings.HasPrefix(strings.TrimSpace(line), "```"):
			in = false
			blocks = append(blocks, block)
		case in && strings.HasPrefix(line, "$ "):
			block = append(block, consoleCommand{where: fmt.Sprintf("%s:%d", path, n), command: strings.TrimPrefix(line, "$ ")})
		case in && len(block) > 0:
			last := &block[len(block)-1]
			if strings.HasSuffix(last.command, "\\") && len(last.output) == 0 {
				last.command = strings.TrimSuffix(last.command, "\\") + " " + strings.TrimSpace(line)
				continue
			}
			last.output = append(last.output, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// notChecked lists the console commands that the docs test does not run,
// by their first words, with the reason. Every other command must be one
// the test runs: a new kind of command in the docs fails the test until it
// is run or listed here.
var notChecked = []struct{ prefix, reason string }{
	{"baton server", "starts a long-running server; TestServer covers its first line"},
	{"baton workflow ", "needs a server with state; TestWorkflowCommands checks these tables against a fixed-clock fake"},
	{"baton invoke ", "needs a server; ids and times differ per run (TestInvokeAndInvocationCommands)"},
	{"ID=$(baton invoke", "needs a server"},
	{"baton invocation ", "needs a server; ids and times differ per run (TestInvokeAndInvocationCommands, TestWatchRetryRerunCommands)"},
	{"baton event ", "needs a server; event ids differ per run (TestWatchRetryRerunCommands)"},
	{"baton secret ", "needs a server or a data directory prepared with secrets (secret_test.go)"},
	{"baton trigger ", "needs a server (trigger tests)"},
	{"baton fn ", "builds a wasm module or needs a deployed function; durations differ per run (fn_test.go)"},
	{"baton bench", "measures timings, which differ per run"},
	{"baton sim", "prints tables of a long simulation (sim tests)"},
	{"baton version", "prints the build's commit and Go version"},
	{"baton console", "needs a server; the login link is random (TestConsoleBrowser opens one)"},
	{"curl ", "talks to a running server (api tests)"},
	{"baton token ", "needs a server; tokens are random (TestSecurityAttacks, TestTokenCommands)"},
	{"baton audit ", "needs a server; times differ per run (TestSecurityAttacks)"},
	{"export ", "sets a variable for the commands that follow, which need a server"},
	{"baton policy ", "needs a server (TestSandboxAttacks sets and reads policies through it)"},
	{"baton validate examples/greet.yaml --server", "asks the server of the tour which functions are deployed (TestValidateWarnsAboutUndeployedFunctions)"},
	{"baton run examples/greet.yaml", "calls the hello function deployed by the tour's fn deploy step; TestReadmeGreetExample runs it against a stand-in"},
	{"baton run ../shared/spec/fission-workflows/examples/misc/sleepalot.wf.yaml", "sleeps for 50 seconds by design; engine/fission_test.go runs it scaled down"},
}

// docFixtures are the files the docs' examples use without shipping them;
// the test writes them beside the examples. (brokenDoc and faultDoc are
// the CLI tests' documents.)
var docFixtures = map[string]string{
	"broken.yaml": brokenDoc,
	"fault.yaml":  faultDoc,
}

// docAbsent are the files the docs name to show what happens when a file
// does not exist.
var docAbsent = map[string]bool{"missing.yaml": true}

// TestDocsConsoleBlocks runs the commands of the README's and the docs'
// console blocks whose output is deterministic (validate, run, convert,
// and the shell lines that prepare them) and compares what the binary
// prints, stdout and stderr together, with what the document shows. A
// command shown without output must succeed; `echo $?` checks the exit
// status of the command before it; `…` in a shown output stands for any
// text. Commands that need a server or print times are listed in
// notChecked with the reason.
func TestDocsConsoleBlocks(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := append([]string{filepath.Join(root, "README.md")}, docs...)
	bin := filepath.Dir(batonBinary)
	ran := 0
	for _, file := range files {
		rel, _ := filepath.Rel(root, file)
		for i, block := range consoleBlocks(t, file) {
			t.Run(fmt.Sprintf("%s#%d", rel, i+1), func(t *testing.T) {
				ran += runConsoleBlock(t, root, bin, block)
			})
		}
	}
	t.Logf("ran %d console commands of the docs", ran)
	if ran < 5 {
		t.Fatalf("only %d console commands were run; the docs' examples went unchecked", ran)
	}
}

// runConsoleBlock runs one block's checkable commands in a fresh working
// directory laid out like the repository (examples/, ../shared) and
// returns how many it ran.
func runConsoleBlock(t *testing.T, root, bin string, block []consoleCommand) int {
	tmp := t.TempDir()
	work := filepath.Join(tmp, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, link := range []struct{ from, to string }{
		{filepath.Join(work, "examples"), filepath.Join(root, "examples")},
		{filepath.Join(tmp, "shared"), filepath.Join(root, "..", "shared")},
	} {
		if err := os.Symlink(link.to, link.from); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range docFixtures {
		writeFile(t, work, name, content)
	}
	scratch := filepath.Join(tmp, "scratch") + "/"
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		t.Fatal(err)
	}
	// The docs write to /tmp; the test to its own directory.
	local := func(s string) string { return strings.ReplaceAll(s, "/tmp/", scratch) }

	ran := 0
	lastCode := -1
	for _, c := range block {
		command := strings.TrimSpace(commentRE.ReplaceAllString(c.command, ""))
		command = strings.ReplaceAll(command, "go run ./cmd/baton", "baton")
		if command == "echo $?" {
			if lastCode >= 0 && strings.Join(c.output, "\n") != fmt.Sprint(lastCode) {
				t.Errorf("%s: the command before exited %d; the document shows %q", c.where, lastCode, c.output)
			}
			lastCode = -1
			continue
		}
		lastCode = -1
		if reason := skipReason(command); reason != "" {
			t.Logf("%s: not run (%s): %s", c.where, reason, c.command)
			continue
		}
		if !checked(command) {
			t.Errorf("%s: console command %q is neither run by this test nor listed in notChecked with a reason", c.where, c.command)
			continue
		}
		if missing := missingFile(work, local(command)); missing != "" && !strings.HasPrefix(command, "printf ") {
			t.Logf("%s: not run (illustrative file %s is not shipped): %s", c.where, missing, c.command)
			continue
		}
		cmd := exec.Command("sh", "-c", local(command))
		cmd.Dir = work
		cmd.Env = []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + tmp, "TZ=UTC",
			"BATON_DATA=" + filepath.Join(tmp, "data")}
		out, err := cmd.CombinedOutput()
		code := 0
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			code = exitErr.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", c.where, err)
		}
		ran++
		lastCode = code
		got := strings.TrimRight(string(out), "\n")
		want := local(strings.TrimRight(strings.Join(c.output, "\n"), "\n"))
		if len(c.output) == 0 {
			if code != 0 {
				t.Errorf("%s: %s\nexits %d, printing:\n%s", c.where, c.command, code, got)
			}
			continue
		}
		if !outputMatches(want, got) {
			t.Errorf("%s: %s\nprints (exit %d):\n%s\nthe document shows:\n%s", c.where, c.command, code, got, want)
		}
	}
	return ran
}

// commentRE is a shell comment after a command, which the docs use to
// explain it.
var commentRE = regexp.MustCompile(`\s+#\s.*$`)

// checkedCommands are the commands whose output depends only on their
// input: the test runs them.
var checkedCommands = []string{"baton validate ", "baton run ", "baton convert ", "printf "}

func checked(command string) bool {
	for _, p := range checkedCommands {
		if strings.HasPrefix(command, p) {
			return true
		}
	}
	return false
}

func skipReason(command string) string {
	for _, s := range notChecked {
		if strings.HasPrefix(command, s.prefix) {
			return s.reason
		}
	}
	return ""
}

// missingFile returns the first workflow or input file the command names
// that does not exist in dir (the docs' placeholders such as order.yaml).
func missingFile(dir, command string) string {
	for _, word := range strings.Fields(command) {
		word = strings.Trim(strings.TrimPrefix(word, "@"), `'"`)
		if strings.ContainsAny(word, "*>") || !(strings.HasSuffix(word, ".yaml") || strings.HasSuffix(word, ".json")) || docAbsent[word] {
			continue
		}
		path := word
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, word)
		}
		if _, err := os.Stat(path); err != nil {
			return word
		}
	}
	return ""
}

// outputMatches compares line by line, ignoring trailing spaces; `…`
// matches any text within a line.
func outputMatches(want, got string) bool {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	if len(w) != len(g) {
		return false
	}
	for i := range w {
		wl, gl := strings.TrimRight(w[i], " "), strings.TrimRight(g[i], " ")
		if !strings.Contains(wl, "…") {
			if wl != gl {
				return false
			}
			continue
		}
		parts := strings.Split(wl, "…")
		for j := range parts {
			parts[j] = regexp.QuoteMeta(parts[j])
		}
		if !regexp.MustCompile("^" + strings.Join(parts, ".*") + "$").MatchString(gl) {
			return false
		}
	}
	return true
}

// The docs test must not pass by comparing nothing: its parser finds the
// commands and outputs of a block.
func TestConsoleBlocksParse(t *testing.T) {
	doc := writeFile(t, t.TempDir(), "doc.md", "text\n\n```console\n$ baton validate a.yaml \\\n  b.yaml\n$ baton run x.yaml\n{\"a\":1}\nline 2\n```\n\n```sh\n$ not console\n```\n")
	blocks := consoleBlocks(t, doc)
	if len(blocks) != 1 || len(blocks[0]) != 2 {
		t.Fatalf("blocks %+v", blocks)
	}
	if c := blocks[0][0]; c.command != "baton validate a.yaml  b.yaml" || len(c.output) != 0 {
		t.Fatalf("continued command %+v", c)
	}
	if c := blocks[0][1]; c.command != "baton run x.yaml" || !bytes.Equal([]byte(strings.Join(c.output, "\n")), []byte("{\"a\":1}\nline 2")) {
		t.Fatalf("command with output %+v", c)
	}
	if !outputMatches(`{"cold": …, "x": 1}`, `{"cold": true, "x": 1}`) || outputMatches("a", "b") || outputMatches("a", "a\nb") {
		t.Fatal("outputMatches")
	}
}
