package agent

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// FileOptions configure RunFiles.
type FileOptions struct {
	// Once syncs and returns. It fails, touching nothing, when a path is
	// missing or any manifest has a problem.
	Once bool
	// Debounce groups bursts of file events (default 50ms).
	Debounce time.Duration
	// Resync re-reads the files at this interval even without events
	// (0: only on events).
	Resync time.Duration
	// Retry is the interval at which a source that cannot be read is read
	// again, and its watches set up again (default 1s).
	Retry time.Duration
	// Synced, when set, is called after every successful sync.
	Synced func(Stats)
	// Loaded, when set, is called after every read of the source, with the
	// snapshot or the error.
	Loaded func(*Snapshot, error)
}

// RunFiles enforces the cluster read from src: it checks the kernel, syncs,
// and (unless Once) keeps syncing as the files change, until ctx ends. On
// exit the rules stay in place: the node fails closed.
//
// When the source cannot be read (a path missing or unreadable) nothing is
// synced: the kernel keeps the last ruleset, /readyz fails, the
// netfence_source_error gauge is 1 and an error is logged; the source is
// read again (and its watches set up again) every Retry until it can be.
// While a file cannot be parsed, its last good objects stay in force and
// the agent is not ready.
func RunFiles(ctx context.Context, a *Agent, src *FileSource, opts FileOptions) error {
	log := a.log
	if opts.Once {
		// Read everything before touching the kernel at all.
		snap, err := src.Load()
		if err != nil {
			return fmt.Errorf("nothing applied: %w", err)
		}
		if len(snap.Problems) > 0 {
			return fmt.Errorf("nothing applied: %w", errors.Join(snap.Problems...))
		}
		if err := a.CheckKernel(ctx); err != nil {
			return err
		}
		st, err := a.SyncWith(ctx, snap.Cluster, snap.InvalidClusterPolicies)
		if err != nil {
			return err
		}
		if opts.Synced != nil {
			opts.Synced(st)
		}
		return nil
	}
	if err := a.CheckKernel(ctx); err != nil {
		return err
	}
	if opts.Debounce == 0 {
		opts.Debounce = 50 * time.Millisecond
	}
	if opts.Retry <= 0 {
		opts.Retry = time.Second
	}
	trigger := make(chan struct{}, 1)
	poke := func() {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	// Watch before the first read, so that no change is missed.
	w, err := src.startWatch()
	if err != nil {
		return err
	}
	watchErr := make(chan error, 1)
	go func() { watchErr <- w.loop(ctx, opts.Debounce, poke) }()

	// sync reads the source and applies it; it reports whether the source
	// could be read.
	sync := func() bool {
		snap, err := src.Load()
		a.cfg.Metrics.source(err, snap)
		switch {
		case err != nil:
			a.cfg.Health.recordSource(err)
		case snap.Degraded:
			a.cfg.Health.recordSource(fmt.Errorf("manifests degraded, enforcing the last good state of the files concerned: %w", errors.Join(snap.Problems...)))
		default:
			a.cfg.Health.recordSource(nil)
		}
		if opts.Loaded != nil {
			opts.Loaded(snap, err)
		}
		if err != nil {
			log.Error("cannot read the manifests: nothing changes, the last applied ruleset stays in force", "error", err, "retry", opts.Retry)
			return false
		}
		st, err := a.SyncWith(ctx, snap.Cluster, snap.InvalidClusterPolicies)
		if err != nil {
			// Keep running: the kernel still holds the last good state.
			log.Error("sync failed; last applied state stays in force", "error", err)
			return true
		}
		if opts.Synced != nil {
			opts.Synced(st)
		}
		return true
	}
	var retry <-chan time.Time
	if !sync() {
		retry = time.After(opts.Retry)
	}
	// Watches are checked every Retry: one lost (a folder moved away and
	// back) is set up again and the source read again.
	watchCheck := time.NewTicker(opts.Retry)
	defer watchCheck.Stop()
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
			return err
		case <-trigger:
		case <-tick:
		case <-retry:
			w.rewatch()
		case <-watchCheck.C:
			if !w.rewatch() {
				continue
			}
			log.Info("a watch on the manifests was lost and is set up again; reading them again")
		}
		retry = nil
		if !sync() {
			retry = time.After(opts.Retry)
		}
	}
}
