package objects

import (
	"encoding/binary"
	"fmt"
)

// maxDepth bounds the nesting of arrays and maps in arguments and values. The msgpack
// decoder recurses once per level, and a deep enough input exhausts the goroutine stack,
// which is fatal, not a recoverable panic.
const maxDepth = 100

// checkMsgpack verifies that b is exactly one well-formed msgpack value whose declared
// lengths fit in b and whose nesting is at most maxDepth, in time linear in len(b).
//
// It exists because msgpack v5 allocates what a header declares before reading the
// elements when decoding into interface values (make([]any, 0, n), make(map[string]any,
// n)): five bytes claiming 2³² elements would make it ask for 64 GiB, a fatal error that
// recover cannot catch. After this check every declared count is at most len(b), since
// each element takes at least one byte.
func checkMsgpack(b []byte) error {
	pending := make([]int, 0, 8) // items still to read in each open array or map
	i := 0
	need := func(n int) error {
		if n < 0 || n > len(b)-i {
			return fmt.Errorf("msgpack: length %d at offset %d exceeds the %d bytes left", n, i, len(b)-i)
		}
		return nil
	}
	uintN := func(width int) (int, error) {
		if err := need(width); err != nil {
			return 0, err
		}
		var v uint64
		switch width {
		case 1:
			v = uint64(b[i])
		case 2:
			v = uint64(binary.BigEndian.Uint16(b[i:]))
		case 4:
			v = uint64(binary.BigEndian.Uint32(b[i:]))
		}
		i += width
		if v > uint64(len(b)) { // also keeps the int conversion below in range
			return 0, fmt.Errorf("msgpack: length %d at offset %d exceeds the input", v, i)
		}
		return int(v), nil
	}
	values := 1 // values still to read at the current level (the top level has one)
	for {
		for values == 0 {
			if len(pending) == 0 {
				if i != len(b) {
					return fmt.Errorf("msgpack: %d trailing bytes after the value", len(b)-i)
				}
				return nil
			}
			values = pending[len(pending)-1]
			pending = pending[:len(pending)-1]
		}
		values--
		if err := need(1); err != nil {
			return err
		}
		c := b[i]
		i++
		skip, items, err := 0, -1, error(nil)
		switch {
		case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3: // fixints, nil, bools
		case c <= 0x8f: // fixmap
			items = 2 * int(c&0x0f)
		case c <= 0x9f: // fixarray
			items = int(c & 0x0f)
		case c <= 0xbf: // fixstr
			skip = int(c & 0x1f)
		case c == 0xc4, c == 0xd9: // bin8, str8
			skip, err = uintN(1)
		case c == 0xc5, c == 0xda: // bin16, str16
			skip, err = uintN(2)
		case c == 0xc6, c == 0xdb: // bin32, str32
			skip, err = uintN(4)
		case c == 0xc7: // ext8: length, type, data
			skip, err = uintN(1)
			skip++
		case c == 0xc8:
			skip, err = uintN(2)
			skip++
		case c == 0xc9:
			skip, err = uintN(4)
			skip++
		case c == 0xca:
			skip = 4
		case c == 0xcb:
			skip = 8
		case c >= 0xcc && c <= 0xd3: // uint8..64, int8..64
			skip = 1 << ((c - 0xcc) & 3)
		case c >= 0xd4 && c <= 0xd8: // fixext1..16: type and 2^k data bytes
			skip = 1 + 1<<(c-0xd4)
		case c == 0xdc: // array16
			items, err = uintN(2)
		case c == 0xdd: // array32
			items, err = uintN(4)
		case c == 0xde: // map16
			items, err = uintN(2)
			items *= 2
		case c == 0xdf: // map32
			items, err = uintN(4)
			items *= 2
		default: // 0xc1 is never used
			return fmt.Errorf("msgpack: invalid code 0x%02x at offset %d", c, i-1)
		}
		if err != nil {
			return err
		}
		if err := need(skip); err != nil {
			return err
		}
		i += skip
		if items > 0 {
			if err := need(items); err != nil { // each item takes at least one byte
				return err
			}
			if len(pending) >= maxDepth {
				return fmt.Errorf("msgpack: nesting deeper than %d", maxDepth)
			}
			pending = append(pending, values)
			values = items
		}
	}
}
