package objects

import (
	"context"
	"time"

	"github.com/duro-db/duro/internal/objid"
)

// Context is what a handler (or Init) gets besides its object and arguments: the object's
// identity, its Storage, and the caller's context.Context (deadline, cancellation), which
// it embeds. A Context is valid only until the handler returns; do not keep it or hand it
// to goroutines that outlive the call.
type Context struct {
	context.Context
	id    objid.ID
	name  string
	class string
	now   time.Time
	st    *Storage
}

// ID returns the object's ID.
func (c *Context) ID() objid.ID { return c.id }

// Name returns the object's name when the caller addressed it by name (the ID was minted
// from that name), else "".
func (c *Context) Name() string { return c.name }

// Class returns the object's class name.
func (c *Context) Class() string { return c.class }

// Storage returns the object's transactional storage for this call.
func (c *Context) Storage() *Storage { return c.st }

// Now returns the time the call started, from the Runtime's clock (Options.Now). It is also
// the log time of the call's command; use it rather than time.Now so tests can fix time.
func (c *Context) Now() time.Time { return c.now }
