package jsontext

import (
	"encoding/json"
	"fmt"
	"testing"
)

// FuzzAppendString: the hand-written string encoder writes what
// encoding/json writes (which escapes \b and \f short).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain ascii text, long enough", "0123456<", "01234567&89", "\x00\x1f\x7f\x80",
		"q\"b\\s/\n\r\t<>&\u2028\u2029é😀\xff\xfe end", "aaaaaaa\u2028", "\b\f", "abcdefgh\"ijklmnop\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("%q: got %s, encoding/json %s", s, got, want)
		}
	})
}

// FuzzAppendObject: a string map's object is encoding/json's, byte for
// byte: keys in byte order (invalid UTF-8 included), every key and value
// escaped the same way, up to and beyond the encoder's 16 keys on the
// stack. The fuzzer's three strings are cut into keys and values at NUL.
func FuzzAppendObject(f *testing.F) {
	f.Add("", "", "")
	f.Add("~a\x00~b\x00agent\x00x", "scope\x00notes.read", "é\x00<&>\x00\xff\x00\u2028")
	f.Add("a\x00b\x00c\x00d\x00e\x00f\x00g\x00h\x00i\x00j\x00k\x00l\x00m\x00n\x00o\x00p\x00q\x00r", "B\x00A", "z")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		m := map[string]string{}
		var parts []string
		for _, s := range []string{a, b, c} {
			start := 0
			for i := 0; i <= len(s); i++ {
				if i == len(s) || s[i] == 0 {
					parts = append(parts, s[start:i])
					start = i + 1
				}
			}
		}
		for i := 0; i+1 < len(parts); i += 2 {
			m[parts[i]] = parts[i+1]
		}
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendObject(nil, m); string(got) != string(want) {
			t.Fatalf("%q: got %s, encoding/json %s", m, got, want)
		}
	})
}

// TestAppendObjectManyKeys: past the 16 keys the encoder sorts on the
// stack, the object is still encoding/json's.
func TestAppendObjectManyKeys(t *testing.T) {
	m := map[string]string{}
	for i := range 40 {
		m[fmt.Sprintf("k%02d<%c", 39-i, 'a'+i%26)] = fmt.Sprintf("v&%d\u2028", i)
	}
	want, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendObject(nil, m); string(got) != string(want) {
		t.Fatalf("got %s, encoding/json %s", got, want)
	}
}

func TestAppendObjectEmpty(t *testing.T) {
	for _, m := range []map[string]string{nil, {}} {
		if got := string(AppendObject([]byte("x"), m)); got != "x{}" {
			t.Fatalf("AppendObject(%v) = %s, want x{}", m, got)
		}
	}
}
