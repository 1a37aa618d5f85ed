package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/dsl/fission"
	"github.com/batonflow/baton/engine"
	"github.com/batonflow/baton/policy"
	"github.com/batonflow/baton/qos"
	"github.com/batonflow/baton/secret"
	"github.com/batonflow/baton/telemetry"
)

// dataEnv overrides the default data directory.
const dataEnv = "BATON_DATA"

// databaseFile is the SQLite database inside the data directory.
const databaseFile = "baton.db"

func addDataFlag(cmd *cobra.Command) *string {
	dir := new(string)
	cmd.Flags().StringVar(dir, "data", "",
		"data directory holding "+databaseFile+" (default $"+dataEnv+", else $XDG_DATA_HOME/baton, else ~/.local/share/baton)")
	return dir
}

// dataDir resolves the data directory: the flag, then $BATON_DATA, then the
// XDG data directory. Baton's database is data, not configuration, so it
// follows XDG_DATA_HOME rather than os.UserConfigDir.
func dataDir(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if env := os.Getenv(dataEnv); env != "" {
		return env, nil
	}
	if xdg := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(xdg) {
		return filepath.Join(xdg, "baton"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no data directory: set --data or $%s (%w)", dataEnv, err)
	}
	return filepath.Join(home, ".local", "share", "baton"), nil
}

// engineConfig is what the commands that run an engine (server, run) let
// users set beyond the data directory.
type engineConfig struct {
	// fissionRouter is the Fission router that fission://NS/NAME calls of
	// Fission Workflows documents go to.
	fissionRouter string
	// secretKey seals the secret store (see secretKeyFlag).
	secretKey string
	// events is the NATS URL of the shared event bus; empty keeps events
	// within this process.
	events string
	// eventsConsumer names this server's durable consumer of the stream.
	eventsConsumer string
	// mqtt is the broker that mqtt triggers subscribe to.
	mqtt string
	// prewarm selects the keep-alive policy and prewarming.
	prewarm prewarmConfig
	// containerRuntime is the --container-runtime flag (see containerRuntime).
	containerRuntime string
	// policy holds a server's namespace policy defaults; nil (baton run)
	// allows every capability (see policy.Unrestricted).
	policy *policyConfig
	// cluster is how a server on PostgreSQL shares the work.
	cluster clusterConfig
	// qos is how a server schedules starts and calls (qos.go); the zero
	// value (baton run) schedules none.
	qos qosConfig
}

// addEventFlags adds the event bus flags of `baton server`.
func addEventFlags(cmd *cobra.Command, cfg *engineConfig) {
	cmd.Flags().StringVar(&cfg.events, "events", "",
		"NATS URL of the event bus shared by several servers (JetStream), e.g. nats://127.0.0.1:4222; default: in-process")
	cmd.Flags().StringVar(&cfg.eventsConsumer, "events-consumer", "",
		"durable consumer name of this server on the event stream (default derived from the host and the database path)")
	cmd.Flags().StringVar(&cfg.mqtt, "mqtt", "", "MQTT broker for mqtt triggers, e.g. tcp://127.0.0.1:1883")
}

func addEngineFlags(cmd *cobra.Command) *engineConfig {
	cfg := new(engineConfig)
	cmd.Flags().StringVar(&cfg.fissionRouter, "fission-router", "",
		"URL of the Fission router for fission://NS/NAME calls (default "+fission.DefaultRouter+")")
	addSecretKeyFlag(cmd, &cfg.secretKey)
	addPrewarmFlags(cmd, &cfg.prewarm)
	addContainerRuntimeFlag(cmd, &cfg.containerRuntime)
	return cfg
}

// options turns the configuration into engine options.
func (cfg engineConfig) options(logger *slog.Logger) (engine.Options, error) {
	router := cfg.fissionRouter
	if router == "" {
		router = fission.DefaultRouter
	}
	fissionCalls, err := engine.NewFissionExecutor(router, nil, logger)
	if err != nil {
		return engine.Options{}, fmt.Errorf("--fission-router: %w", err)
	}
	containers, err := containerRuntime(cfg.containerRuntime)
	if err != nil {
		return engine.Options{}, err
	}
	return engine.Options{
		Logger:           logger,
		Executors:        map[string]engine.Executor{engine.FunctionFission: fissionCalls},
		ContainerRuntime: containers,
	}, nil
}

// localEngine is an engine over a store: a data directory's SQLite
// database or a shared PostgreSQL database.
type localEngine struct {
	*engine.Engine
	store *openedStore
	// path names the store in logs and errors.
	path    string
	secrets *secret.Store
	// functions runs the functions deployed in the store; the engine's
	// "*" executor calls them.
	functions *functionHost
	bus       *eventBus
	// policies are the namespaces' policies of a server; nil otherwise.
	policies *policy.Service
	// tracer exports the engine's spans; nil when the OTEL_* variables
	// ask for no tracing.
	tracer *telemetry.Tracer
	// qos is the server's QoS scheduler; nil when it runs without.
	qos *qos.Scheduler
}

// Ready adds the function layer's boot-time preload to the engine's
// readiness, so that a load balancer or Kubernetes sends a restarted
// server its first calls once their modules are loaded.
func (e *localEngine) Ready(ctx context.Context) error {
	if err := e.Engine.Ready(ctx); err != nil {
		return err
	}
	return e.functions.warming(time.Now())
}

// openLocalEngine opens the store of t for command (locking a data
// directory first) and starts an engine on it, which resumes every
// invocation left running.
func openLocalEngine(ctx context.Context, t storeTarget, command string, logger *slog.Logger, cfg engineConfig) (*localEngine, error) {
	opts, err := cfg.options(logger)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, t, command, logger)
	if err != nil {
		return nil, err
	}
	opts.Store = st
	if err := cfg.cluster.configure(&opts, st); err != nil {
		return nil, errors.Join(err, st.Close())
	}
	secrets, err := openSecrets(st, cfg.secretKey)
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	opts.Secrets = secrets
	var (
		policies *policy.Service
		fsec     functionSecurity
	)
	if cfg.policy != nil {
		server, err := cfg.policy.server()
		if err != nil {
			return nil, errors.Join(err, st.Close())
		}
		policies = policy.NewService(server, st)
		opts.Policies = policies
		if fsec, err = newFunctionSecurity(policies); err != nil {
			return nil, errors.Join(err, st.Close())
		}
	}
	fns, err := openFunctionHost(ctx, st, secrets, logger, cfg.prewarm, fsec)
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	opts.Executors["*"] = engine.FunctionExecutor(fns.Manager)
	bus, err := openEventBus(ctx, st, st.desc, cfg, logger)
	if err != nil {
		return nil, errors.Join(err, fns.Close(), st.Close())
	}
	bus.configure(&opts)
	if fns.prewarm != nil {
		fns.prewarm.observe(&opts)
		fns.prewarm.start(ctx)
	}
	opts.Metrics = fns.metrics
	tracer, err := telemetry.FromEnv(ctx, engine.Version, logger)
	if err != nil {
		return nil, errors.Join(err, bus.Close(), fns.Close(), st.Close())
	}
	opts.Tracer = tracer
	scheduler, err := cfg.qos.configure(&opts, fns)
	if err != nil {
		return nil, errors.Join(err, bus.Close(), fns.Close(), st.Close(), tracer.Shutdown(ctx))
	}
	eng, err := engine.New(opts)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("creating the engine: %w", err), bus.Close(), fns.Close(), st.Close(), tracer.Shutdown(ctx))
	}
	if err := eng.Start(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("starting the engine: %w", err), eng.Close(), bus.Close(), fns.Close(), st.Close(), tracer.Shutdown(ctx))
	}
	if err := bus.start(); err != nil {
		return nil, errors.Join(err, eng.Close(), bus.Close(), fns.Close(), st.Close(), tracer.Shutdown(ctx))
	}
	return &localEngine{Engine: eng, store: st, path: st.desc, secrets: secrets, functions: fns, bus: bus, policies: policies, tracer: tracer, qos: scheduler}, nil
}

// tracerFlushTimeout bounds how long closing waits for the last spans to
// reach the collector.
const tracerFlushTimeout = 5 * time.Second

// Close stops the engine, leaving running invocations to the next start,
// then the event bus and the functions, flushes the store and sends the
// spans not yet exported.
func (l *localEngine) Close() error {
	err := errors.Join(l.Engine.Close(), l.bus.Close(), l.functions.Close(), l.store.Close())
	ctx, cancel := context.WithTimeout(context.Background(), tracerFlushTimeout)
	defer cancel()
	return errors.Join(err, l.tracer.Shutdown(ctx))
}
