package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestValidateDefault(t *testing.T) {
	if err := Validate(DefaultFiles()); err != nil {
		t.Fatalf("default set: %v", err)
	}
	if _, err := validator(); err != nil {
		t.Fatalf("schema: %v", err)
	}
}

func TestValidateProblems(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		// want are substrings, one per expected problem, in order.
		want []string
	}{
		{
			name:  "unterminated string",
			files: map[string]string{"policies/x.cedar": "permit (principal, action, resource)\nwhen { context.grant_type == \"abc };"},
			want:  []string{"policies/x.cedar:2:30: syntax error: literal not terminated"},
		},
		{
			name:  "bad token",
			files: map[string]string{"p.cedar": "permit (principal, action, resource) when { 1 + };"},
			want:  []string{"p.cedar:1:50: syntax error:"},
		},
		{
			name:  "missing semicolon",
			files: map[string]string{"p.cedar": "permit (principal, action, resource)"},
			want:  []string{"p.cedar:1:"},
		},
		{
			name:  "unknown attribute",
			files: map[string]string{"p.cedar": "// header\n\n@id(\"x\")\npermit (principal, action, resource)\n  when { principal.nope };"},
			want:  []string{"p.cedar:3:1: policy \"x\": attribute `nope` on entity type `Agent` not found"},
		},
		{
			name:  "unknown action",
			files: map[string]string{"p.cedar": "permit (principal, action == Action::\"read\", resource);"},
			want:  []string{"p.cedar:1:1: policy \"p.cedar#1\": unable to find an applicable action", "p.cedar:1:1: policy \"p.cedar#1\": unrecognized action"},
		},
		{
			name:  "wrong principal type",
			files: map[string]string{"p.cedar": "permit (principal == User::\"alice\", action, resource);"},
			want:  []string{"p.cedar:1:1:"},
		},
		{
			name:  "type error",
			files: map[string]string{"p.cedar": "permit (principal, action, resource) when { resource.sensitive == \"yes\" };"},
			want:  []string{"p.cedar:1:1:"},
		},
		{
			name:  "optional attribute without has",
			files: map[string]string{"p.cedar": "permit (principal, action == Action::\"grant\", resource) when { context.user.roles.contains(\"a\") };"},
			want:  []string{"unable to guarantee safety of access to optional attribute `user`"},
		},
		{
			name: "duplicate id across files",
			files: map[string]string{
				"a.cedar": "@id(\"same\") permit (principal, action, resource);",
				"b.cedar": "\n\n@id(\"same\") forbid (principal, action, resource);",
			},
			want: []string{"b.cedar:3:1: policy \"same\": duplicate policy id (first at a.cedar:1:1)"},
		},
		{
			name:  "empty id",
			files: map[string]string{"a.cedar": "@id(\"\") permit (principal, action, resource);"},
			want:  []string{"a.cedar:1:1: empty @id annotation"},
		},
		{
			name:  "duplicate annotation",
			files: map[string]string{"a.cedar": "@id(\"x\") @id(\"y\") permit (principal, action, resource);"},
			want:  []string{"a.cedar:1:13: syntax error: duplicate annotation: @id"},
		},
		{
			name: "every problem at once",
			files: map[string]string{
				"a.cedar": "permit (principal, action, resource) when { principal.nope };\n" +
					"permit (principal, action, resource) when { ; };\n" +
					"@id(\"ok\") permit (principal, action == Action::\"grant\", resource);\n" +
					"forbid (principal, action, resource) when { principal.software_id == \"a;b\" && resource.nope };\n",
				"b.cedar": "permit (principal, action, resource) when { resource.nope };",
			},
			want: []string{"a.cedar:1:1:", "a.cedar:2:", "a.cedar:4:1:", "b.cedar:1:1:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.files)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a *ValidationError", err)
			}
			if len(ve.Problems) != len(tt.want) {
				t.Errorf("%d problems, want %d:\n%v", len(ve.Problems), len(tt.want), err)
			}
			for i, w := range tt.want {
				if i >= len(ve.Problems) {
					break
				}
				if got := ve.Problems[i].String(); !strings.Contains(got, w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got, w)
				}
			}
			if _, err := Compile(tt.files); err == nil {
				t.Error("Compile accepted an invalid set")
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
	}{
		{name: "empty set", files: map[string]string{}},
		{name: "comments only", files: map[string]string{"a.cedar": "// nothing yet\n"}},
		{name: "semicolon in string and comment", files: map[string]string{"a.cedar": "// a; b\n@id(\"x;y\") permit (principal, action, resource) when { principal.software_id == \"a;b\" };"}},
		{name: "agent-specific permit", files: map[string]string{"a.cedar": "permit (principal == Agent::\"ci-bot\", action == Action::\"grant\", resource in Resource::\"https://mcp.example.com/mcp\") when { context.grant_type == \"client_credentials\" };"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Validate(tt.files); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPolicySource(t *testing.T) {
	s := defaultSet(t)
	for _, p := range s.Policies() {
		t.Run(p.ID, func(t *testing.T) {
			if want := `@id("` + p.ID + `")`; !strings.HasPrefix(p.Source, want) {
				t.Errorf("source %q does not start with %s", p.Source, want)
			}
			if !strings.HasSuffix(p.Source, ";") {
				t.Errorf("source %q does not end the statement", p.Source)
			}
			if p.File != DefaultFile || p.Line < 1 {
				t.Errorf("position %s:%d", p.File, p.Line)
			}
		})
	}
	// Byte offsets stay right after multi-byte characters.
	src := "// — ünïcode —\n@id(\"a\") permit (principal, action, resource);\n@id(\"b\") forbid (principal, action, resource);"
	s2, err := Compile(map[string]string{"u.cedar": src})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := s2.Policy("b"); p.Source != `@id("b") forbid (principal, action, resource);` || p.Line != 3 || p.Column != 1 {
		t.Errorf("policy b = %+v", p)
	}
}

func TestStatements(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{name: "empty", src: "", want: nil},
		{name: "blank and comments", src: " \n// x;\n\t", want: nil},
		{name: "two", src: "a;\n // c;\n b ;", want: []string{"a;", "b ;"}},
		{name: "string with semicolon and escaped quote", src: `x "a;\";" y; z`, want: []string{`x "a;\";" y;`, "z"}},
		{name: "unterminated string", src: `x "abc; y`, want: []string{`x "abc; y`}},
		{name: "lone semicolon", src: ";;", want: []string{";", ";"}},
		{name: "semicolon inside braces", src: "permit (p) when { ; }; forbid (q);", want: []string{"permit (p) when { ; };", "forbid (q);"}},
		{name: "stray brace before next policy", src: "permit (p) when { a ;\n@id(\"x\") forbid (q);", want: []string{"permit (p) when { a ;", `@id("x") forbid (q);`}},
		{name: "keyword prefix is not a policy", src: "permit (p) when { a ; permits };", want: []string{"permit (p) when { a ; permits };"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, sp := range statements(tt.src) {
				got = append(got, tt.src[sp.start:sp.end])
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("statements = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzValidate feeds arbitrary policy text to Validate: it must not panic,
// must report every problem with a file name and a position inside the file,
// and must agree with Compile.
func FuzzValidate(f *testing.F) {
	f.Add(defaultPolicy)
	f.Add("permit (principal, action, resource);")
	f.Add("permit (principal, action, resource) when { \"abc };")
	f.Add("@id(\"x\") @id(\"y\") permit (principal, action, resource);")
	f.Add("forbid (principal, action, resource) when { principal.nope }; permit (principal, action, resource) when { ; };")
	f.Add("permit (principal == Agent::\"a\", action in [Action::\"grant\"], resource in Resource::\"r\") unless { context has user };")
	f.Add("// only a comment")
	f.Add("\"")
	f.Add("permit (principal, action, resource) when { context.time > datetime(\"2025-01-01\") && context.ip.isInRange(ip(\"10.0.0.0/8\")) };")
	f.Fuzz(func(t *testing.T, src string) {
		files := map[string]string{"f.cedar": src}
		err := Validate(files)
		_, cerr := Compile(files)
		if (err == nil) != (cerr == nil) {
			t.Fatalf("Validate: %v, Compile: %v", err, cerr)
		}
		if err == nil {
			return
		}
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("err %T is not a *ValidationError: %v", err, err)
		}
		if len(ve.Problems) == 0 {
			t.Fatal("ValidationError without problems")
		}
		lines := strings.Count(src, "\n") + 1
		for _, p := range ve.Problems {
			if p.File != "f.cedar" || p.Message == "" {
				t.Fatalf("problem %+v", p)
			}
			if p.Line < 1 || p.Line > lines+1 || p.Column < 1 {
				t.Fatalf("problem %q outside the file (%d lines)", p.String(), lines)
			}
		}
	})
}

func TestLineCounter(t *testing.T) {
	src := "ab\nçd; x\n\né;"
	tests := []struct {
		off, line, col int
	}{
		{0, 1, 1},
		{1, 1, 2},
		{3, 2, 1},
		{5, 2, 2}, // after the two-byte ç
		{8, 2, 5},
		{10, 3, 1},
		{11, 4, 1},
		{13, 4, 2}, // after the two-byte é
	}
	var lc lineCounter
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.off), func(t *testing.T) {
			if l, c := lc.advance(src, tt.off); l != tt.line || c != tt.col {
				t.Errorf("offset %d: %d:%d, want %d:%d", tt.off, l, c, tt.line, tt.col)
			}
		})
	}
	// Positions in a file the parser refuses are those of the file.
	err := Validate(map[string]string{"m.cedar": "permit (principal, action, resource); // é\n  forbid (principal, action, resource) when { é };"})
	if err == nil || !strings.Contains(err.Error(), "m.cedar:2:") {
		t.Errorf("err = %v, want a problem on line 2", err)
	}
}
