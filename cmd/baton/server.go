package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/api"
	"github.com/batonflow/baton/bench"
	"github.com/batonflow/baton/console"
)

const (
	defaultAddr = "127.0.0.1:8780"
	// shutdownGrace bounds how long in-flight requests may finish after a
	// signal; waits end at once, so this only covers ordinary requests.
	shutdownGrace = 10 * time.Second
)

func newServerCommand() *cobra.Command {
	var addr, logLevel, logFormat, cpuProfile string
	var drainTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve the REST API and run the engine",
		Long: "Server binds its port, opens its store (the embedded database of the data directory,\n" +
			"or PostgreSQL with --store), resumes every invocation left running, and serves the\n" +
			"REST API. Once it listens it prints\n" +
			"`listening on http://ADDR` on stdout. SIGINT or SIGTERM drain it: new starts are\n" +
			"refused (503), calls in flight may return for --drain-timeout and are recorded, then\n" +
			"it stops; a second signal stops it at once. Running invocations resume on the next start.\n\n" +
			"Every flag may also come from the environment as BATON_ and its name in capitals with\n" +
			"underscores (--drain-timeout: BATON_DRAIN_TIMEOUT; lists comma-separated); the command\n" +
			"line wins.",
		Example: "  baton server\n  baton server --addr 0.0.0.0:8780 --data /var/lib/baton --log-level debug\n" +
			"  BATON_SECRET_KEY=... baton server --store postgres://baton@db:5432/baton",
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, args []string) error {
			return setFlagsFromEnv(cmd.Flags(), os.LookupEnv)
		},
	}
	data := addDataFlag(cmd)
	storeFlag := addStoreFlag(cmd)
	engineCfg := addEngineFlags(cmd)
	addPreloadFlags(cmd, &engineCfg.prewarm.preload)
	addEventFlags(cmd, engineCfg)
	engineCfg.policy = addPolicyFlags(cmd)
	security := addSecurityFlags(cmd)
	addClusterFlags(cmd, engineCfg)
	addQoSFlags(cmd, engineCfg)
	cmd.Flags().StringVar(&addr, "addr", defaultAddr, "address to listen on (port 0 picks a free port)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug (includes access logs), info, warn or error")
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "log format on stderr: text or json")
	cmd.Flags().DurationVar(&drainTimeout, "drain-timeout", defaultDrainTimeout,
		"on SIGTERM or SIGINT, how long to let calls in flight return before stopping (0 stops at once)")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a pprof CPU profile of the server, from its start until it stops, to this file")
	cmd.RunE = runE(func(cmd *cobra.Command, args []string) (err error) {
		logger, err := newLogger(cmd.ErrOrStderr(), logLevel, logFormat)
		if err != nil {
			return err
		}
		if cpuProfile != "" {
			stop, err := bench.StartCPUProfile(cpuProfile)
			if err != nil {
				return err
			}
			defer func() { err = errors.Join(err, stop()) }()
		}
		return serve(cmd.Context(), serveRequest{addr: addr, dataDir: *data, store: *storeFlag, drainTimeout: drainTimeout, engine: *engineCfg, security: *security, logger: logger, stdout: cmd.OutOrStdout()})
	})
	return cmd
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	lvl, err := parseLogLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}

type serveRequest struct {
	addr, dataDir string
	// store is the --store flag: "", sqlite or a PostgreSQL URL.
	store string
	// drainTimeout bounds how long a stop waits for calls in flight.
	drainTimeout time.Duration
	engine       engineConfig
	security     securityConfig
	logger       *slog.Logger
	stdout       io.Writer
}

// serve runs until ctx is done (a signal), then drains requests, stops the
// engine and closes the store.
func serve(ctx context.Context, req serveRequest) (err error) {
	target, err := resolveStore(req.store, req.dataDir)
	if err != nil {
		return err
	}
	if err := req.security.checkExposure(req.addr); err != nil {
		return err
	}
	// The port comes first: a server that cannot serve must not resume
	// (and so run) anything, and the egress policy must know the address
	// calls must not reach the API through.
	listener, err := net.Listen("tcp", req.addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", req.addr, err)
	}
	defer listener.Close() // a no-op once served
	scheme := "http://"
	if req.security.tlsCert != "" {
		scheme = "https://"
	}
	url := scheme + listener.Addr().String()
	target.serving = url
	if req.engine.policy == nil {
		req.engine.policy = defaultPolicyConfig()
	}
	pcfg := *req.engine.policy
	pcfg.self = []string{listener.Addr().String()}
	req.engine.policy = &pcfg
	eng, err := openLocalEngine(ctx, target, "server", req.logger, req.engine)
	if err != nil {
		listener.Close()
		return err
	}
	defer func() {
		if closeErr := eng.Close(); closeErr != nil {
			err = errors.Join(err, fmt.Errorf("closing %s: %w", eng.path, closeErr))
		}
	}()

	eng.functions.preloadDeployed(ctx)

	// The admin credential lives in the data directory; a server on
	// PostgreSQL without one keeps it in the user's default directory,
	// where the CLI looks.
	credDir := eng.store.dir
	if credDir == "" {
		if credDir, err = dataDir(""); err != nil {
			return err
		}
		if err := os.MkdirAll(credDir, 0o700); err != nil {
			return fmt.Errorf("creating %s for the admin credential: %w", credDir, err)
		}
	}
	secured, err := req.security.setup(ctx, credDir, eng.store, req.logger)
	if err != nil {
		return err
	}
	if secured.tls != nil {
		listener = tls.NewListener(listener, secured.tls)
	}
	shuttingDown, beginShutdown := context.WithCancel(context.Background())
	defer beginShutdown()
	stopSweeping := startRetentionSweeper(shuttingDown, eng, pcfg.sweepInterval, req.logger)
	defer stopSweeping()
	if eng.qos != nil {
		eng.functions.metrics.MustRegister(eng.qos)
	}
	eng.functions.metrics.MustRegister(newRecoveryCollector(eng.RecoveryStatus))
	if _, clustered := eng.ClusterStatus(); clustered {
		eng.functions.metrics.MustRegister(newClusterCollector(eng.ClusterStatus))
	}
	consoleOpts := []console.Option{console.WithLogger(req.logger), console.WithFunctions(eng.functions), console.WithRedrive(true)}
	if pw := eng.functions.prewarm; pw != nil {
		consoleOpts = append(consoleOpts, console.WithPredictor(pw.planner))
	}
	web, err := console.New(eng, secured.sessions, secured.authn, consoleOpts...)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: api.NewHandler(eng, append([]api.Option{
			api.WithConsole(web),
			api.WithLogger(req.logger),
			api.WithShutdown(shuttingDown),
			api.WithSecrets(eng.secrets),
			api.WithFunctions(eng.functions),
			api.WithMetrics(eng.functions.metricsHandler()),
			api.WithPolicies(eng.policies),
		}, secured.options...)...),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(req.logger.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(beginShutdown)

	req.logger.Info("baton server started", "url", url, "database", eng.path)
	fmt.Fprintf(req.stdout, "listening on %s\n", url)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(listener) }()

	select {
	case err := <-served:
		return fmt.Errorf("serving on %s: %w", url, err)
	case <-ctx.Done():
	}
	// A replica first hands its partitions over while its API still
	// serves (starts go to the new owners), then drains what is left.
	eng.leaveCluster(req.logger, req.engine.cluster.grace)
	drainServer(eng, req.drainTimeout, req.logger)
	req.logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		req.logger.Warn("requests still running at shutdown were cut off", "error", err)
		_ = srv.Close()
	}
	<-served
	req.logger.Info("stopped")
	return nil
}
