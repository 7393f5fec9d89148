package server

import (
	"slices"
	"strings"
	"testing"
)

// apply rebuilds both sides from a diff: the old text from its same and
// removed lines, the new one from its same and added lines.
func apply(lines []diffLine) (a, b []string) {
	for _, l := range lines {
		if l.Op != diffAdd {
			a = append(a, l.Text)
		}
		if l.Op != diffDel {
			b = append(b, l.Text)
		}
	}
	return a, b
}

func changes(lines []diffLine) int {
	n := 0
	for _, l := range lines {
		if l.Op != diffSame {
			n++
		}
	}
	return n
}

func TestDiffLines(t *testing.T) {
	for _, c := range []struct {
		name    string
		a, b    string
		want    string // the diff's lines as "<sign><text>", joined by |
		hunks   []string
		changes int
	}{
		{name: "equal", a: "x\ny\n", b: "x\ny\n", want: " x| y"},
		{name: "both empty", a: "", b: ""},
		{name: "added file", a: "", b: "x\ny\n", want: "+x|+y", hunks: []string{"@@ -0,0 +1,2 @@"}},
		{name: "removed file", a: "x\n", b: "", want: "-x", hunks: []string{"@@ -1,1 +0,0 @@"}},
		{name: "one line changed", a: "a\nb\nc\n", b: "a\nB\nc\n", want: " a|-b|+B| c", hunks: []string{"@@ -1,3 +1,3 @@"}},
		{name: "inserted in the middle", a: "a\nc\n", b: "a\nb\nc\n", want: " a|+b| c", hunks: []string{"@@ -1,2 +1,3 @@"}},
		{name: "no final newline", a: "a\nb", b: "a\nb\n", want: " a| b"},
		{name: "moved line keeps the longest common part", a: "1\n2\n3\n4\n", b: "2\n3\n4\n1\n", want: "-1| 2| 3| 4|+1", hunks: []string{"@@ -1,4 +1,4 @@"}},
		{
			name: "far apart changes are two hunks", a: "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", b: "x\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\ny\n",
			hunks: []string{"@@ -1,4 +1,4 @@", "@@ -9,4 +9,4 @@"}, changes: 4,
		},
		{
			name: "near changes share a hunk", a: "1\n2\n3\n4\n5\n6\n7\n8\n", b: "x\n2\n3\n4\n5\n6\n7\ny\n",
			hunks: []string{"@@ -1,8 +1,8 @@"}, changes: 4,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := splitLines(c.a), splitLines(c.b)
			lines := diffLines(a, b)
			if c.want != "" || len(lines) == 0 {
				var got []string
				for _, l := range lines {
					got = append(got, l.Sign()+l.Text)
				}
				if strings.Join(got, "|") != c.want {
					t.Errorf("diff = %q, want %q", strings.Join(got, "|"), c.want)
				}
			}
			var hs []string
			for _, h := range hunks(lines) {
				hs = append(hs, h.Header())
			}
			if !slices.Equal(hs, c.hunks) {
				t.Errorf("hunks = %q, want %q", hs, c.hunks)
			}
			if c.changes > 0 && changes(lines) != c.changes {
				t.Errorf("%d changed lines, want %d", changes(lines), c.changes)
			}
			if ra, rb := apply(lines); !slices.Equal(ra, a) || !slices.Equal(rb, b) {
				t.Errorf("the diff does not rebuild its sides: %q %q", ra, rb)
			}
		})
	}
}

// TestDiffLinesTooBig: past the table bound the middle is removed and
// added whole, still a diff of the two texts.
func TestDiffLinesTooBig(t *testing.T) {
	var a, b []string
	for i := range 2100 {
		a = append(a, "a"+strings.Repeat("x", i%7))
		b = append(b, "b"+strings.Repeat("y", i%5))
	}
	lines := diffLines(a, b)
	if ra, rb := apply(lines); !slices.Equal(ra, a) || !slices.Equal(rb, b) {
		t.Fatal("the diff does not rebuild its sides")
	}
	if changes(lines) != len(a)+len(b) {
		t.Errorf("%d changes", changes(lines))
	}
}

// FuzzDiffLines: any two texts give a diff that rebuilds both, with line
// numbers that count up on each side, hunks that cover every change, and
// no more changes than removing and adding everything.
func FuzzDiffLines(f *testing.F) {
	f.Add("a\nb\nc\n", "a\nc\nd\n")
	f.Add("", "x")
	f.Add("1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\nx\n4\n5\n6\n7\n8\ny\n")
	f.Fuzz(func(t *testing.T, x, y string) {
		a, b := splitLines(x), splitLines(y)
		lines := diffLines(a, b)
		if ra, rb := apply(lines); !slices.Equal(ra, a) || !slices.Equal(rb, b) {
			t.Fatalf("the diff of %q and %q does not rebuild them", x, y)
		}
		old, nw := 0, 0
		for _, l := range lines {
			if l.Op != diffAdd {
				if old++; l.Old != old {
					t.Fatalf("old line number %d, want %d", l.Old, old)
				}
			}
			if l.Op != diffDel {
				if nw++; l.New != nw {
					t.Fatalf("new line number %d, want %d", l.New, nw)
				}
			}
		}
		covered := 0
		for _, h := range hunks(lines) {
			covered += changes(h.Lines)
		}
		if n := changes(lines); covered != n || n > len(a)+len(b) {
			t.Fatalf("hunks cover %d of %d changes", covered, n)
		}
	})
}
