package crashfs

import (
	"bytes"
	"os"
)

// page is the unit in which content is kept: pages that hold only zeros are not kept,
// so a preallocated 64 MiB WAL segment costs what was written into it.
const page = 4096

// content is a file's bytes, sparse.
type content struct {
	size  int64
	pages map[int64][]byte // page number -> page; absent: zeros
}

var zeroPage [page]byte

func newContent(b []byte) content {
	c := content{pages: map[int64][]byte{}}
	c.write(0, b)
	return c
}

func (c content) clone() content {
	out := content{size: c.size, pages: make(map[int64][]byte, len(c.pages))}
	for n, p := range c.pages {
		out.pages[n] = bytes.Clone(p)
	}
	return out
}

// write writes b at off, growing the content as a file grows.
func (c *content) write(off int64, b []byte) {
	if c.pages == nil {
		c.pages = map[int64][]byte{}
	}
	for len(b) > 0 {
		n, at := off/page, off%page
		k := min(int64(len(b)), page-at)
		p := c.pages[n]
		if p == nil {
			if bytes.Equal(b[:k], zeroPage[:k]) {
				off, b = off+k, b[k:]
				continue
			}
			p = make([]byte, page)
			c.pages[n] = p
		}
		copy(p[at:], b[:k])
		off, b = off+k, b[k:]
	}
	c.size = max(c.size, off)
}

// resize makes the content n bytes long, as truncate(2) does.
func (c *content) resize(n int64) {
	if n < c.size {
		for pn, p := range c.pages {
			switch {
			case pn*page >= n:
				delete(c.pages, pn)
			case (pn+1)*page > n:
				clear(p[n-pn*page:])
			}
		}
	}
	c.size = n
}

// read returns the bytes in [off, off+n), zeros past the end.
func (c content) read(off, n int64) []byte {
	b := make([]byte, n)
	for i := int64(0); i < n; {
		pn, at := (off+i)/page, (off+i)%page
		k := min(n-i, page-at)
		if p := c.pages[pn]; p != nil {
			copy(b[i:i+k], p[at:at+k])
		}
		i += k
	}
	if off+n > c.size {
		clear(b[max(0, c.size-off):])
	}
	return b
}

// writeFile writes the content to a new file at path, sparse.
func (c content) writeFile(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	for n, p := range c.pages {
		if n*page >= c.size {
			continue
		}
		if _, err = f.WriteAt(p[:min(page, c.size-n*page)], n*page); err != nil {
			break
		}
	}
	if err == nil {
		err = f.Truncate(c.size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
