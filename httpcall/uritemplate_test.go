package httpcall

import (
	"errors"
	"testing"

	"github.com/batonflow/baton/problem"
)

// rfcVars are the variables of RFC 6570's examples (sections 1.2 and 3.2),
// minus the list and map ones, which the DSL does not allow.
var rfcVars = map[string]any{
	"var":   "value",
	"hello": "Hello World!",
	"half":  "50%",
	"empty": "",
	"path":  "/foo/bar",
	"x":     "1024",
	"y":     "768",
	"base":  "http://example.com/home/",
	"who":   "fred",
	"v":     "6",
	"dub":   "me/too",
	"null":  nil,
}

func TestExpandTemplateRFC6570(t *testing.T) {
	tests := []struct {
		template string
		want     string
	}{
		// Level 1: simple string expansion.
		{"{var}", "value"},
		{"{hello}", "Hello%20World%21"},
		{"{half}", "50%25"},
		{"O{empty}X", "OX"},
		{"O{undef}X", "OX"},
		{"O{null}X", "OX"},
		{"{base}index", "http%3A%2F%2Fexample.com%2Fhome%2Findex"},
		// Level 2: reserved and fragment expansion.
		{"{+var}", "value"},
		{"{+hello}", "Hello%20World!"},
		{"{+half}", "50%25"},
		{"{+path}/here", "/foo/bar/here"},
		{"here?ref={+path}", "here?ref=/foo/bar"},
		{"{+base}index", "http://example.com/home/index"},
		{"O{+empty}X", "OX"},
		{"O{+undef}X", "OX"},
		{"X{#var}", "X#value"},
		{"X{#hello}", "X#Hello%20World!"},
		{"{#half}", "#50%25"},
		{"{#empty}", "#"},
		{"{#undef}", ""},
		// Level 3: multiple variables and the remaining operators.
		{"map?{x,y}", "map?1024,768"},
		{"{x,hello,y}", "1024,Hello%20World%21,768"},
		{"{x,undef,y}", "1024,768"},
		{"{+x,hello,y}", "1024,Hello%20World!,768"},
		{"{+path,x}/here", "/foo/bar,1024/here"},
		{"{#x,hello,y}", "#1024,Hello%20World!,768"},
		{"{#path,x}/here", "#/foo/bar,1024/here"},
		{"X{.var}", "X.value"},
		{"X{.x,y}", "X.1024.768"},
		{"X{.empty}", "X."},
		{"X{.undef}", "X"},
		{"{.who,who}", ".fred.fred"},
		{"{/var}", "/value"},
		{"{/var,x}/here", "/value/1024/here"},
		{"{/who,who}", "/fred/fred"},
		{"{/who,dub}", "/fred/me%2Ftoo"},
		{"{/var,empty}", "/value/"},
		{"{/var,undef}", "/value"},
		{"{;x,y}", ";x=1024;y=768"},
		{"{;x,y,empty}", ";x=1024;y=768;empty"},
		{"{;v,empty,who}", ";v=6;empty;who=fred"},
		{"{;v,bar,who}", ";v=6;who=fred"},
		{"{?x,y}", "?x=1024&y=768"},
		{"{?x,y,empty}", "?x=1024&y=768&empty="},
		{"{?x,y,undef}", "?x=1024&y=768"},
		{"{?undef}", ""},
		{"?fixed=yes{&x}", "?fixed=yes&x=1024"},
		{"{&x,y,empty}", "&x=1024&y=768&empty="},
		// Level 4 prefix modifier; explode is a no-op on scalars.
		{"{var:3}", "val"},
		{"{var:30}", "value"},
		{"{+path:6}/here", "/foo/b/here"},
		{"{#path:6}/here", "#/foo/b/here"},
		{"X{.var:3}", "X.val"},
		{"{/var:1,var}", "/v/value"},
		{"{;hello:5}", ";hello=Hello"},
		{"{?var:3}", "?var=val"},
		{"{&var:3}", "&var=val"},
		{"{var*}", "value"},
	}
	for _, tt := range tests {
		t.Run(tt.template, func(t *testing.T) {
			got, err := ExpandTemplate(tt.template, rfcVars)
			if err != nil {
				t.Fatalf("ExpandTemplate: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestExpandTemplateDSL(t *testing.T) {
	vars := map[string]any{
		"petId":   float64(1),
		"big":     float64(12345678901),
		"ratio":   1.5,
		"flag":    true,
		"count":   7,
		"pet.id":  "dotted",
		"name":    "Milou & Tintin",
		"unicode": "café",
	}
	tests := []struct {
		template string
		want     string
	}{
		{"https://petstore.swagger.io/v2/pet/{petId}", "https://petstore.swagger.io/v2/pet/1"},
		{"https://x.test/{big}/{ratio}/{flag}/{count}", "https://x.test/12345678901/1.5/true/7"},
		{"https://x.test/{pet.id}", "https://x.test/dotted"},
		{"https://x.test/find?status={name}", "https://x.test/find?status=Milou%20%26%20Tintin"},
		{"https://x.test/{unicode}", "https://x.test/caf%C3%A9"},
		{"https://x.test/{unicode:3}", "https://x.test/caf"},
		{"https://x.test/{missing}/end", "https://x.test//end"},
		{"https://x.test/a b", "https://x.test/a%20b"},
		{"https://x.test/already%20encoded?q=1", "https://x.test/already%20encoded?q=1"},
	}
	for _, tt := range tests {
		t.Run(tt.template, func(t *testing.T) {
			got, err := ExpandTemplate(tt.template, vars)
			if err != nil {
				t.Fatalf("ExpandTemplate: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestExpandTemplateErrors(t *testing.T) {
	vars := map[string]any{"list": []any{"a"}, "obj": map[string]any{"a": 1}}
	tests := []struct {
		template string
		wantType string
	}{
		{"https://x.test/{list}", problem.TypeExpression},
		{"https://x.test/{obj}", problem.TypeExpression},
		{"https://x.test/{unclosed", problem.TypeConfiguration},
		{"https://x.test/closed}", problem.TypeConfiguration},
		{"https://x.test/}{a}", problem.TypeConfiguration},
		{"https://x.test/{}", problem.TypeConfiguration},
		{"https://x.test/{=a}", problem.TypeConfiguration},
		{"https://x.test/{|a}", problem.TypeConfiguration},
		{"https://x.test/{a,}", problem.TypeConfiguration},
		{"https://x.test/{a:0}", problem.TypeConfiguration},
		{"https://x.test/{a:10000}", problem.TypeConfiguration},
		{"https://x.test/{a:x}", problem.TypeConfiguration},
		{"https://x.test/{+}", problem.TypeConfiguration},
		{"https://x.test/{a b}", problem.TypeConfiguration},
	}
	for _, tt := range tests {
		t.Run(tt.template, func(t *testing.T) {
			got, err := ExpandTemplate(tt.template, vars)
			if err == nil {
				t.Fatalf("got %q, want an error", got)
			}
			var p *problem.Problem
			if !errors.As(err, &p) {
				t.Fatalf("error %v is not a problem", err)
			}
			if p.Type != tt.wantType || p.Status != 400 {
				t.Errorf("got %s (%d), want %s (400)", p.Type, p.Status, tt.wantType)
			}
		})
	}
}

func TestFormatFloat(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{42, "42"},
		{-3.25, "-3.25"},
		{1e20, "100000000000000000000"},
		{1e21, "1e+21"},
		{1e-7, "1e-7"},
		{0.000001, "0.000001"},
	}
	for _, tt := range tests {
		if got := formatFloat(tt.in); got != tt.want {
			t.Errorf("formatFloat(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func BenchmarkExpandTemplate(b *testing.B) {
	vars := map[string]any{"petId": float64(42), "status": "available"}
	for b.Loop() {
		if _, err := ExpandTemplate("https://petstore.test/v2/pet/{petId}{?status}", vars); err != nil {
			b.Fatal(err)
		}
	}
}
