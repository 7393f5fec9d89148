package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/agentid/agentid/internal/password"
	"github.com/agentid/agentid/internal/store"
)

func TestReadPassword(t *testing.T) {
	long := strings.Repeat("plum", maxPasswordLen/4-1) + "kiwi"
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{name: "line", in: "correct horse\n", want: "correct horse"},
		{name: "no newline", in: "correct horse", want: "correct horse"},
		{name: "CRLF", in: "correct horse\r\n", want: "correct horse"},
		{name: "first line only", in: "first-line-pw\nsecond\n", want: "first-line-pw"},
		{name: "spaces kept", in: "  spaced words  \n", want: "  spaced words  "},
		{name: "at the maximum", in: long + "\n", want: long},
		{name: "over the maximum", in: long + "k\n", wantErr: "at most"},
		{name: "far over the maximum", in: strings.Repeat("p", 10*maxPasswordLen), wantErr: "at most"},
		{name: "empty", in: "", wantErr: "stdin is empty"},
		{name: "empty line", in: "\n", wantErr: "at least 12"},
		{name: "short", in: "eleven-char\n", wantErr: "at least 12"},
		{name: "common", in: "Password2026!\n", wantErr: "too easy to guess"},
		{name: "multibyte counts characters", in: "äöüßéèêëçñåø\n", want: "äöüßéèêëçñåø"},
		{name: "invalid UTF-8", in: "tulip-anchor\xff\n", wantErr: "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readPassword(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				// Errors describe the password, never repeat it.
				if len(tt.in) > 3 && strings.Contains(err.Error(), strings.TrimSpace(tt.in)) {
					t.Fatalf("error %q contains the input", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// FuzzReadPassword: an accepted password is one line of valid UTF-8 within
// the length bounds, and is a prefix of the input.
func FuzzReadPassword(f *testing.F) {
	for _, s := range []string{"correct horse\n", "", "\n", "short", "a\r\nb", "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		pw, err := readPassword(bytes.NewReader(in))
		if err != nil {
			return
		}
		if strings.ContainsAny(pw, "\n") || !utf8.ValidString(pw) || utf8.RuneCountInString(pw) < minPasswordLen || len(pw) > maxPasswordLen {
			t.Fatalf("accepted %q", pw)
		}
		if !bytes.HasPrefix(in, []byte(pw)) {
			t.Fatalf("%q is not a prefix of the input", pw)
		}
	})
}

func TestGeneratePassword(t *testing.T) {
	t.Run("length and alphabet", func(t *testing.T) {
		pw, err := generatePassword(bytes.NewReader(bytes.Repeat([]byte{0xfb}, generatedPasswordBytes)))
		if err != nil {
			t.Fatal(err)
		}
		// 0xfbfbfb is "-_v7" in unpadded base64url: the URL-safe
		// alphabet, so a password never needs quoting in a shell.
		if want := strings.Repeat("-_v7", 6); pw != want {
			t.Fatalf("got %q, want %q", pw, want)
		}
	})
	t.Run("passes the password rule", func(t *testing.T) {
		for range 200 {
			pw, err := generatePassword(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if err := password.Check(pw); err != nil {
				t.Fatalf("generated password refused: %v", err)
			}
		}
	})
	t.Run("short randomness fails", func(t *testing.T) {
		if _, err := generatePassword(bytes.NewReader([]byte{1, 2, 3})); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestValidateUsername(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"simple", "alice", true},
		{"email", "carol+ops@example.test", true},
		{"dots dashes underscores", "a.b-c_d", true},
		{"max length", strings.Repeat("u", maxUsernameLen), true},
		{"empty", "", false},
		{"too long", strings.Repeat("u", maxUsernameLen+1), false},
		{"space", "a b", false},
		{"colon", "a:b", false},
		{"non-ASCII", "jürgen", false},
		{"control", "a\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := validateUsername(tt.in); (err == nil) != tt.ok {
				t.Fatalf("validateUsername(%q) = %v, want ok %t", tt.in, err, tt.ok)
			}
		})
	}
}

// TestSetPasswordRefusesConnectorUser: a person a connector provisioned
// signs in at their provider; set-password refuses them and leaves the
// row without a password.
func TestSetPasswordRefusesConnectorUser(t *testing.T) {
	e := newCLIEnv(t)
	e.run("users", "add", "bob")
	st := e.store()
	ctx := context.Background()
	now := time.Now()
	if err := st.CreateUser(ctx, &store.User{TenantID: store.DefaultTenant, ID: "u-carol", Username: "carol",
		ConnectorID: "corp", ExternalSubject: "sub-carol", CreatedAt: now, UpdatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := e.env[k]; return v, ok }
	if code := run(ctx, []string{"users", "set-password", "carol"}, strings.NewReader(""), &out, &errb, lookup); code == 0 ||
		!strings.Contains(errb.String(), "corp") {
		t.Fatalf("set-password on a connector's person: exit %d\n%s%s", code, out.String(), errb.String())
	}
	u, err := st.GetUserByUsername(ctx, store.DefaultTenant, "carol")
	if err != nil || u.PasswordHash != "" {
		t.Fatalf("carol after set-password: %+v, %v", u, err)
	}
	e.run("users", "set-password", "bob")
}

// TestUsersOfAnotherTenant: a person a connector of tenant acme
// provisioned is listed, shown, given a role and disabled with --tenant
// acme (offboarding reaches every tenant); the default tenant's commands
// do not see them, and local users are added to the default tenant only.
func TestUsersOfAnotherTenant(t *testing.T) {
	e := newCLIEnv(t)
	e.run("users", "add", "carol")
	st := e.store()
	ctx := context.Background()
	now := time.Now()
	if err := st.CreateUser(ctx, &store.User{TenantID: "acme", ID: "u-acme-carol", Username: "carol",
		ConnectorID: "acme", ExternalSubject: "sub-carol", CreatedAt: now, UpdatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	out, _ := e.run("users", "list", "--tenant", "acme")
	if !strings.Contains(out, "u-acme-carol") {
		t.Fatalf("users list --tenant acme:\n%s", out)
	}
	if out, _ := e.run("users", "list"); strings.Contains(out, "u-acme-carol") {
		t.Fatalf("the default tenant lists acme's person:\n%s", out)
	}
	e.run("users", "add-role", "carol", "auditor", "--tenant", "acme")
	e.run("users", "disable", "carol", "--tenant", "acme")
	u, err := st.GetUser(ctx, "acme", "u-acme-carol")
	if err != nil || !u.Disabled || !slices.Equal(u.Roles, []string{"auditor"}) {
		t.Fatalf("acme's carol after disable: %+v, %v", u, err)
	}
	if local, err := st.GetUserByUsername(ctx, store.DefaultTenant, "carol"); err != nil || local.Disabled || len(local.Roles) != 0 {
		t.Fatalf("the default tenant's carol changed: %+v, %v", local, err)
	}
	var o, eb bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := e.env[k]; return v, ok }
	if code := run(ctx, []string{"users", "add", "dave", "--tenant", "acme"}, strings.NewReader(""), &o, &eb, lookup); code == 0 {
		t.Fatalf("users add --tenant acme: exit 0\n%s", o.String())
	}
}
