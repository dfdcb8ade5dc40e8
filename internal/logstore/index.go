package logstore

import "sort"

// loc is where one log record lies in the WAL: n bytes at off in seg.
type loc struct {
	seg *segment
	off int64
	n   uint32
}

// logIndex maps a group's log indexes to their records in the WAL. Raft
// appends at increasing indexes and deletes at both ends, so the log is one
// run of consecutive indexes, or a few after a snapshot left a gap; each run
// is a slice indexed by index - first.
//
// Only the writer goroutine (and Open, before it starts) modifies an index,
// under its group's lock; every change keeps the live counts of the segments
// it references exact, which is what lets the writer delete a segment.
type logIndex struct {
	runs []run // sorted, disjoint, never empty, never adjacent
}

type run struct {
	first uint64
	locs  []loc
}

func (r *run) last() uint64 { return r.first + uint64(len(r.locs)) - 1 }

// bounds returns the first and last index held, 0 and 0 if none.
func (x *logIndex) bounds() (first, last uint64) {
	if len(x.runs) == 0 {
		return 0, 0
	}
	return x.runs[0].first, x.runs[len(x.runs)-1].last()
}

// find returns the position of the run holding index, or -1.
func (x *logIndex) find(index uint64) int {
	// Usually one run; the search is for the few after a snapshot.
	i := sort.Search(len(x.runs), func(i int) bool { return x.runs[i].last() >= index })
	if i < len(x.runs) && x.runs[i].first <= index {
		return i
	}
	return -1
}

// get returns the location of index.
func (x *logIndex) get(index uint64) (loc, bool) {
	if n := len(x.runs); n == 1 { // the common case, without the search
		r := &x.runs[0]
		if index >= r.first && index <= r.last() {
			return r.locs[index-r.first], true
		}
		return loc{}, false
	}
	i := x.find(index)
	if i < 0 {
		return loc{}, false
	}
	r := &x.runs[i]
	return r.locs[index-r.first], true
}

// put records l for index, replacing whatever was there.
func (x *logIndex) put(index uint64, l loc) {
	l.seg.addLive(l.n)
	if n := len(x.runs); n > 0 {
		r := &x.runs[n-1]
		switch {
		case index == r.last()+1: // an append: almost every call
			r.locs = append(r.locs, l)
			return
		case index >= r.first && index <= r.last():
			old := &r.locs[index-r.first]
			old.seg.dropLive(old.n)
			*old = l
			return
		}
	}
	if i := x.find(index); i >= 0 {
		r := &x.runs[i]
		old := &r.locs[index-r.first]
		old.seg.dropLive(old.n)
		*old = l
		return
	}
	// A new run, in order, merged with a neighbour it touches.
	i := sort.Search(len(x.runs), func(i int) bool { return x.runs[i].first > index })
	x.runs = append(x.runs, run{})
	copy(x.runs[i+1:], x.runs[i:])
	x.runs[i] = run{first: index, locs: []loc{l}}
	if i+1 < len(x.runs) && x.runs[i+1].first == index+1 {
		x.runs[i].locs = append(x.runs[i].locs, x.runs[i+1].locs...)
		x.runs = append(x.runs[:i+1], x.runs[i+2:]...)
	}
	if i > 0 && x.runs[i-1].last()+1 == index {
		x.runs[i-1].locs = append(x.runs[i-1].locs, x.runs[i].locs...)
		x.runs = append(x.runs[:i], x.runs[i+1:]...)
	}
}

// deleteRange removes the indexes in [from, to].
func (x *logIndex) deleteRange(from, to uint64) {
	if from > to {
		return
	}
	out := x.runs[:0]
	var upper []run // a run split in two leaves its upper part here
	for _, r := range x.runs {
		if r.last() < from || r.first > to {
			out = append(out, r)
			continue
		}
		lo := max(r.first, from) - r.first // first position removed
		hi := min(r.last(), to) - r.first  // last position removed
		for _, l := range r.locs[lo : hi+1] {
			l.seg.dropLive(l.n)
		}
		keepUpper := hi+1 < uint64(len(r.locs))
		switch {
		case lo > 0 && keepUpper:
			// Copied: the upper part keeps the array.
			out = append(out, run{first: r.first, locs: append([]loc(nil), r.locs[:lo]...)})
		case lo > 0:
			clear(r.locs[lo:]) // unpin segments; appends reuse the slots
			out = append(out, run{first: r.first, locs: r.locs[:lo]})
		}
		if keepUpper {
			clear(r.locs[:hi+1]) // unpin segments
			upper = append(upper, run{first: r.first + hi + 1, locs: r.locs[hi+1:]})
		}
	}
	n := len(x.runs)
	out = append(out, upper...)
	if len(out) < n {
		clear(x.runs[len(out):n]) // unpin the dropped runs' arrays
	}
	x.runs = out
	sort.Slice(x.runs, func(i, j int) bool { return x.runs[i].first < x.runs[j].first })
}
