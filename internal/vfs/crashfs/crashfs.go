package crashfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/duro-db/duro/internal/vfs"
)

// ErrPowerCut is returned by every operation of an FS after its power was cut.
var ErrPowerCut = errors.New("crashfs: power cut")

// sector is the unit in which a pending write lands or not.
const sector = 512

// FS is a vfs.FS over the real files under a root directory that can simulate a power
// cut (see the package doc). It is safe for concurrent use; its operations are
// serialised.
type FS struct {
	root string

	mu      sync.Mutex
	rng     *rand.Rand
	keep    func() bool // whether a pending change lands in the image
	nothing bool        // KeepNothing: no pending change lands
	ops     int         // mutating operations begun
	cutAt   int         // cut during this operation; 0: not by count
	cutDst  string      // where CutAtOp writes the image
	cut     bool        // power is off
	cutErr  error       // the error writing the image, if any
	cutDone chan struct{}

	files   map[string]*inode // current names of files
	dirs    map[string]bool   // current directories
	durable namespace         // names as of the last SyncDir of each directory
	pending []nsOp            // namespace operations not yet durable, in order
}

type namespace struct {
	files map[string]*inode
	dirs  map[string]bool
}

// inode is one file's content, durable and pending.
type inode struct {
	durable content
	pending []dataOp
	// external files are written behind the FS's back; selfSynced ones by a writer
	// that fsyncs each commit itself.
	external, selfSynced bool
	name                 string // a current name, to read an external file's content
}

type dataOp struct {
	off  int64
	data []byte // nil: a size change to off
}

type nsKind uint8

const (
	nsCreate nsKind = iota + 1
	nsRemove
	nsRename
	nsMkdir
	nsRmdir
)

type nsOp struct {
	kind     nsKind
	path, to string
	ino      *inode
}

// dir is the directory whose SyncDir makes op durable.
func (op nsOp) dir() string {
	if op.kind == nsRename {
		return filepath.Dir(op.to)
	}
	return filepath.Dir(op.path)
}

// New returns an FS over root, which must exist. Files and directories already under
// it are taken as durable. Choices at a cut are drawn from rng.
func New(root string, rng *rand.Rand) (*FS, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	c := &FS{
		root:    root,
		rng:     rng,
		files:   map[string]*inode{},
		dirs:    map[string]bool{root: true},
		cutDone: make(chan struct{}),
	}
	c.keep = func() bool { return c.rng.IntN(2) == 0 }
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			c.dirs[p] = true
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		c.files[p] = &inode{durable: newContent(b), name: p}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.durable = namespace{files: maps(c.files), dirs: maps(c.dirs)}
	return c, nil
}

func maps[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Root returns the directory the FS stands over.
func (c *FS) Root() string { return c.root }

// KeepNothing makes a cut drop every pending change, as a disk that lost its whole
// write cache would: the harshest case, and a deterministic one.
func (c *FS) KeepNothing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keep = func() bool { return false }
	c.nothing = true
}

// Ops returns the number of mutating operations begun so far.
func (c *FS) Ops() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops
}

// CutAtOp arranges for power to fail during the n-th mutating operation from the FS's
// creation, writing the image into dst. Done reports when it has happened.
func (c *FS) CutAtOp(n int, dst string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cutAt, c.cutDst = n, dst
}

// Done is closed at the instant power is cut, before the image is written: whatever
// completes after it (a write by bbolt, which the FS does not see) is not in the image,
// so a test must not count it as acknowledged. Cut and Err wait for the image.
func (c *FS) Done() <-chan struct{} { return c.cutDone }

// Cut cuts power now, if it is still on, and writes the image into dst, a directory
// that must not exist yet. It returns the error writing the image, and reports whether
// this call cut it (false: it was already off, and the image is elsewhere).
func (c *FS) Cut(dst string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return false, c.cutErr
	}
	c.cutLocked(dst)
	return true, c.cutErr
}

