package examples

import (
	"strconv"

	"github.com/duro-db/duro/objects"
)

// Set is a grow-only set of integers: each element is a key of its own, so an Add writes
// one small key whatever the set's size, and Read lists them in order.
type Set struct{}

// setPrefix keeps elements apart from any other key the class might add later. Read
// returns elements in key (byte) order, not numeric order.
const setPrefix = "e/"

func setKey(e int64) string { return setPrefix + strconv.FormatInt(e, 10) }

// Add adds e; adding an element already present changes nothing.
func (*Set) Add(ctx *objects.Context, e int64) (struct{}, error) {
	return struct{}{}, ctx.Storage().Put(setKey(e), true)
}

// Read returns every element.
func (*Set) Read(ctx *objects.Context, _ struct{}) ([]int64, error) {
	var out []int64
	start := ""
	for {
		page, err := ctx.Storage().List(objects.ListOptions{Prefix: setPrefix, StartAfter: start, Limit: 1024})
		if err != nil {
			return nil, err
		}
		for _, kv := range page {
			e, err := strconv.ParseInt(kv.Key[len(setPrefix):], 10, 64)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
			start = kv.Key
		}
		if len(page) < 1024 {
			return out, nil
		}
	}
}

func registerSet(r *objects.Registry) {
	objects.RegisterIn(r, "Set", func() *Set { return new(Set) },
		objects.Method("Add", (*Set).Add),
		objects.Method("Read", (*Set).Read),
	)
}
