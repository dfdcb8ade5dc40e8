//go:build failpoints

package main

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/duro-db/duro"
	"github.com/duro-db/duro/internal/vfs/crashfs"
)

// The simulated power cut of the Jepsen harness's powercut nemesis, compiled in only with
// -tags failpoints. With DURO_POWERCUT set to a boot ID, the node keeps its data dir on a
// simulated disk (crashfs) that knows what was synced. SIGUSR2 cuts the power, during one
// of the next few disk operations (so that a write in progress can land torn): the disk
// writes what a rebooted machine would find into <data-dir>.image and the process exits
// at once, with exit code exitPowerCut and no cleanup. The harness then puts the image in
// place of the data dir and starts the node with a new boot ID, as after a reboot.

// failpointsBuilt says whether this build has the failpoints (the root package's
// fault switches and the simulated disk).
const failpointsBuilt = true

// exitPowerCut is the exit code of a node whose power was cut.
const exitPowerCut = 86

func simulatePowerCut(cfg *duro.Config, log *slog.Logger) error {
	boot := os.Getenv(envPowerCut)
	if boot == "" {
		return nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return err
	}
	disk, err := crashfs.New(cfg.DataDir, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
	if err != nil {
		return fmt.Errorf("%s: %w", envPowerCut, err)
	}
	cfg.FS, cfg.BootID = disk, boot
	image := filepath.Clean(cfg.DataDir) + ".image"
	if err := os.RemoveAll(image); err != nil {
		return err
	}
	log.Warn("data dir on a simulated disk: SIGUSR2 cuts the power", "boot", boot, "image", image)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR2)
	go func() {
		<-sig
		// During one of the next few disk operations, so that a write in progress
		// can land torn; or now, if the node is idle.
		disk.CutAtOp(disk.Ops()+1+rand.IntN(8), image)
		select {
		case <-disk.Done():
		case <-time.After(200 * time.Millisecond):
		}
		_, err := disk.Cut(image)
		if err != nil {
			fmt.Fprintf(os.Stderr, "duro: power cut: writing the image: %v\n", err)
			os.Exit(exitFailed)
		}
		fmt.Fprintf(os.Stderr, "duro: power cut; what the disk kept is in %s\n", image)
		os.Exit(exitPowerCut)
	}()
	return nil
}
