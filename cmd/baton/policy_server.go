package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/function"
	"github.com/batonflow/baton/policy"
)

// policyConfig is what `baton server` sets about namespaces' policies:
// the defaults of every namespace (see docs/policy.md).
type policyConfig struct {
	capabilities  string
	egressAllow   []string
	egressDeny    []string
	egressDefault string
	subflowDepth  int
	running       int
	historyEvents int
	inputBytes    string
	outputBytes   string
	scriptTimeout time.Duration
	exprSteps     int64
	exprBytes     string
	exprItems     int
	retention     string
	memoryBudget  string
	sweepInterval time.Duration
	self          []string // the server's own listen address, set by serve
}

func addPolicyFlags(cmd *cobra.Command) *policyConfig {
	cfg := new(policyConfig)
	f := cmd.Flags()
	f.StringVar(&cfg.capabilities, "allow-capabilities", "none",
		"capabilities every namespace has unless its policy says otherwise: a comma-separated list of "+
			strings.Join(policy.AllCapabilities, ", ")+", or all, or none")
	f.StringSliceVar(&cfg.egressAllow, "egress-allow", nil,
		"hosts, *.domains, IPs, CIDRs or keywords (loopback, private, link-local, metadata, baton) that calls may reach")
	f.StringSliceVar(&cfg.egressDeny, "egress-deny", nil, "hosts, *.domains, IPs, CIDRs or keywords that calls may not reach")
	f.StringVar(&cfg.egressDefault, "egress-default", "allow", "what calls to a destination no rule names get: allow or deny")
	f.IntVar(&cfg.subflowDepth, "max-subflow-depth", policy.DefaultSubflowDepth, "how deep run: workflow may nest")
	f.IntVar(&cfg.running, "max-running-invocations", policy.DefaultRunningInvocations, "invocations of one namespace running at once")
	f.IntVar(&cfg.historyEvents, "max-history-events", policy.DefaultHistoryEvents, "events in one invocation's history")
	f.StringVar(&cfg.inputBytes, "max-input-bytes", "4MiB", "size of an invocation's input, as JSON")
	f.StringVar(&cfg.outputBytes, "max-output-bytes", "4MiB", "size of an invocation's output, as JSON")
	f.DurationVar(&cfg.scriptTimeout, "script-timeout", policy.DefaultScriptTimeout, "run time of one run: script")
	f.Int64Var(&cfg.exprSteps, "max-expression-steps", policy.DefaultExpressionSteps, "steps of work of one jq expression evaluation")
	f.StringVar(&cfg.exprBytes, "max-expression-bytes", "16MiB", "longest string one jq expression evaluation may build")
	f.IntVar(&cfg.exprItems, "max-expression-items", policy.DefaultExpressionItems, "longest array or object one jq expression evaluation may build")
	f.StringVar(&cfg.retention, "retention", "30d", "how long finished invocations are kept (e.g. 30d, 12h)")
	f.StringVar(&cfg.memoryBudget, "function-memory-budget", "64GiB",
		"the most memory × instances that the deployed functions may add up to (0: no budget)")
	f.DurationVar(&cfg.sweepInterval, "retention-sweep-interval", policy.DefaultSweepInterval,
		"how often finished invocations past their retention are removed")
	return cfg
}

// server builds the server's policy defaults from the flags.
func (cfg *policyConfig) server() (*policy.Server, error) {
	caps, err := policy.ParseCapabilities(cfg.capabilities)
	if err != nil {
		return nil, fmt.Errorf("--allow-capabilities: %w", err)
	}
	if cfg.egressDefault != "allow" && cfg.egressDefault != "deny" {
		return nil, fmt.Errorf("--egress-default %q: use allow or deny", cfg.egressDefault)
	}
	in, err := function.ParseBytes(cfg.inputBytes)
	if err != nil {
		return nil, fmt.Errorf("--max-input-bytes: %w", err)
	}
	out, err := function.ParseBytes(cfg.outputBytes)
	if err != nil {
		return nil, fmt.Errorf("--max-output-bytes: %w", err)
	}
	exprBytes, err := function.ParseBytes(cfg.exprBytes)
	if err != nil {
		return nil, fmt.Errorf("--max-expression-bytes: %w", err)
	}
	budget, err := function.ParseBytes(cfg.memoryBudget)
	if err != nil {
		return nil, fmt.Errorf("--function-memory-budget: %w", err)
	}
	retention, err := policy.ParseDuration(cfg.retention)
	if err != nil {
		return nil, fmt.Errorf("--retention: %w", err)
	}
	scriptTimeout, ret := policy.Duration(cfg.scriptTimeout), policy.Duration(retention)
	defaults := policy.Policy{
		Capabilities: caps,
		Egress:       policy.Egress{Allow: cfg.egressAllow, Deny: cfg.egressDeny, Default: cfg.egressDefault},
		Limits: policy.Limits{
			SubflowDepth: &cfg.subflowDepth, RunningInvocations: &cfg.running, HistoryEvents: &cfg.historyEvents,
			InputBytes: &in, OutputBytes: &out, ScriptTimeout: &scriptTimeout,
			ExpressionSteps: &cfg.exprSteps, ExpressionBytes: &exprBytes, ExpressionItems: &cfg.exprItems,
		},
		Retention: &ret,
	}
	if err := defaults.Validate(); err != nil {
		return nil, fmt.Errorf("server policy flags: %w", err)
	}
	s := &policy.Server{Defaults: defaults, Self: cfg.self, FunctionMemoryBudget: budget}
	if _, err := s.Resolve("", nil); err != nil {
		return nil, fmt.Errorf("server policy flags: %w", err)
	}
	return s, nil
}

// functionSecurity is how the function layer of a server answers to the
// namespaces' policies; the zero value (a local command) checks nothing.
type functionSecurity struct {
	// admit decides each call by the policy in its context.
	admit func(ctx context.Context, spec *function.Spec) error
	// transport sends http functions' requests under egress rules.
	transport http.RoundTripper
}

func newFunctionSecurity(svc *policy.Service) (functionSecurity, error) {
	fallback, err := svc.Server().Resolve("default", nil)
	if err != nil {
		return functionSecurity{}, err
	}
	return functionSecurity{
		admit: func(ctx context.Context, spec *function.Spec) error {
			eff := policy.FromContext(ctx)
			if eff == nil {
				// A call on no namespace's behalf (none today) answers
				// to the server's defaults.
				eff = fallback
			}
			if p := eff.CheckFunction(spec); p != nil {
				return p
			}
			return nil
		},
		transport: &policy.Transport{
			New:      func() *http.Transport { return http.DefaultTransport.(*http.Transport).Clone() },
			Fallback: fallback.Egress,
		},
	}, nil
}

// defaultPolicyConfig is the flags' defaults, for servers started without
// the command line (tests).
func defaultPolicyConfig() *policyConfig {
	cmd := &cobra.Command{}
	return addPolicyFlags(cmd)
}

// startRetentionSweeper removes finished invocations past their
// namespace's retention until ctx is done; the returned function waits for
// the sweeper to stop.
func startRetentionSweeper(ctx context.Context, eng *localEngine, interval time.Duration, logger *slog.Logger) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	sw := &policy.Sweeper{Policies: eng.policies, Store: eng.store, Logger: logger, Interval: interval}
	go func() {
		defer close(done)
		sw.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}
