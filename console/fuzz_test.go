package console

import (
	"net/url"
	"testing"
	"time"
)

// FuzzSessionCookie opens arbitrary cookie values: none may open but
// those sealed here, and none may panic.
func FuzzSessionCookie(f *testing.F) {
	s, err := NewSessions(NewKey())
	if err != nil {
		f.Fatal(err)
	}
	sealed := s.seal("token")
	f.Add(sealed)
	f.Add("")
	f.Add(sealed[:len(sealed)-1])
	f.Fuzz(func(t *testing.T, value string) {
		token, ok := s.open(value)
		if ok && (value != sealed || token != "token") {
			t.Fatalf("%q opened as %q", value, token)
		}
	})
}

// FuzzRunFilter reads arbitrary filter queries: each either becomes a
// store filter or is named as a problem, and a link built from it reads
// back the same.
func FuzzRunFilter(f *testing.F) {
	f.Add("namespace=a&workflow=b&version=1&status=running&from=2026-01-01T00:00&to=2026-02-01&id=01a")
	f.Add("status=nope&from=yesterday")
	f.Add("from=2026-01-01T00:00:00Z&to=%zz")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		rf := runFilterFrom(q)
		sf, problems := rf.storeFilter(10)
		if rf.From != "" && sf.StartedAfter.IsZero() && len(problems) == 0 {
			t.Fatalf("from %q neither read nor refused", rf.From)
		}
		if !sf.StartedAfter.IsZero() && sf.StartedAfter.After(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("from %q read as %v", rf.From, sf.StartedAfter)
		}
		link := rf.With("", "")
		back, err := url.Parse(link)
		if err != nil {
			t.Fatalf("link %q: %v", link, err)
		}
		if again := runFilterFrom(back.Query()); again.With("", "") != link {
			t.Fatalf("link %q reads back as %q", link, again.With("", ""))
		}
	})
}