// Err returns the error of writing the image, once power has been cut.
func (c *FS) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cutErr
}

// op begins a mutating operation: it fails once power is off, and cuts it if this is
// the operation to cut during. record runs first, to leave the operation's effect
// pending for the cut; then the caller performs it unless the returned error says
// otherwise. c.mu is held.
func (c *FS) op(record func()) error {
	if c.cut {
		return ErrPowerCut
	}
	c.ops++
	if c.cutAt != 0 && c.ops == c.cutAt {
		if record != nil {
			record()
		}
		c.cutLocked(c.cutDst)
		return ErrPowerCut
	}
	return nil
}

func (c *FS) cutLocked(dst string) {
	c.cut = true
	close(c.cutDone)
	c.cutErr = c.writeImage(dst)
}

// tracked reports whether name is under the root.
func (c *FS) tracked(name string) bool {
	return name == c.root || strings.HasPrefix(name, c.root+string(filepath.Separator))
}

func abs(name string) string {
	if p, err := filepath.Abs(name); err == nil {
		return p
	}
	return filepath.Clean(name)
}

// --- vfs.FS

var _ vfs.FS = (*FS)(nil)

func (c *FS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	name = abs(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return nil, ErrPowerCut
	}
	if !c.tracked(name) {
		f, err := vfs.Default.OpenFile(name, flag, perm)
		if err != nil {
			return nil, err
		}
		return &file{c: c, f: f, ino: &inode{}, untracked: true}, nil
	}
	ino := c.adopt(name)
	creates := ino == nil && flag&os.O_CREATE != 0
	truncates := ino != nil && flag&os.O_TRUNC != 0 && flag&(os.O_WRONLY|os.O_RDWR) != 0
	if creates {
		ino = &inode{name: name}
	}
	create := nsOp{kind: nsCreate, path: name, ino: ino}
	if creates || truncates {
		err := c.op(func() {
			if creates {
				c.pending = append(c.pending, create)
			} else {
				ino.pending = append(ino.pending, dataOp{off: 0})
			}
		})
		if err != nil {
			return nil, err
		}
	}
	f, err := vfs.Default.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if creates {
		c.files[name] = ino
		c.pending = append(c.pending, create)
	} else if truncates {
		ino.pending = append(ino.pending, dataOp{off: 0})
	}
	return &file{c: c, f: f, ino: ino, name: name}, nil
}

// adopt returns the inode of the file at name, taking a file that code outside the FS
// made under the root (raft's snapshot store, say) as durable as it is now. c.mu is held.
func (c *FS) adopt(name string) *inode {
	if ino := c.files[name]; ino != nil {
		return ino
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil
	}
	ino := &inode{durable: newContent(b), name: name}
	c.files[name], c.durable.files[name] = ino, ino
	return ino
}

func (c *FS) OpenDirect(name string) (vfs.File, error) {
	name = abs(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return nil, ErrPowerCut
	}
	f, err := vfs.Default.OpenDirect(name)
	if err != nil {
		return nil, err
	}
	ino := c.adopt(name)
	if ino == nil {
		_ = f.Close()
		return nil, fmt.Errorf("crashfs: %s: cannot read it", name)
	}
	return &file{c: c, f: f, ino: ino, name: name, direct: true}, nil
}

