package examples

import (
	"fmt"

	"github.com/duro-db/duro/objects"
)

// Bank is a fixed set of accounts in one object, moved between by Transfer: the total
// never changes, which is what makes it a test of atomic, isolated writes. Every account
// starts with BankInitialBalance; accounts are numbered 0..BankAccounts-1.
type Bank struct{}

// The shape of every Bank.
const (
	BankAccounts       = 8
	BankInitialBalance = 100
)

// TransferArgs are the arguments of Bank.Transfer.
type TransferArgs struct {
	From   int   `json:"from"`
	To     int   `json:"to"`
	Amount int64 `json:"amount"`
}

// TransferResult says whether the transfer happened; it does not when From holds less
// than Amount.
type TransferResult struct {
	OK bool `json:"ok"`
}

func bankKey(a int) string { return fmt.Sprintf("acct/%02d", a) }

func balance(st *objects.Storage, a int) (int64, error) {
	v, ok, err := objects.GetAs[int64](st, bankKey(a))
	if !ok {
		v = BankInitialBalance
	}
	return v, err
}

// Transfer moves Amount from one account to another if From can cover it. The two
// writes commit together or not at all: a call's writes are one Raft command.
func (*Bank) Transfer(ctx *objects.Context, in TransferArgs) (TransferResult, error) {
	if in.From < 0 || in.From >= BankAccounts || in.To < 0 || in.To >= BankAccounts || in.From == in.To {
		return TransferResult{}, fmt.Errorf("bank: bad accounts %d → %d", in.From, in.To)
	}
	if in.Amount <= 0 {
		return TransferResult{}, fmt.Errorf("bank: amount %d is not positive", in.Amount)
	}
	st := ctx.Storage()
	from, err := balance(st, in.From)
	if err != nil {
		return TransferResult{}, err
	}
	if from < in.Amount {
		return TransferResult{OK: false}, nil
	}
	to, err := balance(st, in.To)
	if err != nil {
		return TransferResult{}, err
	}
	return TransferResult{OK: true}, st.PutMany(map[string]any{
		bankKey(in.From): from - in.Amount,
		bankKey(in.To):   to + in.Amount,
	})
}

// Read returns every account's balance, indexed by account number.
func (*Bank) Read(ctx *objects.Context, _ struct{}) ([]int64, error) {
	out := make([]int64, BankAccounts)
	for a := range out {
		v, err := balance(ctx.Storage(), a)
		if err != nil {
			return nil, err
		}
		out[a] = v
	}
	return out, nil
}

func registerBank(r *objects.Registry) {
	objects.RegisterIn(r, "Bank", func() *Bank { return new(Bank) },
		objects.Method("Transfer", (*Bank).Transfer),
		objects.Method("Read", (*Bank).Read),
	)
}
