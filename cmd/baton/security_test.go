package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// attack is one request an attacker would send.
type attack struct {
	method, path, body string
	header             map[string]string
}

func (s *server) send(t *testing.T, a attack) (int, string) {
	t.Helper()
	var body io.Reader
	if a.body != "" {
		body = strings.NewReader(a.body)
	}
	req, err := http.NewRequest(a.method, s.url+a.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range a.header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", a.method, a.path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}
}

func nsSecretDoc(namespace, secretName string) string {
	return `document:
  dsl: '1.0.0'
  namespace: ` + namespace + `
  name: reader
  version: '1.0.0'
use:
  secrets: [` + secretName + `]
do:
  - read:
      set:
        value: ${ $secrets.` + secretName + ` }
`
}

// createToken issues a token with the CLI as the local admin.
func createToken(t *testing.T, srv *server, namespace, role string) string {
	t.Helper()
	res := baton(t, srv.env(), "token", "create", "--namespace", namespace, "--role", role, "--name", namespace+"-"+role)
	if res.code != 0 || !strings.HasPrefix(res.stdout, "baton_") {
		t.Fatalf("token create: %+v", res)
	}
	return strings.TrimSpace(res.stdout)
}

// TestSecurityAttacks replays the attacks of the "secure by default" issue
// against a real server, next to a legitimate workload of two teams that
// must keep working.
func TestSecurityAttacks(t *testing.T) {
	data := t.TempDir()
	srv := startServer(t, data)
	defer srv.stop()

	// The legitimate workload: team-a keeps a secret and a workflow that
	// reads it; team-b has a secret of its own.
	adminA := createToken(t, srv, "team-a", "admin")
	devA := createToken(t, srv, "team-a", "developer")
	opA := createToken(t, srv, "team-a", "operator")
	viewerA := createToken(t, srv, "team-a", "viewer")
	devB := createToken(t, srv, "team-b", "developer")
	if code, body := srv.send(t, attack{"PUT", "/v1/secrets/apiKey?namespace=team-a", `{"value": "a-key-1234"}`, bearer(devA)}); code != 200 {
		t.Fatalf("team-a sets its secret: %d %s", code, body)
	}
	if code, body := srv.send(t, attack{"PUT", "/v1/secrets/bKey?namespace=team-b", `{"value": "b-key-5678"}`, bearer(devB)}); code != 200 {
		t.Fatalf("team-b sets its secret: %d %s", code, body)
	}
	if code, body := srv.send(t, attack{"POST", "/v1/workflows", nsSecretDoc("team-a", "apiKey"), bearer(devA)}); code != 201 {
		t.Fatalf("team-a applies its workflow: %d %s", code, body)
	}
	legit := func() {
		t.Helper()
		code, body := srv.send(t, attack{"POST", "/v1/workflows/team-a/reader/invocations?wait=30s", `{}`, bearer(opA)})
		if code != 200 || !strings.Contains(body, `"value":"a-key-1234"`) {
			t.Fatalf("team-a's own workflow reading its own secret: %d %s", code, body)
		}
	}
	legit()

	shell := `document: {dsl: '1.0.0', namespace: default, name: pwn, version: '1.0.0'}
do:
  - id:
      run:
        shell:
          command: id
`
	cases := []struct {
		name     string
		attack   attack
		wantCode int
	}{
		{"no credentials: apply a shell workflow", attack{"POST", "/v1/workflows", shell, map[string]string{"Content-Type": "application/yaml"}}, 401},
		{"no credentials: list invocations", attack{"GET", "/v1/invocations", "", nil}, 401},
		{"a wrong token", attack{"GET", "/v1/workflows", "", bearer("baton_0123456789abcdef_forged")}, 401},
		{"DNS rebinding Host", attack{"POST", "/v1/workflows", shell, map[string]string{
			"Host": "rebind.evil.example:8780", "Content-Type": "application/yaml", "Authorization": "Bearer " + srv.token}}, 403},
		{"text/plain cross-origin POST", attack{"POST", "/v1/workflows", shell, map[string]string{
			"Origin": "http://evil.example", "Content-Type": "text/plain"}}, 403},
		{"text/plain POST, even with a token", attack{"POST", "/v1/workflows/team-a/reader/invocations", "{}", map[string]string{
			"Content-Type": "text/plain", "Authorization": "Bearer " + opA}}, 415},
		{"cross-namespace: team-b lists team-a's secrets", attack{"GET", "/v1/secrets?namespace=team-a", "", bearer(devB)}, 403},
		{"cross-namespace: team-b applies into team-a", attack{"POST", "/v1/workflows", nsSecretDoc("team-a", "apiKey"), bearer(devB)}, 403},
		{"cross-namespace: team-b overwrites team-a's secret", attack{"PUT", "/v1/secrets/apiKey?namespace=team-a", `{"value": "stolen"}`, bearer(devB)}, 403},
		{"secret overwrite by an operator", attack{"PUT", "/v1/secrets/apiKey?namespace=team-a", `{"value": "stolen"}`, bearer(opA)}, 403},
		{"secret overwrite by a viewer", attack{"PUT", "/v1/secrets/apiKey?namespace=team-a", `{"value": "stolen"}`, bearer(viewerA)}, 403},
		{"a viewer starts an invocation", attack{"POST", "/v1/workflows/team-a/reader/invocations", "{}", bearer(viewerA)}, 403},
		{"a developer mints a token", attack{"POST", "/v1/tokens", `{"namespace": "team-a", "role": "admin"}`, bearer(devA)}, 403},
		{"a team admin mints a token for every namespace", attack{"POST", "/v1/tokens", `{"namespace": "*", "role": "admin"}`, bearer(adminA)}, 403},
		{"a team admin reads another team's audit", attack{"GET", "/v1/audit?namespace=team-b", "", bearer(adminA)}, 403},
	}
	for _, tc := range cases {
		code, body := srv.send(t, tc.attack)
		if code != tc.wantCode || !strings.Contains(body, `"status":`) {
			t.Errorf("%s: %d %s, want %d and a problem", tc.name, code, body, tc.wantCode)
		}
	}

	// A workflow of team-a naming team-b's secret reads nothing: applying
	// it is allowed, running it faults because team-a has no such secret.
	if code, body := srv.send(t, attack{"POST", "/v1/workflows", strings.Replace(nsSecretDoc("team-a", "bKey"), "name: reader", "name: thief", 1), bearer(devA)}); code != 201 {
		t.Fatalf("apply thief: %d %s", code, body)
	}
	code, body := srv.send(t, attack{"POST", "/v1/workflows/team-a/thief/invocations?wait=30s", `{}`, bearer(opA)})
	if strings.Contains(body, "b-key-5678") || !strings.Contains(body, "bKey") {
		t.Errorf("team-a's workflow reading team-b's secret: %d %s", code, body)
	}
	// Nobody reads a secret's value through the API.
	if code, body := srv.send(t, attack{"GET", "/v1/secrets?namespace=team-a", "", bearer(adminA)}); code != 200 || strings.Contains(body, "a-key-1234") || !strings.Contains(body, "apiKey") {
		t.Errorf("listing secrets: %d %s", code, body)
	}
	// Lists show only the caller's namespaces.
	if code, body := srv.send(t, attack{"GET", "/v1/workflows", "", bearer(devB)}); code != 200 || strings.Contains(body, "team-a") {
		t.Errorf("team-b lists workflows: %d %s", code, body)
	}
	if code, body := srv.send(t, attack{"GET", "/v1/invocations", "", bearer(devB)}); code != 200 || strings.Contains(body, "team-a") {
		t.Errorf("team-b lists invocations: %d %s", code, body)
	}

	legit()

	// The same through the CLI: team-b manages its own secrets, not team-a's.
	envB := []string{"BATON_SERVER=" + srv.url, "BATON_TOKEN=" + devB}
	baton(t, envB, "secret", "set", "cliKey", "--value", "from-the-cli", "-n", "team-b").expect(t, 0, "secret cliKey set\n", "")
	if res := baton(t, envB, "secret", "list", "-n", "team-b"); res.code != 0 || !strings.Contains(res.stdout, "cliKey") || strings.Contains(res.stdout, "from-the-cli") {
		t.Errorf("team-b lists its secrets: %+v", res)
	}
	if res := baton(t, envB, "secret", "delete", "apiKey", "-n", "team-a"); res.code != 1 || !strings.Contains(res.stderr, "developer role in namespace \"team-a\"") {
		t.Errorf("team-b deletes team-a's secret with the CLI: %+v", res)
	}

	// The audit log names who changed what; revoking a token ends it.
	res := baton(t, srv.env(), "audit", "list", "-o", "json")
	var page struct {
		Items []struct{ Subject, Namespace, Action, Target string }
	}
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &page) != nil {
		t.Fatalf("audit list: %+v", res)
	}
	var sawSecret, sawToken bool
	for _, e := range page.Items {
		sawSecret = sawSecret || (e.Action == "PUT /v1/secrets/{name}" && e.Namespace == "team-b" && strings.Contains(e.Subject, "team-b-developer"))
		sawToken = sawToken || (e.Action == "POST /v1/tokens" && e.Namespace == "team-a" && strings.Contains(e.Subject, "local admin"))
	}
	if !sawSecret || !sawToken {
		t.Errorf("audit entries lack the secret write or the token creation: %+v", page.Items)
	}
	res = baton(t, srv.env(), "token", "list", "-o", "json")
	var tokens struct{ Items []struct{ ID, Name string } }
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &tokens) != nil || strings.Contains(res.stdout, "baton_") {
		t.Fatalf("token list: %+v", res)
	}
	for _, tok := range tokens.Items {
		if tok.Name == "team-b-developer" {
			baton(t, srv.env(), "token", "revoke", tok.ID).expect(t, 0, "token "+tok.ID+" revoked\n", "")
		}
	}
	if code, _ := srv.send(t, attack{"GET", "/v1/workflows", "", bearer(devB)}); code != 401 {
		t.Errorf("a revoked token still works: %d", code)
	}

	// Data files are the owner's only.
	for _, name := range []string{"", databaseFile, databaseFile + "-wal", adminTokenFile} {
		info, err := os.Stat(filepath.Join(data, name))
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if name == "" {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s has mode %o, want %o", filepath.Join(data, name), info.Mode().Perm(), want)
		}
	}
}

