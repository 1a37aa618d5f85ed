package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/batonflow/baton/store"
)

func testTokens(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	ts, ok := s.(store.TokenStore)
	if !ok {
		t.Fatalf("%T does not implement store.TokenStore", s)
	}
	a := &store.Token{ID: p + "a", Name: "ci", Namespace: "team-a", Role: "operator", Hash: []byte{1, 2, 3},
		CreatedBy: "local", CreatedAt: at(0), ExpiresAt: at(time.Hour)}
	b := &store.Token{ID: p + "b", Name: "", Namespace: "*", Role: "admin", Hash: []byte{4}, CreatedBy: "token:x", CreatedAt: at(time.Second)}
	must(t, ts.PutToken(ctx, a), "PutToken a")
	must(t, ts.PutToken(ctx, b), "PutToken b")
	wantErr(t, ts.PutToken(ctx, &store.Token{ID: p + "a", Hash: []byte{9}}), store.ErrConflict, "PutToken a again")
	if ts.PutToken(ctx, &store.Token{ID: p + "c"}) == nil {
		t.Fatal("PutToken without a hash succeeded")
	}

	got, err := ts.GetToken(ctx, p+"a")
	must(t, err, "GetToken a")
	if got.Name != "ci" || got.Namespace != "team-a" || got.Role != "operator" || !slices.Equal(got.Hash, []byte{1, 2, 3}) ||
		got.CreatedBy != "local" || !got.CreatedAt.Equal(at(0)) || !got.ExpiresAt.Equal(at(time.Hour)) {
		t.Fatalf("GetToken a = %+v", got)
	}
	got, err = ts.GetToken(ctx, p+"b")
	must(t, err, "GetToken b")
	if !got.ExpiresAt.IsZero() {
		t.Fatalf("token b expires at %v, want never", got.ExpiresAt)
	}
	_, err = ts.GetToken(ctx, p+"missing")
	wantErr(t, err, store.ErrNotFound, "GetToken missing")

	list, err := ts.ListTokens(ctx)
	must(t, err, "ListTokens")
	var ids []string
	for _, tok := range list {
		if len(tok.ID) > len(p) && tok.ID[:len(p)] == p {
			ids = append(ids, tok.ID)
		}
	}
	if !slices.Equal(ids, []string{p + "a", p + "b"}) {
		t.Fatalf("ListTokens = %q, want [%sa %sb]", ids, p, p)
	}

	must(t, ts.DeleteToken(ctx, p+"a"), "DeleteToken a")
	wantErr(t, ts.DeleteToken(ctx, p+"a"), store.ErrNotFound, "DeleteToken a again")
	_, err = ts.GetToken(ctx, p+"a")
	wantErr(t, err, store.ErrNotFound, "GetToken after revoke")
}

func testAudit(t *testing.T, open func(t *testing.T) store.Store) {
	s, ctx, p := openStore(t, open), ctxOf(t), prefix(t)
	as, ok := s.(store.AuditStore)
	if !ok {
		t.Fatalf("%T does not implement store.AuditStore", s)
	}
	nsA, nsB := p+"a", p+"b"
	first := &store.AuditEntry{Time: at(0), Subject: "token:1", Namespace: nsA, Action: "PUT /v1/secrets/{name}", Target: "/v1/secrets/db", Status: 200}
	must(t, as.AppendAudit(ctx, first), "AppendAudit 1")
	second := &store.AuditEntry{Time: at(time.Second), Subject: "oidc:bob", Namespace: nsB, Action: "POST /v1/workflows", Target: "/v1/workflows", Status: 201}
	must(t, as.AppendAudit(ctx, second), "AppendAudit 2")
	third := &store.AuditEntry{Time: at(2 * time.Second), Subject: "token:1", Namespace: nsA, Action: "DELETE /v1/tokens/{id}", Target: "/v1/tokens/x", Status: 204}
	must(t, as.AppendAudit(ctx, third), "AppendAudit 3")
	if !(first.Seq < second.Seq && second.Seq < third.Seq) {
		t.Fatalf("sequence numbers %d %d %d do not increase", first.Seq, second.Seq, third.Seq)
	}

	onlyA, err := as.ListAudit(ctx, store.AuditFilter{Namespaces: []string{nsA}})
	must(t, err, "ListAudit a")
	if len(onlyA) != 2 || onlyA[0].Seq != first.Seq || onlyA[1].Seq != third.Seq {
		t.Fatalf("ListAudit(a) = %+v, want entries 1 and 3", onlyA)
	}
	e := onlyA[0]
	if e.Subject != "token:1" || e.Action != first.Action || e.Target != first.Target || e.Status != 200 || !e.Time.Equal(at(0)) {
		t.Fatalf("entry 1 = %+v", e)
	}
	both, err := as.ListAudit(ctx, store.AuditFilter{Namespaces: []string{nsA, nsB}, After: first.Seq, Limit: 1})
	must(t, err, "ListAudit after 1, limit 1")
	if len(both) != 1 || both[0].Seq != second.Seq {
		t.Fatalf("ListAudit(after 1, limit 1) = %+v, want entry 2", both)
	}
	none, err := as.ListAudit(ctx, store.AuditFilter{Namespaces: []string{}})
	must(t, err, "ListAudit of no namespace")
	if len(none) != 0 {
		t.Fatalf("ListAudit of no namespace = %+v", none)
	}
	all, err := as.ListAudit(ctx, store.AuditFilter{After: first.Seq - 1, Limit: 1000})
	must(t, err, "ListAudit all")
	if len(all) < 3 {
		t.Fatalf("ListAudit without a namespace filter returned %d entries, want at least 3", len(all))
	}
}
