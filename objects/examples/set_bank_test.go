package examples

import (
	"slices"
	"testing"
)

func TestSet(t *testing.T) {
	e := newEnv(t)
	for _, v := range []int64{3, 1, 3, 20} {
		e.must("Set", "s", "Add", v, nil)
	}
	var got []int64
	e.must("Set", "s", "Read", nil, &got)
	slices.Sort(got)
	if want := []int64{1, 3, 20}; !slices.Equal(got, want) {
		t.Fatalf("Read = %v, want %v", got, want)
	}
}

func TestBank(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		in     TransferArgs
		ok     bool
		errs   bool
		after0 int64
	}{
		{"moves money", TransferArgs{From: 0, To: 1, Amount: 30}, true, false, 70},
		{"refuses an overdraft", TransferArgs{From: 0, To: 2, Amount: 71}, false, false, 70},
		{"rejects same account", TransferArgs{From: 0, To: 0, Amount: 1}, false, true, 70},
		{"rejects a bad account", TransferArgs{From: 0, To: BankAccounts, Amount: 1}, false, true, 70},
		{"rejects a non-positive amount", TransferArgs{From: 0, To: 1, Amount: 0}, false, true, 70},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res TransferResult
			err := e.call("Bank", "b", "Transfer", tt.in, &res)
			if (err != nil) != tt.errs {
				t.Fatalf("err = %v, want error %v", err, tt.errs)
			}
			if res.OK != tt.ok {
				t.Fatalf("OK = %v, want %v", res.OK, tt.ok)
			}
			var bal []int64
			e.must("Bank", "b", "Read", nil, &bal)
			var total int64
			for _, b := range bal {
				total += b
			}
			if total != BankAccounts*BankInitialBalance || bal[0] != tt.after0 {
				t.Fatalf("balances %v: total %d, account 0 = %d; want total %d, account 0 = %d",
					bal, total, bal[0], BankAccounts*BankInitialBalance, tt.after0)
			}
		})
	}
}
