package objects_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/duro-db/duro/internal/objid"
	"github.com/duro-db/duro/objects"
)

// Counter is a durable counter: its value lives in Storage, so it survives restarts,
// evictions and leader changes.
type Counter struct{}

type AddArgs struct {
	N int `json:"n"`
}

func (c *Counter) Add(ctx *objects.Context, in AddArgs) (int, error) {
	v, _, err := objects.GetAs[int](ctx.Storage(), "value")
	if err != nil {
		return 0, err
	}
	v += in.N
	return v, ctx.Storage().Put("value", v)
}

func ExampleRegister() {
	// Usually in an init function of the package that defines the class.
	objects.Register("ExampleCounter", func() *Counter { return new(Counter) },
		objects.Method("Add", func(c *Counter, ctx *objects.Context, in AddArgs) (int, error) {
			return c.Add(ctx, in)
		}),
	)

	// The node runs the registry; here on a one-node in-memory group.
	loc, stop := objects.TestingLocator()
	defer stop()
	rt := objects.NewRuntime(objects.DefaultRegistry, loc, objects.Options{})
	defer rt.Close()

	for i := 0; i < 3; i++ {
		res, err := rt.Call(context.Background(), objects.Request{
			Class:  "ExampleCounter",
			ID:     objid.FromName("ExampleCounter", "visits"),
			Name:   "visits",
			Method: "Add",
			Args:   []byte(`{"n": 2}`),
			JSON:   true, // as the CLI sends; the SDK sends msgpack
		})
		fmt.Println(string(res), err)
	}
	// Output:
	// 2 <nil>
	// 4 <nil>
	// 6 <nil>
}

type Message struct {
	Author string `json:"author"`
	Text   string `json:"text"`
}

func ExampleStorage() {
	reg := objects.NewRegistry()
	objects.RegisterIn(reg, "Room", func() *struct{} { return new(struct{}) },
		objects.Method("Demo", func(_ *struct{}, ctx *objects.Context, _ struct{}) (string, error) {
			st := ctx.Storage()
			var out strings.Builder

			// Typed values, stored as msgpack; keys are ordered by their bytes.
			if err := st.PutMany(map[string]any{
				"msg/001": Message{"ann", "hi"},
				"msg/002": Message{"bob", "hello"},
				"msg/003": Message{"ann", "bye"},
				"topic":   "greetings",
			}); err != nil {
				return "", err
			}
			topic, _, _ := objects.GetAs[string](st, "topic")
			fmt.Fprintf(&out, "topic: %s\n", topic)

			// A range, newest first.
			msgs, err := objects.ListAs[Message](st, objects.ListOptions{Prefix: "msg/", Reverse: true, Limit: 2})
			if err != nil {
				return "", err
			}
			for _, m := range msgs {
				fmt.Fprintf(&out, "%s %s: %s\n", m.Key, m.Value.Author, m.Value.Text)
			}

			// A transaction that fails leaves nothing behind.
			err = st.Transaction(func(st *objects.Storage) error {
				if _, err := st.Delete("topic"); err != nil {
					return err
				}
				return fmt.Errorf("changed my mind")
			})
			_, stillThere, _ := objects.GetAs[string](st, "topic")
			fmt.Fprintf(&out, "transaction: %v; topic kept: %v\n", err, stillThere)

			// Limits are typed errors, checked before anything is buffered.
			err = st.Put(strings.Repeat("k", objects.MaxKeySize+1), 1)
			fmt.Fprintf(&out, "long key: %v\n", err != nil && errors.Is(err, objects.ErrKeyTooLarge))

			// Everything above commits as one command when the handler returns.
			return out.String(), nil
		}),
	)
	loc, stop := objects.TestingLocator()
	defer stop()
	rt := objects.NewRuntime(reg, loc, objects.Options{})
	defer rt.Close()
	res, err := rt.Call(context.Background(), objects.Request{
		Class: "Room", ID: objid.FromName("Room", "lobby"), Method: "Demo", JSON: true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	var s string
	if err := json.Unmarshal(res, &s); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(s)
	// Output:
	// topic: greetings
	// msg/003 ann: bye
	// msg/002 bob: hello
	// transaction: changed my mind; topic kept: true
	// long key: true
}
