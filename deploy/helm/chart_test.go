package helm_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"

	"github.com/batonflow/baton/deploy/image"
	"github.com/batonflow/baton/deploy/internal/batonbin"
)

// serverFlags are the flags `baton server --help` lists, with the type
// pflag names (empty for booleans), and apiRoutes the API's paths: what the
// chart must agree with.
var (
	serverFlags map[string]string
	apiRoutes   map[string]bool
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "baton-chart-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code, err := setup(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func setup(dir string) (int, error) {
	bin, err := batonbin.Static(dir, runtime.GOOS)
	if err != nil {
		return 0, err
	}
	help, err := exec.Command(bin, "server", "--help").Output()
	if err != nil {
		return 0, fmt.Errorf("baton server --help: %w", err)
	}
	serverFlags = parseFlags(string(help))
	if len(serverFlags) < 10 {
		return 0, fmt.Errorf("baton server --help lists %d flags:\n%s", len(serverFlags), help)
	}
	spec, err := os.ReadFile("../../api/openapi.json")
	if err != nil {
		return 0, err
	}
	var doc struct {
		Paths map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(spec, &doc); err != nil {
		return 0, fmt.Errorf("api/openapi.json: %w", err)
	}
	apiRoutes = map[string]bool{}
	for p := range doc.Paths {
		apiRoutes[p] = true
	}
	return 0, nil
}

var flagLine = regexp.MustCompile(`^\s+(?:-\w, )?--([a-z0-9-]+)(?: (\w+))?\s`)

func parseFlags(help string) map[string]string {
	flags := map[string]string{}
	for _, line := range strings.Split(help, "\n") {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			flags[m[1]] = m[2]
		}
	}
	return flags
}

// rendered is one render's manifests, decoded.
type rendered struct {
	deployment      *appsv1.Deployment
	service         *corev1.Service
	pdb             *policyv1.PodDisruptionBudget
	pvc             *corev1.PersistentVolumeClaim
	secrets         map[string]*corev1.Secret
	serviceAccount  *corev1.ServiceAccount
	networkPolicy   *networkingv1.NetworkPolicy
	serviceMonitor  *serviceMonitor
	notes           string
	manifestsByKind map[string]int
}

// serviceMonitor is the part of the Prometheus Operator's type the chart
// writes; decoding strictly into it fails on anything else.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
			Scheme        string `json:"scheme,omitempty"`
			Authorization struct {
				Type        string                   `json:"type"`
				Credentials corev1.SecretKeySelector `json:"credentials"`
			} `json:"authorization"`
		} `json:"endpoints"`
	} `json:"spec"`
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load("baton")
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	return c
}

// render renders the chart as `helm install baton-test --namespace ops`
// would, with values given as YAML.
func render(t *testing.T, valuesYAML string) (*rendered, error) {
	t.Helper()
	c := loadChart(t)
	vals, err := common.ReadValues([]byte(valuesYAML))
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	top, err := chartutil.ToRenderValuesWithSchemaValidation(c, vals,
		common.ReleaseOptions{Name: "baton-test", Namespace: "ops", Revision: 1, IsInstall: true},
		common.DefaultCapabilities, false)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(c, top)
	if err != nil {
		return nil, err
	}
	r := &rendered{secrets: map[string]*corev1.Secret{}, manifestsByKind: map[string]int{}}
	for name, text := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			r.notes = text
			continue
		}
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(text, "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			r.decode(t, name, []byte(doc))
		}
	}
	return r, nil
}

// decode decodes one manifest strictly into its Kubernetes type: a field
// the type does not have fails the test.
func (r *rendered) decode(t *testing.T, file string, doc []byte) {
	t.Helper()
	var meta metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		t.Fatalf("%s: %v\n%s", file, err, doc)
	}
	var into any
	switch meta.APIVersion + " " + meta.Kind {
	case "apps/v1 Deployment":
		r.deployment = &appsv1.Deployment{}
		into = r.deployment
	case "v1 Service":
		r.service = &corev1.Service{}
		into = r.service
	case "policy/v1 PodDisruptionBudget":
		r.pdb = &policyv1.PodDisruptionBudget{}
		into = r.pdb
	case "v1 PersistentVolumeClaim":
		r.pvc = &corev1.PersistentVolumeClaim{}
		into = r.pvc
	case "v1 ServiceAccount":
		r.serviceAccount = &corev1.ServiceAccount{}
		into = r.serviceAccount
	case "networking.k8s.io/v1 NetworkPolicy":
		r.networkPolicy = &networkingv1.NetworkPolicy{}
		into = r.networkPolicy
	case "monitoring.coreos.com/v1 ServiceMonitor":
		r.serviceMonitor = &serviceMonitor{}
		into = r.serviceMonitor
	case "v1 Secret":
		s := &corev1.Secret{}
		into = s
		defer func() { r.secrets[s.Name] = s }()
	default:
		t.Fatalf("%s: unexpected %s %s", file, meta.APIVersion, meta.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, into); err != nil {
		t.Fatalf("%s: %s %s does not decode strictly: %v\n%s", file, meta.APIVersion, meta.Kind, err, doc)
	}
	r.manifestsByKind[meta.Kind]++
}

