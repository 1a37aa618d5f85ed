package policy_test

import (
	"encoding/json"
	"testing"

	"github.com/batonflow/baton/policy"
)

// FuzzDecode: any input either fails to decode with an error or yields a
// document that resolves and survives a JSON round trip unchanged.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"capabilities":{"shell":true},"limits":{"subflowDepth":3,"scriptTimeout":"1s"},"retention":"30d"}`,
		`{"limits":{"expressionSteps":1000,"expressionBytes":65536,"expressionItems":100}}`,
		`{"egress":{"allow":["*.example.com","10.0.0.0/8","metadata"],"deny":["fe80::/10"],"default":"deny"}}`,
		`{"egress":{"allow":["*"]}}`,
		`{"retention":"-1d"}`,
	} {
		f.Add([]byte(seed))
	}
	server := &policy.Server{Self: []string{"127.0.0.1:8780"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := policy.Decode(data)
		if err != nil {
			return
		}
		if _, err := server.Resolve("ns", p); err != nil {
			t.Fatalf("a valid document does not resolve: %v", err)
		}
		once, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		again, err := policy.Decode(once)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", once, err)
		}
		twice, _ := json.Marshal(again)
		if string(once) != string(twice) {
			t.Fatalf("round trip changed the document:\n%s\n%s", once, twice)
		}
	})
}