func (c *FS) OpenExternal(name string, flag int, perm os.FileMode, selfSynced bool) (*os.File, error) {
	name = abs(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return nil, ErrPowerCut
	}
	if !c.tracked(name) {
		return os.OpenFile(name, flag, perm)
	}
	ino := c.adopt(name)
	creates := ino == nil && flag&os.O_CREATE != 0
	if creates {
		ino = &inode{name: name}
		if err := c.op(func() { c.pending = append(c.pending, nsOp{kind: nsCreate, path: name, ino: ino}) }); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if creates {
		c.files[name] = ino
		c.pending = append(c.pending, nsOp{kind: nsCreate, path: name, ino: ino})
	}
	if ino != nil {
		// From now on the cut reads its content from the real file: writes
		// pending through the FS are part of that difference.
		ino.pending = nil
		ino.external, ino.selfSynced = true, selfSynced
	}
	return f, nil
}

func (c *FS) Remove(name string) error {
	name = abs(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.tracked(name) {
		if c.cut {
			return ErrPowerCut
		}
		return os.Remove(name)
	}
	kind := nsRemove
	if c.dirs[name] {
		kind = nsRmdir
	}
	if _, ok := c.files[name]; !ok && kind == nsRemove {
		if c.cut {
			return ErrPowerCut
		}
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if err := c.op(func() { c.pending = append(c.pending, nsOp{kind: kind, path: name}) }); err != nil {
		return err
	}
	if err := os.Remove(name); err != nil {
		return err
	}
	c.pending = append(c.pending, nsOp{kind: kind, path: name})
	delete(c.files, name)
	delete(c.dirs, name)
	return nil
}

func (c *FS) RemoveAll(name string) error {
	name = abs(name)
	c.mu.Lock()
	var victims []string
	for p := range c.files {
		if p == name || strings.HasPrefix(p, name+string(filepath.Separator)) {
			victims = append(victims, p)
		}
	}
	for p := range c.dirs {
		if p == name || strings.HasPrefix(p, name+string(filepath.Separator)) {
			victims = append(victims, p)
		}
	}
	c.mu.Unlock()
	// Deepest first, so each directory is empty when it goes.
	sort.Slice(victims, func(i, j int) bool { return len(victims[i]) > len(victims[j]) })
	for _, p := range victims {
		if err := c.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (c *FS) Rename(oldname, newname string) error {
	oldname, newname = abs(oldname), abs(newname)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.tracked(oldname) || !c.tracked(newname) {
		if c.cut {
			return ErrPowerCut
		}
		return os.Rename(oldname, newname)
	}
	ino := c.files[oldname]
	if ino == nil {
		if c.cut {
			return ErrPowerCut
		}
		return fmt.Errorf("crashfs: rename %s: not a file made through the FS", oldname)
	}
	op := nsOp{kind: nsRename, path: oldname, to: newname, ino: ino}
	if err := c.op(func() { c.pending = append(c.pending, op) }); err != nil {
		return err
	}
	if err := os.Rename(oldname, newname); err != nil {
		return err
	}
	c.pending = append(c.pending, op)
	delete(c.files, oldname)
	c.files[newname] = ino
	ino.name = newname
	return nil
}

func (c *FS) MkdirAll(name string, perm os.FileMode) error {
	name = abs(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return ErrPowerCut
	}
	if !c.tracked(name) {
		return os.MkdirAll(name, perm)
	}
	var missing []string
	for p := name; !c.dirs[p] && c.tracked(p); p = filepath.Dir(p) {
		missing = append(missing, p)
	}
	slices.Reverse(missing)
	for _, p := range missing {
		if err := c.op(func() { c.pending = append(c.pending, nsOp{kind: nsMkdir, path: p}) }); err != nil {
			return err
		}
		if err := os.Mkdir(p, perm); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		c.pending = append(c.pending, nsOp{kind: nsMkdir, path: p})
		c.dirs[p] = true
	}
	return nil
}

func (c *FS) ReadDir(name string) ([]os.DirEntry, error) {
	c.mu.Lock()
	cut := c.cut
	c.mu.Unlock()
	if cut {
		return nil, ErrPowerCut
	}
	return os.ReadDir(name)
}

func (c *FS) Stat(name string) (os.FileInfo, error) {
	c.mu.Lock()
	cut := c.cut
	c.mu.Unlock()
	if cut {
		return nil, ErrPowerCut
	}
	return os.Stat(name)
}

func (c *FS) SyncDir(name string) error {
	name = abs(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.op(nil); err != nil {
		return err
	}
	// The directory's operations become durable, in order, each on the durable names.
	rest := c.pending[:0]
	for _, op := range c.pending {
		if op.dir() == name {
			c.durable.apply(op)
		} else {
			rest = append(rest, op)
		}
	}
	clear(c.pending[len(rest):])
	c.pending = rest
	return nil
}

func (ns namespace) apply(op nsOp) {
	switch op.kind {
	case nsCreate:
		ns.files[op.path] = op.ino
	case nsRemove:
		delete(ns.files, op.path)
	case nsRename:
		if ns.files[op.path] == op.ino {
			delete(ns.files, op.path)
		}
		ns.files[op.to] = op.ino
	case nsMkdir:
		ns.dirs[op.path] = true
	case nsRmdir:
		delete(ns.dirs, op.path)
	}
}

// --- files

type file struct {
	c         *FS
	f         vfs.File
	ino       *inode
	name      string
	direct    bool
	untracked bool
}

func (f *file) Name() string               { return f.f.Name() }
func (f *file) Stat() (os.FileInfo, error) { return f.f.Stat() }
func (f *file) Close() error               { return f.f.Close() }
func (f *file) ReadAt(b []byte, off int64) (int, error) {
	f.c.mu.Lock()
	cut := f.c.cut
	f.c.mu.Unlock()
	if cut {
		return 0, ErrPowerCut
	}
	return f.f.ReadAt(b, off)
}

func (f *file) WriteAt(b []byte, off int64) (int, error) {
	if f.untracked {
		return f.f.WriteAt(b, off)
	}
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	w := dataOp{off: off, data: slices.Clone(b)}
	if err := c.op(func() { f.ino.pending = append(f.ino.pending, w) }); err != nil {
		return 0, err
	}
	n, err := f.f.WriteAt(b, off)
	if n > 0 {
		f.ino.pending = append(f.ino.pending, dataOp{off: off, data: w.data[:n]})
	}
	if f.direct && err == nil {
		// O_DSYNC: durable as it returns (and the writes before it with it: no
		// file is written both ways at once).
		f.ino.settle()
	}
	return n, err
}

func (f *file) Sync() error     { return f.sync() }
func (f *file) Datasync() error { return f.sync() }

// sync makes the file's content durable in the FS's books; the real file is not synced,
// since what is durable is what the FS says it is, and real fsyncs would only slow tests.
func (f *file) sync() error {
	if f.untracked {
		return f.f.Sync()
	}
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.op(nil); err != nil {
		return err
	}
	if f.ino.external {
		b, err := os.ReadFile(f.ino.name)
		if err != nil {
			return err
		}
		f.ino.durable = newContent(b)
		return nil
	}
	f.ino.settle()
	return nil
}

func (f *file) Allocate(size int64) error {
	return f.resize(size, true, func() error { return f.f.Allocate(size) })
}

func (f *file) Truncate(size int64) error {
	return f.resize(size, false, func() error { return f.f.Truncate(size) })
}

func (f *file) resize(size int64, grow bool, do func() error) error {
	if f.untracked {
		return do()
	}
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := f.f.Stat()
	if err != nil {
		return err
	}
	if grow && size <= st.Size() {
		return do() // nothing that a cut could take back
	}
	r := dataOp{off: size}
	if err := c.op(func() { f.ino.pending = append(f.ino.pending, r) }); err != nil {
		return err
	}
	if err := do(); err != nil {
		return err
	}
	f.ino.pending = append(f.ino.pending, r)
	return nil
}

// settle makes every pending change durable, in place: a WAL segment is settled at every
// commit, and must not be copied each time.
func (ino *inode) settle() {
	for _, op := range ino.pending {
		if op.data == nil {
			ino.durable.resize(op.off)
		} else {
			ino.durable.write(op.off, op.data)
		}
	}
	ino.pending = nil
}

// image returns the inode's content with each pending change applied where keep says
// so: writes sector by sector, size changes whole.
func (ino *inode) image(keep func() bool) content {
	c := ino.durable.clone()
	applyPending(&c, ino.pending, keep)
	return c
}

func applyPending(c *content, pending []dataOp, keep func() bool) {
	for _, op := range pending {
		if op.data == nil {
			if keep() {
				c.resize(op.off)
			}
			continue
		}
		end := op.off + int64(len(op.data))
		for s := op.off; s < end; {
			next := min((s/sector+1)*sector, end)
			if keep() {
				c.write(s, op.data[s-op.off:next-op.off])
			}
			s = next
		}
	}
}

// externalImage returns an external file's content at the cut.
func (ino *inode) externalImage(keep func() bool) (content, error) {
	b, err := os.ReadFile(ino.name)
	if err != nil {
		return content{}, err
	}
	now := newContent(b)
	if ino.selfSynced {
		return now, nil
	}
	c := ino.durable.clone()
	size := c.size
	if now.size != size && keep() {
		size = now.size
	}
	for s := int64(0); s < max(c.size, now.size); s += sector {
		if !bytes.Equal(c.read(s, sector), now.read(s, sector)) && keep() {
			c.write(s, now.read(s, sector))
		}
	}
	c.resize(size)
	return c, nil
}

// writeImage writes what a machine restarted after the cut would find into dst.
func (c *FS) writeImage(dst string) error {
	if dst == "" {
		return errors.New("crashfs: no directory for the image")
	}
	ns := namespace{files: maps(c.durable.files), dirs: maps(c.durable.dirs)}
	// Each directory's pending operations land as a prefix.
	count := map[string]int{}
	for _, op := range c.pending {
		count[op.dir()]++
	}
	land := map[string]int{}
	for d, n := range count {
		if !c.nothing {
			land[d] = c.rng.IntN(n + 1)
		}
	}
	for _, op := range c.pending {
		d := op.dir()
		if land[d] > 0 {
			land[d]--
			ns.apply(op)
		}
	}
	// A name is there if each directory above it is: one the FS made must have landed;
	// one made by code outside the FS is taken as it is.
	reachable := func(p string) bool {
		for d := filepath.Dir(p); d != c.root; d = filepath.Dir(d) {
			if filepath.Dir(d) == d {
				return false
			}
			if (c.dirs[d] || c.durable.dirs[d]) && !ns.dirs[d] {
				return false
			}
		}
		return true
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	var dirs []string
	for d := range ns.dirs {
		if d != c.root && reachable(d) {
			dirs = append(dirs, d)
		}
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(dst, c.rel(d)), 0o700); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(ns.files))
	for p := range ns.files {
		names = append(names, p)
	}
	sort.Strings(names)
	// Files that code outside the FS made and the FS never opened are copied as they
	// are now: the FS cannot know what of them was durable.
	err := filepath.WalkDir(c.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == c.root {
			return err
		}
		if d.IsDir() {
			if !c.dirs[p] && reachable(p) {
				return os.MkdirAll(filepath.Join(dst, c.rel(p)), 0o700)
			}
			return nil
		}
		if _, known := c.files[p]; known || !reachable(p) {
			return nil
		}
		if _, durable := c.durable.files[p]; durable {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, c.rel(p)), b, 0o600)
	})
	if err != nil {
		return err
	}
	for _, p := range names {
		if !reachable(p) {
			continue
		}
		ino := ns.files[p]
		var img content
		if ino.external {
			img, err = ino.externalImage(c.keep)
		} else {
			img = ino.image(c.keep)
		}
		if err != nil {
			return fmt.Errorf("crashfs: image of %s: %w", p, err)
		}
		if err := img.writeFile(filepath.Join(dst, c.rel(p))); err != nil {
			return err
		}
	}
	return nil
}

func (c *FS) rel(p string) string {
	r, err := filepath.Rel(c.root, p)
	if err != nil {
		panic(fmt.Sprintf("crashfs: %s is not under %s", p, c.root))
	}
	return r
}