const clusterValues = `
mode: cluster
replicaCount: 3
postgres:
  dsn: postgres://baton:pw@db:5432/baton?sslmode=require
secretKey:
  value: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
`

const clusterFullValues = `
mode: cluster
replicaCount: 5
image: {repository: registry.example/baton, tag: "1.2.3"}
postgres: {existingSecret: baton-db, key: url}
secretKey: {existingSecret: baton-keys, key: seal}
server:
  drainTimeoutSeconds: 45
  allowedHosts: [baton.example.com]
  env: {BATON_RETENTION: 7d, BATON_EGRESS_DEFAULT: deny, BATON_PREWARM: false, BATON_SCRIPT_TIMEOUT: 2m}
  extraArgs: [--max-running-invocations, "20000"]
terminationGracePeriodSeconds: 90
tls: {existingSecret: baton-tls, clientCA: true}
auth:
  oidc: {issuer: "https://id.example", audience: baton, grantsClaim: grants}
  allowedOrigins: [https://console.example]
metrics:
  serviceMonitor: {enabled: true, labels: {release: prom}, tokenSecret: {name: baton-metrics}}
networkPolicy:
  enabled: true
  ingressFrom: [{namespaceSelector: {matchLabels: {team: ops}}}]
  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}}]}]
topologySpreadConstraints:
  - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app.kubernetes.io/name: baton}}}
`

const singleValues = `
mode: single
persistence: {size: 20Gi, storageClass: fast}
`

const singleExistingValues = `
mode: single
replicaCount: 4
persistence: {existingClaim: baton-data}
secretKey: {existingSecret: baton-keys}
server: {insecure: false}
`

