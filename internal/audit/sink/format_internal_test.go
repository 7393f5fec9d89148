package sink

import (
	"encoding/json"
	"testing"
)

// FuzzAppendJSONString: the hand-written string encoder writes what
// encoding/json writes (which escapes \b and \f short).
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain ascii text, long enough", "0123456<", "01234567&89", "\x00\x1f\x7f\x80",
		"q\"b\\s/\n\r\t<>&\u2028\u2029é😀\xff\xfe end", "aaaaaaa\u2028", "\b\f", "abcdefgh\"ijklmnop\\"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("%q: got %s, encoding/json %s", s, got, want)
		}
	})
}
