package loadtest

import (
	"math/bits"
	"time"
)

// Histogram records latencies in bounded memory: log-linear buckets, each
// power of two of nanoseconds split into subBuckets equal parts (as HDR
// histograms do), so a percentile read from it is within 1/subBuckets
// (about 1.6%) of the recorded value, whatever the run's length. The
// largest value is kept exactly. It is not safe for concurrent use: each
// worker records into its own and Merge folds them.
type Histogram struct {
	counts [64 * subBuckets]uint64
	n      uint64
	max    time.Duration
}

const (
	subBits    = 6
	subBuckets = 1 << subBits
)

// bucket is the index of d's bucket. Values below subBuckets nanoseconds
// have a bucket each; above, the top subBits+1 bits select it.
func bucket(d time.Duration) int {
	v := uint64(max(d, 0))
	if v < subBuckets {
		return int(v)
	}
	exp := bits.Len64(v) - subBits - 1 // shift that leaves subBits+1 bits
	mant := v >> exp                   // in [subBuckets, 2*subBuckets)
	return (exp+1)*subBuckets + int(mant-subBuckets)
}

// upper is the largest value bucket i holds.
func upper(i int) time.Duration {
	if i < subBuckets {
		return time.Duration(i)
	}
	exp := i/subBuckets - 1
	mant := uint64(i%subBuckets + subBuckets)
	return time.Duration((mant+1)<<exp - 1)
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	h.counts[bucket(d)]++
	h.n++
	h.max = max(h.max, d)
}

// Merge adds o's records to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count is the number of recorded latencies.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest recorded latency.
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile is the latency at or under which a fraction q (0 < q ≤ 1) of
// the records lie, as the upper bound of its bucket (never above Max).
// An empty histogram answers 0.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	// The rank of the record sought, 1-based: ⌈q·n⌉.
	rank := uint64(q * float64(h.n))
	if float64(rank) < q*float64(h.n) {
		rank++
	}
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(upper(i), h.max)
		}
	}
	return h.max
}