// TestServerRefusesExposedPlainHTTP refuses a non-loopback address without
// TLS, in one line, unless --insecure.
func TestServerRefusesExposedPlainHTTP(t *testing.T) {
	res := baton(t, nil, "server", "--addr", "0.0.0.0:0", "--data", t.TempDir())
	if res.code == 0 || strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 || !strings.Contains(res.stderr, "--insecure") {
		t.Fatalf("0.0.0.0 without TLS: %+v", res)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and localhost and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "baton test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost", "baton.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestServerTLS serves HTTPS on a public address, with client
// certificates required: the CLI talks to it with --ca-cert, and the
// certificate's names pass the Host check.
func TestServerTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	data := t.TempDir()
	srv := startServerWith(t, data, "--addr", "0.0.0.0:0", "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", cert)
	defer srv.stop()
	if !strings.HasPrefix(srv.url, "https://") {
		t.Fatalf("url %s", srv.url)
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.url, "https://"))
	pool := x509.NewCertPool()
	pemData, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pemData)
	clientCert, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	get := func(certs []tls.Certificate, host string) (int, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs, ServerName: "localhost"}}}
		req, _ := http.NewRequest("GET", "https://127.0.0.1:"+port+"/v1/workflows", nil)
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+srv.token)
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if _, err := get(nil, "localhost"); err == nil {
		t.Error("a client without a certificate was served")
	}
	if code, err := get([]tls.Certificate{clientCert}, "baton.test:"+port); err != nil || code != 200 {
		t.Errorf("the certificate's own name: %d %v", code, err)
	}
	if code, err := get([]tls.Certificate{clientCert}, "other.test"); err != nil || code != 403 {
		t.Errorf("a name outside the certificate: %d %v", code, err)
	}
	// Without mutual TLS the CLI needs only --ca-cert.
	srv.stop()
	plain := startServerWith(t, data, "--addr", "0.0.0.0:0", "--tls-cert", cert, "--tls-key", key)
	defer plain.stop()
	_, port, _ = net.SplitHostPort(strings.TrimPrefix(plain.url, "https://"))
	env := []string{"BATON_SERVER=https://localhost:" + port, "BATON_TOKEN=" + plain.token}
	baton(t, env, "workflow", "list", "--ca-cert", cert).expect(t, 0, "NAMESPACE   NAME   VERSION   FORMAT   CREATED\n", "")
	if res := baton(t, env, "workflow", "list"); res.code == 0 {
		t.Errorf("an untrusted certificate was accepted: %+v", res)
	}
}
