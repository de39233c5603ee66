package main

import (
	"math/bits"
	"time"
)

// histogram records latencies in nanoseconds in log-linear buckets: exact
// below 256 ns, then 128 buckets per power of two (under 0.8 % error). It is
// not safe for concurrent use: each connection keeps its own and they are
// merged at the end.
type histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    uint64
	sum    uint64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // buckets per power of two
	histExact   = 2 * histSub      // values below are their own bucket
	histBuckets = histExact + (64-histSubBits-1)*histSub
)

func histIndex(v uint64) int {
	if v < histExact {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1 // v>>shift is in [histSub, 2*histSub)
	return histExact + (shift-1)*histSub + int(v>>shift) - histSub
}

// histLow returns the smallest value of bucket i.
func histLow(i int) uint64 {
	if i < histExact {
		return uint64(i)
	}
	shift := (i-histExact)/histSub + 1
	m := uint64((i-histExact)%histSub + histSub)
	return m << shift
}

// histWidth is how many values bucket i holds.
func histWidth(i int) uint64 {
	if i < histExact {
		return 1
	}
	return 1 << ((i-histExact)/histSub + 1)
}

func (h *histogram) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[histIndex(v)]++
	h.n++
	h.sum += v
	if v > h.max {
		h.max = v
	}
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile returns the value at quantile q (0..1): the middle of the bucket
// that holds it, never more than the largest value recorded.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := histLow(i) + histWidth(i)/2
			return time.Duration(min(v, h.max))
		}
	}
	return time.Duration(h.max)
}

func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}
