package analysis

import "math/bits"

// bitset is a fixed-size set of small integers.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) set(i int)      { b[i>>6] |= 1 << (uint(i) & 63) }
func (b bitset) has(i int) bool { return b[i>>6]&(1<<(uint(i)&63)) != 0 }

func (b bitset) or(o bitset) {
	for i := range b {
		b[i] |= o[i]
	}
}

// orAnd sets b |= x & y.
func (b bitset) orAnd(x, y bitset) {
	for i := range b {
		b[i] |= x[i] & y[i]
	}
}

func (b bitset) fill(n int) {
	for i := range b {
		b[i] = ^uint64(0)
	}
	if r := uint(n) & 63; r != 0 {
		b[len(b)-1] = (1 << r) - 1
	}
}

func (b bitset) empty() bool {
	for _, w := range b {
		if w != 0 {
			return false
		}
	}
	return true
}

// each calls fn for every member.
func (b bitset) each(fn func(int)) {
	for wi, w := range b {
		for w != 0 {
			t := bits.TrailingZeros64(w)
			fn(wi*64 + t)
			w &= w - 1
		}
	}
}

// transpose returns the transpose of a square bit matrix of n rows.
func transpose(rows []bitset, n int) []bitset {
	out := make([]bitset, n)
	backing := make([]uint64, n*((n+63)/64))
	w := (n + 63) / 64
	for i := range out {
		out[i] = backing[i*w : (i+1)*w]
	}
	var block [64]uint64
	for bi := 0; bi < w; bi++ { // block row
		for bj := 0; bj < w; bj++ { // block column
			for r := 0; r < 64; r++ {
				row := bi*64 + r
				if row < n {
					block[r] = rows[row][bj]
				} else {
					block[r] = 0
				}
			}
			transpose64(&block)
			for r := 0; r < 64; r++ {
				row := bj*64 + r
				if row < n {
					out[row][bi] = block[r]
				}
			}
		}
	}
	return out
}

// transpose64 transposes a 64x64 bit matrix where bit c of a[r] is
// element (r, c).
func transpose64(a *[64]uint64) {
	// Recursive block swap (Hacker's Delight 7-3), adapted to LSB-first
	// column numbering.
	j := 32
	m := uint64(0x00000000FFFFFFFF)
	for j != 0 {
		for k := 0; k < 64; k = (k + j + 1) &^ j {
			t := (a[k]>>uint(j) ^ a[k+j]) & m
			a[k] ^= t << uint(j)
			a[k+j] ^= t
		}
		j >>= 1
		m ^= m << uint(j)
	}
}

// andNot sets b &^= o.
func (b bitset) andNot(o bitset) {
	for i := range b {
		b[i] &^= o[i]
	}
}

// and sets b &= o.
func (b bitset) and(o bitset) {
	for i := range b {
		b[i] &= o[i]
	}
}

// clone returns a copy of b.
func (b bitset) clone() bitset { return append(bitset(nil), b...) }

// intersects reports whether b and o have a member in common.
func (b bitset) intersects(o bitset) bool {
	for i := range b {
		if b[i]&o[i] != 0 {
			return true
		}
	}
	return false
}

// first returns the smallest member, or -1 when b is empty.
func (b bitset) first() int {
	for wi, w := range b {
		if w != 0 {
			return wi*64 + bits.TrailingZeros64(w)
		}
	}
	return -1
}

// next returns the smallest member not below i, or -1.
func (b bitset) next(i int) int {
	for wi := i >> 6; wi < len(b); wi++ {
		w := b[wi]
		if wi == i>>6 {
			w &= ^uint64(0) << (uint(i) & 63)
		}
		if w != 0 {
			return wi*64 + bits.TrailingZeros64(w)
		}
	}
	return -1
}
