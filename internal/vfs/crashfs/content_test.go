package crashfs

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// content behaves as a plain byte slice under random writes and resizes, and writes
// the same bytes to a file.
func TestContentMatchesBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 200 {
		var c content
		var want []byte
		for range 20 {
			off := int64(rng.IntN(5 * page))
			if rng.IntN(4) == 0 {
				c.resize(off)
				if int64(len(want)) > off {
					want = want[:off]
				} else {
					want = append(want, make([]byte, off-int64(len(want)))...)
				}
				continue
			}
			b := make([]byte, rng.IntN(2*page))
			if rng.IntN(3) > 0 {
				for i := range b {
					b[i] = byte(1 + rng.IntN(255))
				}
			}
			c.write(off, b)
			if end := off + int64(len(b)); int64(len(want)) < end {
				want = append(want, make([]byte, end-int64(len(want)))...)
			}
			copy(want[off:], b)
		}
		if got := c.read(0, c.size); c.size != int64(len(want)) || !bytes.Equal(got, want) {
			t.Fatalf("round %d: content of %d bytes differs from the model's %d", round, c.size, len(want))
		}
		path := filepath.Join(t.TempDir(), "f")
		if err := c.writeFile(path); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("round %d: file differs from the content: %v", round, err)
		}
	}
}
