package probe_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/netfence/netfence/internal/probe"
	"github.com/netfence/netfence/internal/testbed"
)

func TestParsePort(t *testing.T) {
	for in, want := range map[string]probe.Port{"TCP/80": {"TCP", 80}, "udp/53": {"UDP", 53}, "8080": {"TCP", 8080}, "SCTP/9000": {"SCTP", 9000}} {
		got, err := probe.ParsePort(in)
		if err != nil || got != want {
			t.Errorf("ParsePort(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "TCP/", "TCP/0", "ICMP/1", "TCP/70000", "x"} {
		if _, err := probe.ParsePort(bad); err == nil {
			t.Errorf("ParsePort(%q) accepted", bad)
		}
	}
}

// TestServeDial serves and dials inside a network namespace of the test's
// own (loopback only): a served TCP and UDP port is reached with the
// token, a wrong token is a wrong reply, a port nobody serves is refused,
// SCTP is unprobed.
func TestServeDial(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("needs ip: %v", err)
	}
	name := fmt.Sprintf("nfprobe%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tok := probe.Token("x/a")
	err := testbed.InNamespace(name, func() error {
		if err := probe.Serve(ctx, tok, []probe.Port{{"TCP", 80}, {"UDP", 53}, {"SCTP", 9000}}); err != nil {
			return err
		}
		for _, c := range []struct {
			t    probe.Target
			want string
		}{
			{probe.Target{"127.0.0.1", "TCP", 80, tok}, probe.Reached},
			{probe.Target{"::1", "UDP", 53, tok}, probe.Reached},
			{probe.Target{"127.0.0.1", "TCP", 80, probe.Token("x/b")}, probe.WrongReply},
			{probe.Target{"127.0.0.1", "UDP", 53, probe.Token("x/b")}, probe.WrongReply},
			{probe.Target{"127.0.0.1", "TCP", 81, tok}, probe.Refused},
			{probe.Target{"127.0.0.1", "UDP", 54, tok}, probe.Refused},
			{probe.Target{"127.0.0.1", "SCTP", 9000, tok}, probe.Unprobed},
		} {
			// Sequential on this thread: the sockets must be made here,
			// in the namespace.
			r := probe.Dial(ctx, c.t, 500*time.Millisecond)
			if r.Outcome != c.want {
				t.Errorf("%+v: %s (%s), want %s", c.t, r.Outcome, r.Detail, c.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
