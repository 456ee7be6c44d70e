package nsfd

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOpenCurrentAndDup: Open(0) is the calling thread's namespace, Open of
// a descriptor is a distinct descriptor of the same namespace, and Release
// is idempotent.
func TestOpenCurrentAndDup(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	want, err := os.Readlink(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	fd, err := Open(0)
	if err != nil {
		t.Fatal(err)
	}
	dup, err := Open(fd)
	if err != nil {
		t.Fatal(err)
	}
	if dup == fd {
		t.Fatal("Open of a descriptor returned the same descriptor")
	}
	for _, d := range []int{fd, dup} {
		if got, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", d)); got != want {
			t.Errorf("descriptor %d is %q, want %q", d, got, want)
		}
	}
	if err := Release(&fd); err != nil || fd != -1 {
		t.Fatalf("release: %v, fd %d", err, fd)
	}
	if err := Release(&fd); err != nil {
		t.Fatalf("second release: %v", err)
	}
	Release(&dup)
}

// TestForDial: the process's own namespace needs no switch; another one
// does.
func TestForDial(t *testing.T) {
	own, err := unix.Open("/proc/self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer unix.Close(own)
	if got := ForDial(own); got != 0 {
		t.Errorf("ForDial(own namespace) = %d, want 0", got)
	}
	if got := ForDial(0); got != 0 {
		t.Errorf("ForDial(0) = %d", got)
	}
	// Any other file is not the namespace: kept.
	f, err := os.Open("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := ForDial(int(f.Fd())); got != int(f.Fd()) {
		t.Errorf("ForDial(another file) = %d, want %d", got, f.Fd())
	}
}
