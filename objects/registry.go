package objects

import (
	"fmt"
	"sort"
	"sync"
)

// Registry holds classes: named object types and their methods. Register classes at
// program start (typically in init functions); a Runtime looks classes up on every call.
// A Registry is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	classes map[string]*class
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry { return &Registry{classes: make(map[string]*class)} }

// DefaultRegistry is the Registry that Register adds to and that the duro server serves.
var DefaultRegistry = NewRegistry()

// Initer is implemented by object types that prepare an instance before it takes calls.
// Init runs once per activation (the first event after the instance was created, evicted
// or reset), before any other event; its Storage writes commit as their own command, ahead
// of the first call's. If Init returns an error or panics, the triggering call fails with a
// *HandlerError and the next call tries a fresh activation.
type Initer interface {
	Init(ctx *Context) error
}

// MethodDef is one method of a class of object type T, made by Method.
type MethodDef[T any] struct{ m *method }

// Method defines a method called name whose handler fn takes the object, the call's
// Context and the decoded arguments, and returns the result or an error.
//
// In and Out are any types msgpack and encoding/json can encode; struct fields take their
// names from `json` tags in both formats. Arguments that do not decode into In (wrong
// types, unknown fields) fail the call with ErrBadArgument before fn runs. An error
// returned by fn reaches the caller as a *HandlerError and discards the call's writes.
func Method[T, In, Out any](name string, fn func(obj *T, ctx *Context, in In) (Out, error)) MethodDef[T] {
	if fn == nil {
		panic(fmt.Sprintf("objects: method %q has a nil handler", name))
	}
	return MethodDef[T]{m: &method{
		name: name,
		decode: func(b []byte, isJSON bool) (any, error) {
			var in In
			if err := decodeArgs(b, isJSON, &in); err != nil {
				return nil, err
			}
			return in, nil
		},
		invoke: func(obj any, ctx *Context, in any) (any, error) {
			arg, _ := in.(In) // in is nil only when In is an interface type: its zero value
			return fn(obj.(*T), ctx, arg)
		},
	}}
}

// Register adds a class to DefaultRegistry; see RegisterIn.
func Register[T any](name string, newFn func() *T, methods ...MethodDef[T]) {
	RegisterIn(DefaultRegistry, name, newFn, methods...)
}

// RegisterIn adds the class name to r: newFn makes a fresh instance (called on each
// activation, on the object's executor), methods are its callable methods. If *T
// implements Initer, Init runs on each activation; if it implements Alarmer, Alarm runs
// when the object's alarm is due.
//
// Alarms are found by object ID alone, and an ID names its class only through a 32-bit
// checksum of (class, ID body): the runtime finds an alarm's class by checking the ID
// against every registered class. The checksum depends on the ID, so no two names collide
// for every ID, and there is nothing to refuse here; for the rare ID (about 2⁻³² per
// other class) that passes two classes, the class is stored next to its alarm.
//
// RegisterIn panics on a programming error: an invalid or duplicate class or method name,
// a nil newFn, or no methods. Call it at program start.
func RegisterIn[T any](r *Registry, name string, newFn func() *T, methods ...MethodDef[T]) {
	if err := checkName(name); err != nil {
		panic(fmt.Sprintf("objects: class name %q: %v", name, err))
	}
	if newFn == nil {
		panic(fmt.Sprintf("objects: class %q has a nil constructor", name))
	}
	if len(methods) == 0 {
		panic(fmt.Sprintf("objects: class %q has no methods", name))
	}
	var zero *T
	_, hasInit := any(zero).(Initer)
	_, hasAlarm := any(zero).(Alarmer)
	c := &class{
		name:     name,
		newFn:    func() any { return newFn() },
		methods:  make(map[string]*method, len(methods)),
		hasInit:  hasInit,
		hasAlarm: hasAlarm,
	}
	for _, md := range methods {
		if md.m == nil {
			panic(fmt.Sprintf("objects: class %q: zero MethodDef (use Method)", name))
		}
		if err := checkName(md.m.name); err != nil {
			panic(fmt.Sprintf("objects: class %q: method name %q: %v", name, md.m.name, err))
		}
		if _, dup := c.methods[md.m.name]; dup {
			panic(fmt.Sprintf("objects: class %q: method %q registered twice", name, md.m.name))
		}
		c.methods[md.m.name] = md.m
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.classes[name]; dup {
		panic(fmt.Sprintf("objects: class %q registered twice", name))
	}
	r.classes[name] = c
}

// Classes returns the registered class names, sorted.
func (r *Registry) Classes() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.classes))
	for n := range r.classes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Methods returns the method names of class, sorted, or nil if there is no such class.
func (r *Registry) Methods(class string) []string {
	c := r.lookup(class)
	if c == nil {
		return nil
	}
	names := make([]string, 0, len(c.methods))
	for n := range c.methods {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (r *Registry) lookup(name string) *class {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.classes[name]
}

// maxNameLen bounds class and method names: they travel in every request.
const maxNameLen = 128

// checkName accepts 1..maxNameLen characters from [A-Za-z0-9_.-]: names appear in URLs,
// CLI arguments and metrics labels.
func checkName(s string) error {
	if len(s) == 0 || len(s) > maxNameLen {
		return fmt.Errorf("must be 1 to %d characters", maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("character %q not in [A-Za-z0-9_.-]", c)
		}
	}
	return nil
}

// class is a registered object type.
type class struct {
	name     string
	newFn    func() any // returns a *T
	methods  map[string]*method
	hasInit  bool
	hasAlarm bool // *T implements Alarmer
}

// method is a registered method, with its types erased.
type method struct {
	name   string
	decode func(args []byte, isJSON bool) (any, error) // error wraps ErrBadArgument
	invoke func(obj any, ctx *Context, in any) (any, error)
}
