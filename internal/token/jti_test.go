package token

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestNewJTI(t *testing.T) {
	at := time.Date(2026, 12, 3, 18, 40, 0, 123456789, time.UTC)
	t.Run("shape", func(t *testing.T) {
		for _, b := range []byte{0x00, 0x7f, 0xff} {
			jti := NewJTI(at, bytes.NewReader(bytes.Repeat([]byte{b}, 10)))
			if len(jti) != 26 || !isIDChars(jti) {
				t.Fatalf("bytes %#x: jti %q", b, jti)
			}
			raw, err := jtiEncoding.DecodeString(jti)
			if err != nil || len(raw) != 16 {
				t.Fatalf("jti %q: %d bytes, %v", jti, len(raw), err)
			}
			var ms [8]byte
			copy(ms[2:], raw[:jtiTimeBytes])
			if got := int64(binary.BigEndian.Uint64(ms[:])); got != at.UnixMilli() {
				t.Fatalf("jti %q: time %d ms, want %d", jti, got, at.UnixMilli())
			}
			if !bytes.Equal(raw[jtiTimeBytes:], bytes.Repeat([]byte{b}, 10)) {
				t.Fatalf("jti %q: random part %x", jti, raw[jtiTimeBytes:])
			}
		}
	})
	// Byte order is time order, whatever the random part: the largest
	// random part of one millisecond sorts below the smallest of the next.
	t.Run("time order", func(t *testing.T) {
		lo, hi := bytes.Repeat([]byte{0}, 10), bytes.Repeat([]byte{0xff}, 10)
		for _, d := range []time.Duration{time.Millisecond, time.Second, 365 * 24 * time.Hour} {
			a := NewJTI(at, bytes.NewReader(hi))
			b := NewJTI(at.Add(d), bytes.NewReader(lo))
			if a >= b {
				t.Errorf("+%v: %q >= %q", d, a, b)
			}
		}
		r := rand.New(rand.NewPCG(1, 2))
		times := make([]time.Time, 2000)
		for i := range times {
			times[i] = time.UnixMilli(r.Int64N(1 << 47))
		}
		slices.SortFunc(times, func(x, y time.Time) int { return x.Compare(y) })
		jtis := make([]string, len(times))
		for i, tm := range times {
			jtis[i] = NewJTI(tm, nil)
		}
		for i := 1; i < len(jtis); i++ {
			if times[i].After(times[i-1]) && jtis[i] <= jtis[i-1] {
				t.Fatalf("%v → %q not above %v → %q", times[i], jtis[i], times[i-1], jtis[i-1])
			}
		}
	})
	t.Run("unique within a millisecond", func(t *testing.T) {
		seen := make(map[string]bool)
		for range 20000 {
			jti := NewJTI(at, nil)
			if seen[jti] {
				t.Fatalf("duplicate %q", jti)
			}
			seen[jti] = true
		}
	})
	t.Run("before the epoch", func(t *testing.T) {
		if jti := NewJTI(time.Unix(-5, 0), nil); len(jti) != 26 || !isIDChars(jti) {
			t.Fatalf("jti %q", jti)
		}
	})
	t.Run("panics when randomness fails", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		NewJTI(at, failReader{})
	})
}
