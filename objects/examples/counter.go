package examples

import "github.com/duro-db/duro/objects"

// Counter is an integer, 0 until first added to.
type Counter struct{}

// Add adds n (which may be negative) and returns the new value.
func (*Counter) Add(ctx *objects.Context, n int64) (int64, error) {
	v, _, err := objects.GetAs[int64](ctx.Storage(), "value")
	if err != nil {
		return 0, err
	}
	v += n
	return v, ctx.Storage().Put("value", v)
}

// Get returns the value.
func (*Counter) Get(ctx *objects.Context, _ struct{}) (int64, error) {
	v, _, err := objects.GetAs[int64](ctx.Storage(), "value")
	return v, err
}

func registerCounter(r *objects.Registry) {
	objects.RegisterIn(r, "Counter", func() *Counter { return new(Counter) },
		objects.Method("Add", (*Counter).Add),
		objects.Method("Get", (*Counter).Get),
	)
}
