package keyring

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func testKEK(t testing.TB, id string) KEK {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return KEK{ID: id, Key: key}
}

func testKeyring(t testing.TB) *Keyring {
	t.Helper()
	kr, err := NewKeyring(testKEK(t, "kek-test"))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestKeyringSealOpen(t *testing.T) {
	kr := testKeyring(t)
	secret := []byte("private key material")
	ct, err := kr.Seal(nil, secret, "signing_keys|k1|private")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, secret) {
		t.Fatal("ciphertext contains the plaintext")
	}
	if !bytes.HasPrefix(ct, []byte("v1.kek-test.")) {
		t.Fatalf("ciphertext %q lacks the version and KEK id", ct)
	}
	if id, err := KEKID(ct); err != nil || id != "kek-test" {
		t.Fatalf("KEKID = %q, %v", id, err)
	}
	ct2, _ := kr.Seal(nil, secret, "signing_keys|k1|private")
	if bytes.Equal(ct, ct2) {
		t.Fatal("two seals are identical: nonce reused")
	}

	other := testKeyring(t) // same id, different key
	parts := strings.Split(string(ct), ".")
	flip := func(s string, i int) string {
		b := []byte(s)
		b[i] ^= 1
		return string(b)
	}
	reencode := func(field string, mut func([]byte)) string {
		b, _ := base64.RawURLEncoding.DecodeString(field)
		mut(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	tests := []struct {
		name    string
		kr      *Keyring
		ct      string
		aad     string
		wantErr error // nil: opens to secret
	}{
		{"round trip", kr, string(ct), "signing_keys|k1|private", nil},
		{"wrong aad row", kr, string(ct), "signing_keys|k2|private", ErrDecrypt},
		{"wrong aad purpose", kr, string(ct), "signing_keys|k1|public", ErrDecrypt},
		{"empty aad", kr, string(ct), "", ErrDecrypt},
		{"tampered ciphertext", kr, strings.Join([]string{parts[0], parts[1], parts[2], reencode(parts[3], func(b []byte) { b[0] ^= 1 })}, "."), "signing_keys|k1|private", ErrDecrypt},
		{"tampered tag", kr, strings.Join([]string{parts[0], parts[1], parts[2], reencode(parts[3], func(b []byte) { b[len(b)-1] ^= 0x80 })}, "."), "signing_keys|k1|private", ErrDecrypt},
		{"tampered nonce", kr, strings.Join([]string{parts[0], parts[1], reencode(parts[2], func(b []byte) { b[0] ^= 1 }), parts[3]}, "."), "signing_keys|k1|private", ErrDecrypt},
		{"truncated", kr, string(ct[:len(ct)-4]), "signing_keys|k1|private", ErrDecrypt},
		{"wrong version", kr, "v2" + string(ct[2:]), "signing_keys|k1|private", ErrDecrypt},
		{"extra field", kr, string(ct) + ".AA", "signing_keys|k1|private", ErrDecrypt},
		{"padded base64", kr, string(ct) + "=", "signing_keys|k1|private", ErrDecrypt},
		{"empty", kr, "", "signing_keys|k1|private", ErrDecrypt},
		{"unknown kek id", kr, strings.Replace(string(ct), "kek-test", "kek-gone", 1), "signing_keys|k1|private", ErrUnknownKEK},
		{"same id different key", other, string(ct), "signing_keys|k1|private", ErrDecrypt},
		{"bad character in id", kr, strings.Replace(string(ct), "kek-test", "kek+test", 1), "signing_keys|k1|private", ErrDecrypt},
		{"flipped id byte", kr, flip(string(ct), 3), "signing_keys|k1|private", ErrUnknownKEK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := tc.kr.Open([]byte(tc.ct), tc.aad)
			if tc.wantErr == nil {
				if err != nil || !bytes.Equal(pt, secret) {
					t.Fatalf("Open = %q, %v", pt, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tc.wantErr)
			}
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			if strings.Contains(err.Error(), string(secret)) {
				t.Fatal("error contains the plaintext")
			}
		})
	}
}

func TestKeyringKEKIDIsAuthenticated(t *testing.T) {
	// Two KEKs with the same key bytes under different ids: relabelling a
	// ciphertext must not open, because the id is part of the GCM AAD.
	a := testKEK(t, "kek-a")
	b := KEK{ID: "kek-b", Key: a.Key}
	kr, err := NewKeyring(a, b)
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := kr.Seal(nil, []byte("x"), "aad")
	relabelled := bytes.Replace(ct, []byte("kek-a"), []byte("kek-b"), 1)
	if _, err := kr.Open(relabelled, "aad"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("relabelled ciphertext: %v", err)
	}
}

func TestKeyringRotation(t *testing.T) {
	oldK, newK := testKEK(t, "kek-old"), testKEK(t, "kek-new")
	oldRing, _ := NewKeyring(oldK)
	ct, err := oldRing.Seal(nil, []byte("vault credential"), "connections|c1|access_token")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("new keyring without the old KEK cannot open", func(t *testing.T) {
		kr, _ := NewKeyring(newK)
		if _, err := kr.Open(ct, "connections|c1|access_token"); !errors.Is(err, ErrUnknownKEK) {
			t.Fatalf("got %v", err)
		}
	})
	rotated, err := NewKeyring(newK, oldK)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("old ciphertext opens with the old KEK listed", func(t *testing.T) {
		pt, err := rotated.Open(ct, "connections|c1|access_token")
		if err != nil || string(pt) != "vault credential" {
			t.Fatalf("Open = %q, %v", pt, err)
		}
	})
	t.Run("rewrap seals under the current KEK", func(t *testing.T) {
		re, err := rotated.Rewrap(nil, ct, "connections|c1|access_token")
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := KEKID(re); id != "kek-new" {
			t.Fatalf("rewrapped under %q", id)
		}
		only, _ := NewKeyring(newK)
		if pt, err := only.Open(re, "connections|c1|access_token"); err != nil || string(pt) != "vault credential" {
			t.Fatalf("Open = %q, %v", pt, err)
		}
		if _, err := rotated.Rewrap(nil, ct, "connections|c2|access_token"); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("rewrap with wrong aad: %v", err)
		}
	})
	if rotated.CurrentID() != "kek-new" {
		t.Fatalf("CurrentID = %q", rotated.CurrentID())
	}
}

func TestNewKeyringValidation(t *testing.T) {
	good := testKEK(t, "good")
	tests := []struct {
		name    string
		current KEK
		old     []KEK
		ok      bool
	}{
		{"valid", good, nil, true},
		{"same KEK twice", good, []KEK{good}, true},
		{"short key", KEK{ID: "k", Key: make([]byte, 16)}, nil, false},
		{"long key", KEK{ID: "k", Key: make([]byte, 33)}, nil, false},
		{"empty id", KEK{ID: "", Key: make([]byte, 32)}, nil, false},
		{"dot in id", KEK{ID: "a.b", Key: make([]byte, 32)}, nil, false},
		{"colon in id", KEK{ID: "a:b", Key: make([]byte, 32)}, nil, false},
		{"id too long", KEK{ID: strings.Repeat("a", 65), Key: make([]byte, 32)}, nil, false},
		{"invalid old", good, []KEK{{ID: "x", Key: nil}}, false},
		{"duplicate id different key", good, []KEK{{ID: "good", Key: make([]byte, 32)}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewKeyring(tc.current, tc.old...)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestParseKEK(t *testing.T) {
	key := bytes.Repeat([]byte{0xfb}, 32) // encodes with '+'/'/' in std and '-'/'_' in url
	std := base64.StdEncoding.EncodeToString(key)
	url := base64.RawURLEncoding.EncodeToString(key)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"standard base64", "k1:" + std, true},
		{"base64url unpadded", "k1:" + url, true},
		{"whitespace and newline", "  k1:" + std + "\n", true},
		{"comment lines", "# comment\n\nk1:" + std + "\n# trailing\n", true},
		{"spaces around colon", "k1 : " + std, true},
		{"no colon", std, false},
		{"empty", "", false},
		{"only comments", "# a\n# b\n", false},
		{"two key lines", "k1:" + std + "\nk2:" + std, false},
		{"short key", "k1:" + base64.StdEncoding.EncodeToString(key[:16]), false},
		{"not base64", "k1:" + strings.Repeat("!", 44), false},
		{"bad id", "k.1:" + std, false},
		{"empty id", ":" + std, false},
		{"std padded with url chars", "k1:" + url + "=", false},
		{"key and id swapped", std + ":k1", false},
		{"url key and id swapped", url[:40] + ":k1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseKEK(tc.in)
			if !tc.ok {
				if err == nil {
					t.Fatalf("parsed %q", tc.in)
				}
				if strings.Contains(err.Error(), std) || strings.Contains(err.Error(), url[:40]) {
					t.Fatal("error contains the key")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.ID != "k1" || !bytes.Equal(k.Key, key) {
				t.Fatalf("got %q %x", k.ID, k.Key)
			}
		})
	}
}

func TestLoadOrCreateKEKFile(t *testing.T) {
	t.Run("created 0600 in a 0700 directory and reused", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state", "keys")
		path := filepath.Join(dir, "kek")
		k1, err := LoadOrCreateKEKFile(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("file mode %#o", st.Mode().Perm())
		}
		dst, _ := os.Stat(dir)
		if dst.Mode().Perm() != 0o700 {
			t.Fatalf("dir mode %#o", dst.Mode().Perm())
		}
		k2, err := LoadOrCreateKEKFile(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if k1.ID != k2.ID || !bytes.Equal(k1.Key, k2.Key) {
			t.Fatal("second load returned a different KEK")
		}
		// The file is in the documented text format.
		b, _ := os.ReadFile(path)
		if k3, err := ParseKEK(string(b)); err != nil || k3.ID != k1.ID {
			t.Fatalf("ParseKEK(file) = %v, %v", k3.ID, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Fatalf("temporary files left behind: %v", entries)
		}
	})
	t.Run("refuses a group-readable file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kek")
		if err := os.WriteFile(path, []byte(FormatKEK(testKEK(t, "k"))), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o640); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateKEKFile(path, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("accepts 0400", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kek")
		want := testKEK(t, "k")
		if err := os.WriteFile(path, []byte(FormatKEK(want)), 0o400); err != nil {
			t.Fatal(err)
		}
		if got, err := LoadOrCreateKEKFile(path, nil); err != nil || !bytes.Equal(got.Key, want.Key) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("refuses a directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kek")
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateKEKFile(path, nil); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("refuses a malformed file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kek")
		if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateKEKFile(path, nil); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("randomness failure creates nothing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kek")
		if _, err := LoadOrCreateKEKFile(path, failReader{}); err == nil {
			t.Fatal("no error")
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("file exists after failure: %v", err)
		}
	})
}

func FuzzOpen(f *testing.F) {
	kr, _ := NewKeyring(KEK{ID: "fuzz", Key: make([]byte, 32)})
	ct, _ := kr.Seal(nil, []byte("secret"), "aad")
	f.Add(ct, "aad")
	f.Add([]byte("v1.fuzz.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA"), "")
	f.Add([]byte("v1..."), "aad")
	f.Add([]byte(""), "")
	f.Fuzz(func(t *testing.T, ct []byte, aad string) {
		pt, err := kr.Open(ct, aad)
		if err != nil {
			if pt != nil {
				t.Fatal("plaintext with error")
			}
			return
		}
		// Whatever opens must re-seal and open to the same plaintext.
		again, err := kr.Seal(nil, pt, aad)
		if err != nil {
			t.Fatal(err)
		}
		if pt2, err := kr.Open(again, aad); err != nil || !bytes.Equal(pt, pt2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzParseKEK(f *testing.F) {
	f.Add("k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)))
	f.Add("# c\nk1:" + base64.RawURLEncoding.EncodeToString(make([]byte, 32)) + "\n")
	f.Add("k1:")
	f.Add(":::")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKEK(s)
		if err != nil {
			return
		}
		if err := k.validate(); err != nil {
			t.Fatalf("parsed an invalid KEK: %v", err)
		}
		k2, err := ParseKEK(FormatKEK(k))
		if err != nil || k2.ID != k.ID || !bytes.Equal(k2.Key, k.Key) {
			t.Fatalf("format round trip: %v", err)
		}
	})
}

// failReader is a randomness source that always fails.
type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestReadKEKFile(t *testing.T) {
	dir := t.TempDir()
	k, err := GenerateKEK(nil)
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, []byte("# old KEK\n"+FormatKEK(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte(FormatKEK(k)), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadKEKFile(good)
	if err != nil || got.ID != k.ID || !bytes.Equal(got.Key, k.Key) {
		t.Fatalf("ReadKEKFile(good) = %v, %v", got.ID, err)
	}
	missing := filepath.Join(dir, "missing")
	if _, err := ReadKEKFile(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("ReadKEKFile created the missing file")
	}
	if runtime.GOOS != "windows" {
		if _, err := ReadKEKFile(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("world-readable file: %v", err)
		}
	}
}
