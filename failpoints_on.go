//go:build failpoints

package duro

import "os"

// failpointsBuilt says whether this build has the fault switches.
const failpointsBuilt = true

// loadFaults reads the fault switches from the environment; nil when none is set.
func loadFaults() (*faultSwitches, error) {
	f, err := parseFaults(os.Getenv(EnvFailpoints), os.Getenv(EnvUnsafe))
	if err != nil || f == (faultSwitches{}) {
		return nil, err // a typo must not silently run a fault test without its fault
	}
	return &f, nil
}
