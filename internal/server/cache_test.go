package server

import (
	"errors"
	"testing"
	"time"
)

func TestTTLCache(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newTTLCache[int](func() time.Time { return now })
	loads := 0
	load := func(v int, err error) func() (int, error) {
		return func() (int, error) { loads++; return v, err }
	}
	steps := []struct {
		name      string
		advance   time.Duration
		invalid   bool
		load      func() (int, error)
		want      int
		wantErr   bool
		wantLoads int
	}{
		{"first get loads", 0, false, load(1, nil), 1, false, 1},
		{"fresh entry is served", time.Second, false, load(2, nil), 1, false, 1},
		{"expired entry reloads", 2 * time.Second, false, load(3, nil), 3, false, 2},
		{"invalidated entry reloads", 0, true, load(4, nil), 4, false, 3},
		{"errors are not cached", lookupTTL, false, load(0, errors.New("down")), 0, true, 4},
		{"after an error the next get loads", 0, false, load(5, nil), 5, false, 5},
		{"clock going backwards reloads", -time.Hour, false, load(6, nil), 6, false, 6},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		if s.invalid {
			c.invalidate("k")
		}
		got, err := c.get("k", s.load)
		if (err != nil) != s.wantErr || (err == nil && got != s.want) || loads != s.wantLoads {
			t.Fatalf("%s: got %d, %v after %d loads; want %d, err=%v, %d loads", s.name, got, err, loads, s.want, s.wantErr, s.wantLoads)
		}
	}
}
