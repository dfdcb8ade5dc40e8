package objects

import (
	"fmt"
	"sort"
	"strings"
)

// The runtime answers a call to a class or method it does not have with the names it
// does have: the nearest by edit distance when one is close (a typo), else the list, so
// the caller learns the fix from the error alone.

// maxListed bounds the names an error lists when none is close.
const maxListed = 10

// classHint returns what follows the name in an ErrNoSuchClass for class.
func (r *Registry) classHint(class string) string {
	names := r.Classes()
	if len(names) == 0 {
		return "; no class is registered"
	}
	if near := nearest(class, names); len(near) > 0 {
		for i, n := range near {
			near[i] = fmt.Sprintf("%q", n)
		}
		return "; did you mean " + strings.Join(near, " or ") + "?"
	}
	return "; the classes are " + listed(names)
}

// methodHint returns what follows Class.Method in an ErrNoSuchMethod for method of the
// registered class c.
func methodHint(c *class, method string) string {
	names := make([]string, 0, len(c.methods))
	for n := range c.methods {
		names = append(names, n)
	}
	sort.Strings(names)
	if near := nearest(method, names); len(near) > 0 {
		for i, n := range near {
			near[i] = c.name + "." + n
		}
		return "; did you mean " + strings.Join(near, " or ") + "?"
	}
	return fmt.Sprintf("; the methods of %s are %s", c.name, listed(names))
}

// nearest returns the names closest to typo, if they are close enough to be what was
// meant: within a third of typo's length, at least 1 and at most 3 edits, where case
// does not count as an edit. Ties are all returned, in the order of names.
func nearest(typo string, names []string) []string {
	limit := max(1, min(3, len(typo)/3))
	if len(typo) > maxNameLen+limit {
		return nil // no registered name is that long
	}
	lower := strings.ToLower(typo)
	best, out := limit+1, []string(nil)
	for _, n := range names {
		if d := editDistance(lower, strings.ToLower(n)); d < best {
			best, out = d, []string{n}
		} else if d == best {
			out = append(out, n)
		}
	}
	return out
}

// editDistance is the optimal-string-alignment distance between a and b: the fewest
// insertions, deletions, substitutions and swaps of adjacent bytes that turn a into b
// (Damerau's extension of Levenshtein's, which counts "Cuonter" one edit from
// "Counter", not two).
func editDistance(a, b string) int {
	// Three rows of the dynamic programme: prev2 for the swap, prev, and cur.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// listed joins names with commas, the first maxListed of them.
func listed(names []string) string {
	if len(names) <= maxListed {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:maxListed], ", "), len(names)-maxListed)
}