func TestChartClusterMode(t *testing.T) {
	r, err := render(t, clusterValues)
	if err != nil {
		t.Fatal(err)
	}
	d := r.deployment
	checkServer(t, r)
	if *d.Spec.Replicas != 3 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType ||
		d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("replicas %d, strategy %+v: want 3 rolled one at a time, none unavailable", *d.Spec.Replicas, d.Spec.Strategy)
	}
	env := envOf(t, d)
	store := env["BATON_STORE"]
	if store.ValueFrom == nil || store.ValueFrom.SecretKeyRef == nil {
		t.Fatalf("BATON_STORE does not come from a Secret: %+v", store)
	}
	if s := r.secrets[store.ValueFrom.SecretKeyRef.Name]; s == nil || !strings.HasPrefix(s.StringData[store.ValueFrom.SecretKeyRef.Key], "postgres://") {
		t.Errorf("BATON_STORE names secret %+v, which the chart did not make with the URL", store.ValueFrom.SecretKeyRef)
	}
	key := env["BATON_SECRET_KEY"]
	if key.ValueFrom == nil || key.ValueFrom.SecretKeyRef == nil || r.secrets[key.ValueFrom.SecretKeyRef.Name] == nil {
		t.Errorf("BATON_SECRET_KEY does not come from the chart's Secret: %+v", key)
	}
	if env["BATON_INSECURE"].Value != "true" {
		t.Error("without TLS the chart must say BATON_INSECURE, or the server refuses a non-loopback address")
	}
	if r.pdb == nil || r.pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Fatalf("PodDisruptionBudget %+v, want maxUnavailable 1", r.pdb)
	}
	if !selects(r.pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("the PodDisruptionBudget's selector %v misses the pods %v", r.pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
	if r.pvc != nil {
		t.Error("cluster mode keeps its state in PostgreSQL, not in a PersistentVolumeClaim")
	}
	if vol := volume(d, "data"); vol == nil || vol.EmptyDir == nil {
		t.Errorf("cluster mode's data volume is %+v, want an emptyDir", vol)
	}
	if r.serviceMonitor != nil || r.networkPolicy != nil {
		t.Error("ServiceMonitor and NetworkPolicy are off by default")
	}
}

func TestChartClusterModeEverything(t *testing.T) {
	r, err := render(t, clusterFullValues)
	if err != nil {
		t.Fatal(err)
	}
	d := r.deployment
	checkServer(t, r)
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "registry.example/baton:1.2.3" {
		t.Errorf("image %q", c.Image)
	}
	env := envOf(t, d)
	for name, want := range map[string]string{
		"BATON_DRAIN_TIMEOUT": "45s", "BATON_RETENTION": "7d", "BATON_EGRESS_DEFAULT": "deny", "BATON_PREWARM": "false",
		"BATON_TLS_CERT": "/etc/baton/tls/tls.crt", "BATON_TLS_KEY": "/etc/baton/tls/tls.key", "BATON_TLS_CLIENT_CA": "/etc/baton/tls/ca.crt",
		"BATON_OIDC_ISSUER": "https://id.example", "BATON_OIDC_AUDIENCE": "baton", "BATON_OIDC_GRANTS_CLAIM": "grants",
		"BATON_ALLOWED_ORIGINS": "https://console.example",
	} {
		if env[name].Value != want {
			t.Errorf("%s = %q, want %q", name, env[name].Value, want)
		}
	}
	if _, ok := env["BATON_INSECURE"]; ok {
		t.Error("with TLS the server must not be told --insecure")
	}
	if !slices.Contains(strings.Split(env["BATON_ALLOWED_HOSTS"].Value, ","), "baton.example.com") ||
		!slices.Contains(strings.Split(env["BATON_ALLOWED_HOSTS"].Value, ","), "baton-test.ops.svc") {
		t.Errorf("BATON_ALLOWED_HOSTS = %q, want the Service's names and baton.example.com", env["BATON_ALLOWED_HOSTS"].Value)
	}
	for _, ref := range []struct{ name, secret, key string }{{"BATON_STORE", "baton-db", "url"}, {"BATON_SECRET_KEY", "baton-keys", "seal"}} {
		e := env[ref.name]
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != ref.secret || e.ValueFrom.SecretKeyRef.Key != ref.key {
			t.Errorf("%s = %+v, want secret %s key %s", ref.name, e, ref.secret, ref.key)
		}
	}
	if len(r.secrets) != 0 {
		t.Errorf("with existing Secrets the chart made its own: %v", r.secrets)
	}
	if c.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS || c.LivenessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS {
		t.Error("with TLS the probes must speak HTTPS")
	}
	if vol := volume(d, "tls"); vol == nil || vol.Secret == nil || vol.Secret.SecretName != "baton-tls" {
		t.Errorf("tls volume %+v", vol)
	}
	sm := r.serviceMonitor
	if sm == nil || len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor %+v", sm)
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Port != r.service.Spec.Ports[0].Name || !apiRoutes[ep.Path] || ep.Scheme != "https" ||
		ep.Authorization.Credentials.Name != "baton-metrics" || sm.Labels["release"] != "prom" {
		t.Errorf("ServiceMonitor endpoint %+v labels %v", ep, sm.Labels)
	}
	if !selects(sm.Spec.Selector.MatchLabels, r.service.Labels) {
		t.Errorf("the ServiceMonitor's selector %v misses the Service %v", sm.Spec.Selector.MatchLabels, r.service.Labels)
	}
	np := r.networkPolicy
	if np == nil || len(np.Spec.Ingress) != 1 || np.Spec.Ingress[0].Ports[0].Port.String() != "http" ||
		len(np.Spec.Ingress[0].From) != 2 || len(np.Spec.Egress) != 1 || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Fatalf("NetworkPolicy %+v", np)
	}
	if !selects(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) || !selects(np.Spec.Ingress[0].From[0].PodSelector.MatchLabels, d.Spec.Template.Labels) {
		t.Error("the NetworkPolicy must select the pods and let them reach each other")
	}
	if len(d.Spec.Template.Spec.TopologySpreadConstraints) != 1 {
		t.Error("topologySpreadConstraints were dropped")
	}
}

