package examples

import "github.com/duro-db/duro/objects"

// Register is a string value; a register never written holds "".
type Register struct{}

// RegisterValue is what Get and Put return.
type RegisterValue struct {
	Value string `json:"value"`
}

// PutArgs are the arguments of Register.Put.
type PutArgs struct {
	Value string `json:"value"`
}

// CASArgs are the arguments of Register.CompareAndSet.
type CASArgs struct {
	Expect string `json:"expect"`
	Value  string `json:"value"`
}

// CASResult says whether CompareAndSet swapped, and the value after it.
type CASResult struct {
	OK      bool   `json:"ok"`
	Current string `json:"current"`
}

// Get returns the value.
func (*Register) Get(ctx *objects.Context, _ struct{}) (RegisterValue, error) {
	v, _, err := objects.GetAs[string](ctx.Storage(), "value")
	return RegisterValue{v}, err
}

// Put sets the value and returns it.
func (*Register) Put(ctx *objects.Context, in PutArgs) (RegisterValue, error) {
	return RegisterValue(in), ctx.Storage().Put("value", in.Value)
}

// CompareAndSet sets the value to in.Value if it is in.Expect.
func (*Register) CompareAndSet(ctx *objects.Context, in CASArgs) (CASResult, error) {
	cur, _, err := objects.GetAs[string](ctx.Storage(), "value")
	if err != nil {
		return CASResult{}, err
	}
	if cur != in.Expect {
		return CASResult{OK: false, Current: cur}, nil
	}
	return CASResult{OK: true, Current: in.Value}, ctx.Storage().Put("value", in.Value)
}

func registerRegister(r *objects.Registry) {
	objects.RegisterIn(r, "Register", func() *Register { return new(Register) },
		objects.Method("Get", (*Register).Get),
		objects.Method("Put", (*Register).Put),
		objects.Method("CompareAndSet", (*Register).CompareAndSet),
	)
}
