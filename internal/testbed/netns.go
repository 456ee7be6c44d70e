package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named network namespaces live, as for `ip netns`.
const netnsDir = "/var/run/netns"

// netlinkTimeout bounds every netlink request the bed makes.
const netlinkTimeout = 5 * time.Second

// onThread runs fn on a fresh goroutine locked to its OS thread. fn may move
// the thread into another network namespace; afterwards the thread is moved
// back to the namespace it started in. If that fails the thread stays locked,
// so the Go runtime terminates it when the goroutine exits and no other
// goroutine ever runs in the wrong namespace. A panic in fn is re-raised in
// the caller.
func onThread(fn func() error) error {
	type outcome struct {
		err   error
		panic any
	}
	done := make(chan outcome, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			// Leave the thread locked: it is discarded on exit.
			done <- outcome{err: fmt.Errorf("get current network namespace: %w", err)}
			return
		}
		defer orig.Close()
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

// inNetNS runs fn on an OS thread that is inside the network namespace ns.
func inNetNS(ns netns.NsHandle, fn func() error) error {
	return onThread(func() error {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("enter network namespace: %w", err)
		}
		return fn()
	})
}

// createNamedNetNS creates a new network namespace bound to
// /var/run/netns/name, as `ip netns add` does, and returns an open handle to it.
// It fails if the name is taken. The calling thread's namespace is not
// changed; the namespace is created from a dedicated thread.
func createNamedNetNS(name string) (netns.NsHandle, error) {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return netns.None(), fmt.Errorf("create %s: %w", netnsDir, err)
	}
	path := filepath.Join(netnsDir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return netns.None(), fmt.Errorf("reserve network namespace name %q: %w", name, err)
	}
	f.Close()
	err = onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare network namespace: %w", err)
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mount network namespace to %s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		// The mount may have succeeded before the thread failed to return.
		_ = unix.Unmount(path, unix.MNT_DETACH)
		_ = os.Remove(path)
		return netns.None(), fmt.Errorf("create network namespace %q: %w", name, err)
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		_ = deleteNamedNetNS(name)
		return netns.None(), fmt.Errorf("open network namespace %q: %w", name, err)
	}
	return h, nil
}

// deleteNamedNetNS removes /var/run/netns/name, as `ip netns delete` does. The
// namespace itself goes away once nothing else holds it (open handles,
// sockets, threads).
func deleteNamedNetNS(name string) error {
	path := filepath.Join(netnsDir, name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount network namespace %q: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network namespace %q: %w", name, err)
	}
	return nil
}

// netlinkHandleIn opens a rtnetlink handle whose socket lives in ns, so that
// every request made with it applies to ns whatever thread makes it.
func netlinkHandleIn(ns netns.NsHandle) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := inNetNS(ns, func() error {
		var err error
		// With no target namespace given, the socket is created in the
		// namespace of the current thread: ns.
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open netlink socket: %w", err)
	}
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("set netlink socket timeout: %w", err)
	}
	return h, nil
}

// sysctl is one /proc/sys/net setting, path relative to /proc/sys/net.
type sysctl struct{ key, value string }

// setSysctls writes settings under /proc/sys/net for the namespace ns. The
// files are opened by a thread inside ns, which is what makes them refer to
// ns rather than to the root namespace.
func setSysctls(ns netns.NsHandle, settings []sysctl) error {
	return inNetNS(ns, func() error {
		for _, s := range settings {
			path := filepath.Join("/proc/sys/net", s.key)
			if err := os.WriteFile(path, []byte(s.value), 0o644); err != nil {
				return fmt.Errorf("set net.%s=%s: %w", s.key, s.value, err)
			}
		}
		return nil
	})
}

// RemoveByPrefix deletes the namespaces a bed with this prefix creates
// (PREFIX-node and PREFIX-pN), for cleaning up after a process that was
// killed before Down. It returns how many it removed.
func RemoveByPrefix(prefix string) (int, error) {
	if !prefixRE.MatchString(prefix) {
		return 0, fmt.Errorf("testbed: invalid prefix %q", prefix)
	}
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("testbed: list network namespaces: %w", err)
	}
	ours := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `-(node|p[0-9]+)$`)
	n := 0
	var errs []error
	for _, e := range entries {
		if !ours.MatchString(e.Name()) {
			continue
		}
		if err := deleteNamedNetNS(e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// InNamespace runs fn on an OS thread inside the named network namespace
// (/var/run/netns/name), for code that must create sockets or netlink
// handles there. The thread is moved back afterwards, or discarded.
func InNamespace(name string, fn func() error) error {
	h, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("open network namespace %q: %w", name, err)
	}
	defer h.Close()
	return inNetNS(h, fn)
}