func TestChartSingleMode(t *testing.T) {
	for name, values := range map[string]string{"new volume": singleValues, "existing claim": singleExistingValues} {
		t.Run(name, func(t *testing.T) {
			r, err := render(t, values)
			if err != nil {
				t.Fatal(err)
			}
			d := r.deployment
			checkServer(t, r)
			if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
				t.Errorf("replicas %d, strategy %s: one SQLite server, the old one gone before the new starts", *d.Spec.Replicas, d.Spec.Strategy.Type)
			}
			env := envOf(t, d)
			if _, ok := env["BATON_STORE"]; ok {
				t.Error("single mode runs on the volume's SQLite database, not BATON_STORE")
			}
			if r.pdb != nil {
				t.Error("a PodDisruptionBudget for one replica blocks node drains")
			}
			vol := volume(d, "data")
			if vol == nil || vol.PersistentVolumeClaim == nil {
				t.Fatalf("data volume %+v, want the claim", vol)
			}
			switch name {
			case "new volume":
				if r.pvc == nil || r.pvc.Name != vol.PersistentVolumeClaim.ClaimName || r.pvc.Spec.Resources.Requests.Storage().String() != "20Gi" ||
					*r.pvc.Spec.StorageClassName != "fast" || r.pvc.Annotations["helm.sh/resource-policy"] != "keep" {
					t.Errorf("PersistentVolumeClaim %+v for volume %+v", r.pvc, vol)
				}
				if _, ok := env["BATON_SECRET_KEY"]; ok {
					t.Error("without a key the server generates one in its volume")
				}
			case "existing claim":
				if r.pvc != nil || vol.PersistentVolumeClaim.ClaimName != "baton-data" {
					t.Errorf("existing claim: rendered %+v, mounts %q", r.pvc, vol.PersistentVolumeClaim.ClaimName)
				}
				if env["BATON_SECRET_KEY"].ValueFrom == nil {
					t.Error("BATON_SECRET_KEY not taken from the existing Secret")
				}
				if _, ok := env["BATON_INSECURE"]; ok {
					t.Error("server.insecure: false still says BATON_INSECURE")
				}
			}
		})
	}
}

