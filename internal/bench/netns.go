package bench

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/vishvananda/netns"
)

// runIn runs fn on a goroutine locked to an OS thread that is inside the
// named network namespace (as listed by `ip netns list`), and returns its
// error. Sockets fn creates belong to that namespace. Afterwards the thread
// returns to its original namespace; if it cannot, it stays locked, so the
// Go runtime discards it and no other goroutine ever runs in the wrong
// namespace. A panic in fn is re-raised in the caller.
func runIn(nsName string, fn func() error) error {
	target, err := netns.GetFromName(nsName)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", nsName, err)
	}
	defer target.Close()
	type outcome struct {
		err   error
		panic any
	}
	done := make(chan outcome, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- outcome{err: fmt.Errorf("get current network namespace: %w", err)}
			return // the thread stays locked and is discarded
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			done <- outcome{err: fmt.Errorf("enter network namespace %s: %w", nsName, err)}
			return // the thread stays locked and is discarded
		}
		var out outcome
		func() {
			defer func() {
				if p := recover(); p != nil {
					out.panic = fmt.Sprintf("%v\n%s", p, debug.Stack())
				}
			}()
			out.err = fn()
		}()
		if err := netns.Set(orig); err != nil {
			out.err = errors.Join(out.err, fmt.Errorf("return to original network namespace: %w", err))
		} else {
			runtime.UnlockOSThread()
		}
		done <- out
	}()
	out := <-done
	if out.panic != nil {
		panic(out.panic)
	}
	return out.err
}
