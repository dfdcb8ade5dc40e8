//go:build !failpoints

package duro

import (
	"fmt"
	"os"
)

// failpointsBuilt says whether this build has the fault switches.
const failpointsBuilt = false

// loadFaults refuses the fault switches: this build has none (failpoints.go).
func loadFaults() (*faultSwitches, error) {
	for _, env := range []string{EnvFailpoints, EnvUnsafe} {
		if os.Getenv(env) != "" {
			return nil, fmt.Errorf("duro: %s is set, but this duro was built without -tags failpoints", env)
		}
	}
	return nil, nil
}
