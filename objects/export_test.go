package objects

import "os"

// TestingLocator returns a Locator for the godoc examples: one in-memory group over a real
// fsm store in a temporary directory (the test harness; never shipped). stop removes it.
func TestingLocator() (loc Locator, stop func()) {
	dir, err := os.MkdirTemp("", "objects-example")
	if err != nil {
		panic(err)
	}
	g, err := newMemGroupIn(dir)
	if err != nil {
		panic(err)
	}
	return oneGroup{g}, func() {
		g.close()
		_ = os.RemoveAll(dir)
	}
}