// Values that cannot run fail the render with a message saying what to set.
func TestChartRefusesBrokenValues(t *testing.T) {
	for _, tc := range []struct{ name, values, want string }{
		{"cluster without PostgreSQL", "mode: cluster\nsecretKey: {value: k}\n", "postgres.existingSecret"},
		{"cluster without secret key", "mode: cluster\npostgres: {dsn: postgres://db/baton}\n", "secretKey.existingSecret"},
		{"unknown mode", "mode: swarm\n", `mode "swarm"`},
		{"grace shorter than the drain", clusterValues + "server: {drainTimeoutSeconds: 120}\n", "terminationGracePeriodSeconds 60 must exceed the drain (135 s"},
		{"env not a flag variable", singleValues + "server: {env: {RETENTION: 7d}}\n", "server.env RETENTION"},
		{"ServiceMonitor without token", singleValues + "metrics: {serviceMonitor: {enabled: true}}\n", "tokenSecret.name"},
		{"OIDC without audience", singleValues + "auth: {oidc: {issuer: https://id.example}}\n", "auth.oidc.audience"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, tc.values)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("render: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// checkServer checks what every render shares: the container runs the
// image's `baton server` as configured only through flags it has, on the
// port the probes, the Service and the image agree on, locked down.
func checkServer(t *testing.T, r *rendered) {
	t.Helper()
	d := r.deployment
	if d == nil || r.service == nil || r.serviceAccount == nil {
		t.Fatalf("missing Deployment, Service or ServiceAccount: %v", r.manifestsByKind)
	}
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	if len(c.Command) != 0 {
		t.Errorf("command %v overrides the image's entrypoint (baton server)", c.Command)
	}
	for i, arg := range c.Args {
		if name, ok := strings.CutPrefix(arg, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			if _, known := serverFlags[name]; !known {
				t.Errorf("args[%d] %s: baton server has no such flag", i, arg)
			}
		}
	}
	env := envOf(t, d)
	for name, e := range env {
		flag, ok := strings.CutPrefix(name, "BATON_")
		if !ok {
			t.Errorf("env %s is not a BATON_<FLAG> variable", name)
			continue
		}
		flag = strings.ToLower(strings.ReplaceAll(flag, "_", "-"))
		typ, known := serverFlags[flag]
		if !known {
			t.Errorf("env %s: baton server has no flag --%s", name, flag)
			continue
		}
		if e.ValueFrom != nil {
			continue
		}
		switch typ {
		case "duration":
			if _, err := time.ParseDuration(e.Value); err != nil {
				t.Errorf("env %s=%q: --%s takes a duration: %v", name, e.Value, flag, err)
			}
		case "":
			if e.Value != "true" && e.Value != "false" {
				t.Errorf("env %s=%q: --%s is a boolean", name, e.Value, flag)
			}
		}
	}
	if env["BATON_DATA"].Value != image.DataDir {
		t.Errorf("BATON_DATA = %q, want the image's data directory %s", env["BATON_DATA"].Value, image.DataDir)
	}
	port := c.Ports[0]
	if len(c.Ports) != 1 || port.Name != "http" || port.ContainerPort != image.Port {
		t.Errorf("ports %+v, want http on %d", c.Ports, image.Port)
	}
	if addr := env["BATON_ADDR"].Value; addr != fmt.Sprintf("0.0.0.0:%d", port.ContainerPort) {
		t.Errorf("BATON_ADDR = %q, not the container port %d", addr, port.ContainerPort)
	}
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
		path  string
	}{{"startup", c.StartupProbe, "/healthz"}, {"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no %s probe", p.kind)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != port.Name || !apiRoutes[p.path] {
			t.Errorf("%s probe %s on port %s: want %s (an API route) on %s", p.kind, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path, port.Name)
		}
	}
	drain, err := time.ParseDuration(env["BATON_DRAIN_TIMEOUT"].Value)
	if err != nil {
		t.Fatalf("BATON_DRAIN_TIMEOUT: %v", err)
	}
	if handover := env["BATON_HANDOVER_GRACE"].Value; handover != "" {
		h, _ := time.ParseDuration(handover)
		drain += h
	}
	if grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second; grace <= drain {
		t.Errorf("terminationGracePeriodSeconds %v does not outlast the drain %v", grace, drain)
	}

	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != image.UID ||
		psc.FSGroup == nil || *psc.FSGroup != image.GID {
		t.Errorf("pod securityContext %+v: want non-root user %d, fsGroup %d", psc, image.UID, image.GID)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext %+v: want no privilege escalation, read-only root, all capabilities dropped", sc)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
		if volume(d, m.Name) == nil {
			t.Errorf("mount %s names no volume %s", m.MountPath, m.Name)
		}
	}
	if mounts[image.DataDir] == "" || mounts["/tmp"] == "" {
		t.Errorf("mounts %v: a read-only root needs volumes on %s and /tmp", mounts, image.DataDir)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want memory requests and limits", c.Resources)
	}
	if pod.ServiceAccountName != r.serviceAccount.Name || pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod must use the chart's service account without its API token (Baton does not call Kubernetes)")
	}

	svc := r.service
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != port.Name || !selects(svc.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("Service %+v does not reach the pods' %s port", svc.Spec, port.Name)
	}
	if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Error("the Deployment's selector misses its own pods")
	}
	if !strings.Contains(r.notes, "baton token create") {
		t.Errorf("NOTES do not say how to get a token:\n%s", r.notes)
	}
}

func envOf(t *testing.T, d *appsv1.Deployment) map[string]corev1.EnvVar {
	t.Helper()
	env := map[string]corev1.EnvVar{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("env %s given twice", e.Name)
		}
		env[e.Name] = e
	}
	return env
}

func volume(d *appsv1.Deployment, name string) *corev1.Volume {
	for i, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return &d.Spec.Template.Spec.Volumes[i]
		}
	}
	return nil
}

// selects reports whether a selector's labels all appear among labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// The chart's own files say what they are: no stray template outside
// templates/, the version the README and docs name.
func TestChartMetadata(t *testing.T) {
	c := loadChart(t)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Metadata.Name != "baton" || c.Metadata.APIVersion != chart.APIVersionV2 {
		t.Errorf("metadata %+v", c.Metadata)
	}
	engineGo, err := os.ReadFile(filepath.Join("..", "..", "engine", "engine.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(engineGo, []byte(fmt.Sprintf("Version = %q", c.Metadata.AppVersion))) {
		t.Errorf("appVersion %q is not engine.Version: the default image tag would not exist", c.Metadata.AppVersion)
	}
}
