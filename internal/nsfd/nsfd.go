// Package nsfd holds the network namespace descriptors that netfence's
// netlink clients (the nftables applier, the conntrack revoker) bind to.
package nsfd

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Open returns a descriptor of its own for the network namespace fd refers
// to, or, when fd is 0, for the network namespace of the calling OS thread
// at the time of the call (so that a client can be created inside a
// function that runs in another namespace). Close it with unix.Close or
// Release.
func Open(fd int) (int, error) {
	if fd != 0 {
		out, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("duplicate network namespace descriptor: %w", err)
		}
		return out, nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	out, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open the thread's network namespace: %w", err)
	}
	return out, nil
}

// Release closes *fd unless it is already released (negative), and marks
// it released.
func Release(fd *int) error {
	if *fd < 0 {
		return nil
	}
	err := unix.Close(*fd)
	*fd = -1
	return err
}

// ForDial returns what to give a netlink client as the namespace of fd: 0
// (no namespace switch: the socket is made where the process is) when fd
// refers to the process's own network namespace, fd otherwise. Entering a
// namespace (setns) takes CAP_SYS_ADMIN, which an agent that only holds
// NET_ADMIN in its own (the node's) namespace lacks; it never needs to.
func ForDial(fd int) int {
	if fd <= 0 {
		return fd
	}
	var own, target unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &own); err != nil {
		return fd
	}
	if err := unix.Fstat(fd, &target); err != nil {
		return fd
	}
	if own.Dev == target.Dev && own.Ino == target.Ino {
		return 0
	}
	return fd
}
