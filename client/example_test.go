package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/duro-db/duro/client"
)

// A counter object: Add returns the new value. The node must serve a class "Counter"
// (the stock duro binary does).
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	visits := c.Namespace("Counter").GetByName("visits")
	n, err := client.Call[int64](ctx, visits, "Add", 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("visits:", n)
}

// Struct arguments and results are encoded with their json tags.
func ExampleStub_Call() {
	ctx := context.Background()
	c, err := client.Dial(ctx, []string{"127.0.0.1:7001"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	type acquire struct {
		Owner string `json:"owner"`
		TTLms int64  `json:"ttl_ms"`
	}
	var got struct {
		OK     bool   `json:"ok"`
		Token  uint64 `json:"token"`
		Holder string `json:"holder"`
	}
	lock := c.Namespace("Lock").GetByName("nightly-report")
	if err := lock.Call(ctx, "Acquire", acquire{Owner: "worker-7", TTLms: 30_000}, &got); err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.OK, got.Token, got.Holder)
}

// Typed errors say what went wrong; IsRetryable says whether calling again may help.
func ExampleIsRetryable() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, []string{"127.0.0.1:7001"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	err = c.Namespace("Counter").GetByName("x").Call(ctx, "Add", 1, nil)
	var he *client.HandlerError
	switch {
	case err == nil:
	case errors.As(err, &he):
		fmt.Println("the method refused:", he.Message)
	case errors.Is(err, client.ErrUnknownOutcome):
		fmt.Println("may or may not have happened; do not blindly repeat a non-idempotent call")
	case client.IsRetryable(err):
		fmt.Println("did not happen; try again later")
	default:
		fmt.Println("failed:", err)
	}
}

// IDs of objects created on demand: keep the printed form, parse it back later.
func ExampleNamespace_NewUniqueID() {
	ctx := context.Background()
	c, err := client.Dial(ctx, []string{"127.0.0.1:7001"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	rooms := c.Namespace("ChatLog")
	id := rooms.NewUniqueID()
	saved := id.String()

	again, err := rooms.IDFromString(saved)
	if err != nil {
		log.Fatal(err) // ErrInvalidID, or ErrWrongClass for another class's ID
	}
	_, err = rooms.Get(again).CallJSON(ctx, "Append", []byte(`{"text":"hello","author":"ann"}`))
	if err != nil {
		log.Fatal(err)
	}
}
