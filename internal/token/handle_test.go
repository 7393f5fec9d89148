package token

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestNewHandle(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
	}{
		{"no prefix", ""},
		{"refresh token prefix", "agt_rt_"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			for range 100 {
				h, err := NewHandle(nil, tc.prefix)
				if err != nil {
					t.Fatal(err)
				}
				rest, ok := strings.CutPrefix(h, tc.prefix)
				if !ok {
					t.Fatalf("handle %q lacks prefix %q", h, tc.prefix)
				}
				b, err := base64.RawURLEncoding.Strict().DecodeString(rest)
				if err != nil {
					t.Fatalf("handle body is not unpadded base64url: %v", err)
				}
				if len(b) < 32 {
					t.Fatalf("handle carries %d bytes, want ≥ 32", len(b))
				}
				if seen[h] {
					t.Fatalf("duplicate handle %q", h)
				}
				seen[h] = true
			}
		})
	}
	t.Run("deterministic from injected reader", func(t *testing.T) {
		r := bytes.NewReader(bytes.Repeat([]byte{0xff}, 32))
		h, err := NewHandle(r, "p_")
		if err != nil {
			t.Fatal(err)
		}
		if want := "p_" + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)); h != want {
			t.Fatalf("got %q want %q", h, want)
		}
	})
	t.Run("short reader fails", func(t *testing.T) {
		if _, err := NewHandle(bytes.NewReader(make([]byte, 31)), ""); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
		}
	})
	t.Run("failing reader fails", func(t *testing.T) {
		if _, err := NewHandle(failReader{}, ""); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestHash(t *testing.T) {
	// FIPS 180-2 test vector "abc".
	want, _ := hex.DecodeString("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
	if got := Hash("abc"); !bytes.Equal(got, want) {
		t.Fatalf("Hash(abc) = %x", got)
	}
	if len(Hash("")) != sha256.Size {
		t.Fatal("wrong length")
	}
}

func TestEqualHash(t *testing.T) {
	a, b := Hash("a"), Hash("b")
	tests := []struct {
		name string
		x, y []byte
		want bool
	}{
		{"equal", a, Hash("a"), true},
		{"different", a, b, false},
		{"prefix", a, a[:16], false},
		{"both empty", nil, []byte{}, false},
		{"one empty", a, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := EqualHash(tc.x, tc.y); got != tc.want {
				t.Fatalf("EqualHash = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	t.Run("shape and uniqueness", func(t *testing.T) {
		a, b := NewID(nil), NewID(nil)
		if a == b {
			t.Fatal("duplicate id")
		}
		raw, err := idEncoding.DecodeString(a)
		if err != nil || len(raw) != 16 {
			t.Fatalf("id %q: %d bytes, %v", a, len(raw), err)
		}
	})
	// Ids are typed on command lines ("agentid clients show ID"), where a
	// leading '-' reads as a flag: every id starts with a letter or digit
	// and uses only lower-case letters and digits.
	t.Run("never starts with a dash", func(t *testing.T) {
		for _, b := range []byte{0x00, 0xf8, 0xfb, 0xfc, 0xff} {
			id := NewID(bytes.NewReader(bytes.Repeat([]byte{b}, 16)))
			if !isIDChars(id) {
				t.Errorf("bytes %#x: id %q", b, id)
			}
		}
		for range 20000 {
			if id := NewID(nil); !isIDChars(id) || len(id) != 26 {
				t.Fatalf("id %q", id)
			}
		}
	})
	t.Run("panics when randomness fails", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		NewID(failReader{})
	})
}

// isIDChars reports whether id is non-empty lower-case letters and digits.
func isIDChars(id string) bool {
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return id != ""
}
