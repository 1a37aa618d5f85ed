package tail

import "testing"

func TestBufferKeepsBothEnds(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"nothing", nil, ""},
		{"fits", []string{"ab", "cd"}, "abcd"},
		{"fills head and tail exactly", []string{"abcdefgh"}, "abcdefgh"},
		{"overflow across writes", []string{"abcdef", "ghij"}, "abcd\n…\nghij"},
		{"one large write", []string{"0123456789abc"}, "0123\n…\n9abc"},
		{"many small writes", []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"}, "abcd\n…\nfghi"},
		{"trimmed", []string{"  x \n"}, "x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := New(8)
			for _, w := range tc.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := b.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			b.Reset()
			if got := b.String(); got != "" {
				t.Errorf("after Reset, String() = %q", got)
			}
		})
	}
}

func TestSuffix(t *testing.T) {
	b := New(64)
	if s := b.Suffix("stderr"); s != "" {
		t.Errorf("empty buffer suffix = %q", s)
	}
	b.Write([]byte("boom\n"))
	if s := b.Suffix("stderr"); s != "; stderr: boom" {
		t.Errorf("suffix = %q", s)
	}
}
