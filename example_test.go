package duro_test

import (
	"context"
	"log"
	"os"
	"os/signal"

	"github.com/duro-db/duro"
	"github.com/duro-db/duro/objects"
)

type greeter struct{}

// A program of its own that runs a node serving its own class.
func ExampleStart() {
	reg := objects.NewRegistry()
	objects.RegisterIn(reg, "Greeter", func() *greeter { return &greeter{} },
		objects.Method("Hello", func(_ *greeter, ctx *objects.Context, name string) (string, error) {
			n, _, err := objects.GetAs[int](ctx.Storage(), "greeted")
			if err != nil {
				return "", err
			}
			return "hello " + name, ctx.Storage().Put("greeted", n+1)
		}),
	)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	s, err := duro.Start(ctx, duro.Config{
		ID:      "n1",
		DataDir: "/var/lib/duro",
		Peers: []duro.Peer{
			{ID: "n1", Addr: "10.0.0.1:7000"},
			{ID: "n2", Addr: "10.0.0.2:7000"},
			{ID: "n3", Addr: "10.0.0.3:7000"},
		},
		Registry: reg,
	})
	if err != nil {
		log.Fatal(err)
	}
	<-ctx.Done()
	if err := s.Shutdown(context.Background()); err != nil {
		log.Print(err)
	}
}
