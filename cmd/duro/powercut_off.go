//go:build !failpoints

package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/duro-db/duro"
)

const failpointsBuilt = false

// simulatePowerCut refuses DURO_POWERCUT: the simulated disk is compiled in only with
// -tags failpoints (powercut.go), and a fault test must not run without its fault.
func simulatePowerCut(_ *duro.Config, _ *slog.Logger) error {
	if os.Getenv(envPowerCut) != "" {
		return fmt.Errorf("%s is set, but this duro was built without -tags failpoints", envPowerCut)
	}
	return nil
}
