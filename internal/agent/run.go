package agent

import (
	"context"
	"fmt"
	"time"
)

// FileOptions configure RunFiles.
type FileOptions struct {
	// Once syncs and returns.
	Once bool
	// Debounce groups bursts of file events.
	Debounce time.Duration
	// Resync re-reads the files at this interval even without events
	// (0: only on events).
	Resync time.Duration
	// Synced, when set, is called after every successful sync.
	Synced func(Stats)
}

// RunFiles enforces the cluster read from src: it checks the kernel, syncs,
// and (unless Once) keeps syncing as the files change, until ctx ends. On
// exit the rules stay in place: the node fails closed.
func RunFiles(ctx context.Context, a *Agent, src *FileSource, opts FileOptions) error {
	if err := a.CheckKernel(); err != nil {
		return err
	}
	log := a.log
	sync := func() error {
		c, problems := src.Load()
		if c == nil {
			return fmt.Errorf("load manifests: %v", problems)
		}
		st, err := a.Sync(ctx, c)
		if err != nil {
			return err
		}
		if opts.Synced != nil {
			opts.Synced(st)
		}
		return nil
	}
	if opts.Once {
		return sync()
	}
	if opts.Debounce == 0 {
		opts.Debounce = 50 * time.Millisecond
	}
	trigger := make(chan struct{}, 1)
	poke := func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	// Watch before the first read, so that no change is missed.
	w, addTree, err := src.startWatch()
	if err != nil {
		return err
	}
	watchErr := make(chan error, 1)
	go func() { watchErr <- src.watchLoop(ctx, w, addTree, opts.Debounce, poke) }()
	if err := sync(); err != nil {
		return err
	}
	var tick <-chan time.Time
	if opts.Resync > 0 {
		t := time.NewTicker(opts.Resync)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("stopping; rules stay in place")
			return nil
		case err := <-watchErr:
			if err != nil {
				return err
			}
			return nil
		case <-trigger:
		case <-tick:
		}
		if err := sync(); err != nil {
			// Keep running: the kernel still holds the last good state.
			log.Error("sync failed; last applied state stays in force", "error", err)
		}
	}
}
