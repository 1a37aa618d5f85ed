package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonflow/baton/secret"
)

const secretDoc = `document: {dsl: '1.0.0', namespace: default, name: uses-secret, version: '0.1.0'}
use:
  secrets: [token, creds]
do:
  - look:
      set:
        tokenLength: '${ $secrets.token | length }'
        user: '${ $secrets.creds.username }'
`

func TestSecretCommandsLocal(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	env := []string{"BATON_DATA=" + data}
	doc := writeFile(t, dir, "uses-secret.yaml", secretDoc)

	baton(t, nil, "secret", "set", "token", "--value", "tok-1234567", "--data", data).expect(t, 0, "secret token set\n", "")
	baton(t, nil, "secret", "set", "creds", "--from-literal", "username=alice", "--from-literal", "password=pw-0815", "--data", data).
		expect(t, 0, "secret creds set\n", "")
	info, err := os.Stat(filepath.Join(data, secret.KeyFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the generated key file: %v, %v", info, err)
	}
	list := baton(t, nil, "secret", "list", "--data", data, "-o", "json")
	if list.code != 0 || !strings.Contains(list.stdout, `"name": "creds"`) || !strings.Contains(list.stdout, `"name": "token"`) ||
		strings.Contains(list.stdout, "tok-1234567") || strings.Contains(list.stdout, "pw-0815") {
		t.Fatalf("secret list: %+v", list)
	}

	baton(t, env, "run", doc).expect(t, 0, `{"tokenLength":11,"user":"alice"}`+"\n", "")

	// A replaced value is what the next invocation sees.
	baton(t, nil, "secret", "set", "token", "--value", "short", "--data", data).expect(t, 0, "secret token set\n", "")
	baton(t, env, "run", doc).expect(t, 0, `{"tokenLength":5,"user":"alice"}`+"\n", "")

	baton(t, nil, "secret", "delete", "token", "--data", data).expect(t, 0, "secret token deleted\n", "")
	res := baton(t, env, "run", doc)
	if res.code != 1 || !strings.Contains(res.stderr, "token") || !strings.Contains(res.stderr, "not set") {
		t.Fatalf("run with a deleted secret: %+v", res)
	}
	res = baton(t, nil, "secret", "delete", "token", "--data", data)
	if res.code != 1 || !strings.Contains(res.stderr, "not found") {
		t.Fatalf("deleting a missing secret: %+v", res)
	}
	for _, args := range [][]string{
		{"secret", "set", "x", "--data", data},
		{"secret", "set", "x", "--value", "a", "--from-literal", "k=v", "--data", data},
		{"secret", "set", "bad name", "--value", "a", "--data", data},
		{"secret", "set", "x", "--from-literal", "novalue", "--data", data},
	} {
		if res := baton(t, nil, args...); res.code != 1 {
			t.Errorf("baton %v: exit %d, want 1\n%s", args, res.code, res.stderr)
		}
	}
	// Another key cannot read the secrets sealed with the generated one.
	res = baton(t, []string{"BATON_DATA=" + data, "BATON_SECRET_KEY=" + strings.Repeat("ab", 32)}, "run", doc)
	if res.code != 1 || !strings.Contains(res.stderr, "decrypted") {
		t.Fatalf("run with another key: %+v", res)
	}
}
