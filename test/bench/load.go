package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netfence/netfence/internal/testbed"
)

// Server accepts TCP connections on one address in a network namespace and
// closes them at once.
type Server struct {
	fd       int
	stop     atomic.Bool
	wg       sync.WaitGroup
	accepted atomic.Int64
	errs     atomic.Int64
	closed   sync.Once
}

// serverPollInterval bounds how long an accept blocks, so that the accept
// loops notice Close even if shutdown does not wake them.
const serverPollInterval = 100 * time.Millisecond

// StartServer listens on addr in the named network namespace with threads
// accept loops (at least 1).
func StartServer(nsName string, addr netip.AddrPort, threads int) (*Server, error) {
	fd := -1
	err := testbed.InNamespace(nsName, func() error {
		var err error
		fd, err = unix.Socket(sockFamily(addr.Addr()), unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fmt.Errorf("SO_REUSEADDR: %w", err)
		}
		if err := unix.Bind(fd, sockaddr(addr)); err != nil {
			return fmt.Errorf("bind %s: %w", addr, err)
		}
		if err := unix.Listen(fd, 4096); err != nil {
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		tv := unix.NsecToTimeval(serverPollInterval.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("SO_RCVTIMEO: %w", err)
		}
		return nil
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("bench: server in %s: %w", nsName, err)
	}
	s := &Server{fd: fd}
	for range max(threads, 1) {
		s.wg.Add(1)
		go s.acceptLoop()
	}
	return s, nil
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for !s.stop.Load() {
		nfd, _, err := unix.Accept4(s.fd, unix.SOCK_CLOEXEC)
		if err == nil {
			unix.Close(nfd)
			s.accepted.Add(1)
			continue
		}
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
		default:
			// EINVAL after shutdown, or a real error: count it and do not spin.
			if s.stop.Load() {
				return
			}
			s.errs.Add(1)
			time.Sleep(time.Millisecond)
		}
	}
}

// Accepted returns the number of connections accepted so far.
func (s *Server) Accepted() int64 { return s.accepted.Load() }

// Close stops the accept loops and closes the listener.
func (s *Server) Close() error {
	var err error
	s.closed.Do(func() {
		s.stop.Store(true)
		_ = unix.Shutdown(s.fd, unix.SHUT_RDWR)
		s.wg.Wait()
		err = unix.Close(s.fd)
	})
	return err
}

func sockFamily(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// LoadOptions configure Load.
type LoadOptions struct {
	// Workers is the number of concurrent connecting threads (default 2).
	Workers int
	// Duration is the measured time (default 3s).
	Duration time.Duration
	// Warmup runs the load, unmeasured, before Duration.
	Warmup time.Duration
	// ConnectTimeout bounds one connect (default 1s).
	ConnectTimeout time.Duration
	// MaxConns bounds the connections of one worker (default 10 million).
	MaxConns int
}

// LoadResult is what Load measured, over the measured window only.
type LoadResult struct {
	// Conns counts connections that connected; Failures those that did not.
	Conns, Failures int
	// Errors counts failures by error.
	Errors map[string]int
	// Elapsed is the length of the measured window.
	Elapsed time.Duration
	// CPU is the user and system time of this process in the window.
	CPU time.Duration
	// MachineCPU is the busy time of all CPUs in the window (from
	// /proc/stat, so it includes whatever else runs on the machine).
	MachineCPU time.Duration
	// Latencies are the connect latencies of the successful connections,
	// sorted.
	Latencies []time.Duration
}

// Rate returns successful connections per second.
func (r *LoadResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Conns) / r.Elapsed.Seconds()
}

// CPUPerConn returns the process CPU time per successful connection.
func (r *LoadResult) CPUPerConn() time.Duration {
	if r.Conns == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Conns)
}

// MachineCPUPerConn returns the machine's busy time per connection.
func (r *LoadResult) MachineCPUPerConn() time.Duration {
	if r.Conns == 0 {
		return 0
	}
	return r.MachineCPU / time.Duration(r.Conns)
}

// Percentile returns the q-quantile (0 < q <= 1) of the latencies, by
// nearest rank.
func (r *LoadResult) Percentile(q float64) time.Duration { return Percentile(r.Latencies, q) }

// Percentile returns the q-quantile of sorted durations, by nearest rank.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Merge adds another result's counts, time and latencies to r.
func (r *LoadResult) Merge(o *LoadResult) {
	r.Conns += o.Conns
	r.Failures += o.Failures
	r.Elapsed += o.Elapsed
	r.CPU += o.CPU
	r.MachineCPU += o.MachineCPU
	if len(o.Errors) > 0 && r.Errors == nil {
		r.Errors = map[string]int{}
	}
	for k, v := range o.Errors {
		r.Errors[k] += v
	}
	r.Latencies = append(r.Latencies, o.Latencies...)
	slices.Sort(r.Latencies)
}

// Load opens and closes TCP connections to server from the named network
// namespace, as fast as opts.Workers threads can, for opts.Warmup and then
// opts.Duration, and reports the measured part. Each connection is a
// blocking connect and a close with SO_LINGER 0 (a reset, no TIME_WAIT).
func Load(ctx context.Context, nsName string, server netip.AddrPort, opts LoadOptions) (*LoadResult, error) {
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.Duration <= 0 {
		opts.Duration = 3 * time.Second
	}
	if opts.Warmup < 0 {
		opts.Warmup = 0
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = time.Second
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 10_000_000
	}
	start := time.Now()
	measureFrom := start.Add(opts.Warmup)
	end := measureFrom.Add(opts.Duration)
	type workerResult struct {
		conns, failures int
		errors          map[string]int
		lat             []time.Duration
		err             error
	}
	results := make([]workerResult, opts.Workers)
	var wg sync.WaitGroup
	for w := range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wr := &results[w]
			wr.errors = map[string]int{}
			wr.lat = make([]time.Duration, 0, 1<<16)
			wr.err = testbed.InNamespace(nsName, func() error {
				return connectLoop(ctx, server, opts, measureFrom, end, wr.errors, &wr.conns, &wr.failures, &wr.lat)
			})
		}()
	}
	// Sample the CPU counters at the window's edges.
	var ru0, ru1 unix.Rusage
	var m0, m1 time.Duration
	var err0, err1 error
	timer := time.NewTimer(time.Until(measureFrom))
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	t0 := time.Now()
	err0 = unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	m0, _ = machineBusy()
	wg.Wait()
	t1 := time.Now()
	err1 = unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	m1, _ = machineBusy()
	if err := errors.Join(err0, err1, ctx.Err()); err != nil {
		return nil, fmt.Errorf("bench: load: %w", err)
	}
	res := &LoadResult{Elapsed: t1.Sub(t0), CPU: rusageCPU(&ru1) - rusageCPU(&ru0), MachineCPU: m1 - m0}
	var errs []error
	for _, wr := range results {
		if wr.err != nil {
			errs = append(errs, wr.err)
		}
		res.Conns += wr.conns
		res.Failures += wr.failures
		for k, v := range wr.errors {
			if res.Errors == nil {
				res.Errors = map[string]int{}
			}
			res.Errors[k] += v
		}
		res.Latencies = append(res.Latencies, wr.lat...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("bench: load from %s: %w", nsName, err)
	}
	slices.Sort(res.Latencies)
	return res, nil
}

// connectLoop runs on a thread inside the client's namespace.
func connectLoop(ctx context.Context, server netip.AddrPort, opts LoadOptions, measureFrom, end time.Time,
	errs map[string]int, conns, failures *int, lat *[]time.Duration) error {
	sa := sockaddr(server)
	fam := sockFamily(server.Addr())
	linger := &unix.Linger{Onoff: 1, Linger: 0}
	tv := unix.NsecToTimeval(opts.ConnectTimeout.Nanoseconds())
	for i := 0; i < opts.MaxConns; i++ {
		if i%256 == 0 && ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		if !now.Before(end) {
			return nil
		}
		fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, linger); err != nil {
			unix.Close(fd)
			return fmt.Errorf("SO_LINGER: %w", err)
		}
		// A blocking connect gives up after SO_SNDTIMEO.
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
			unix.Close(fd)
			return fmt.Errorf("SO_SNDTIMEO: %w", err)
		}
		t0 := time.Now()
		err = unix.Connect(fd, sa)
		if errors.Is(err, unix.EINTR) {
			err = finishConnect(fd, t0.Add(opts.ConnectTimeout))
		}
		d := time.Since(t0)
		unix.Close(fd)
		if t0.Before(measureFrom) {
			continue
		}
		if err != nil {
			*failures++
			errs[connectError(err)]++
			continue
		}
		*conns++
		*lat = append(*lat, d)
	}
	return nil
}

// finishConnect waits for an interrupted connect to complete.
func finishConnect(fd int, deadline time.Time) error {
	for range 1000 {
		left := time.Until(deadline)
		if left <= 0 {
			return unix.ETIMEDOUT
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(pfd, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			continue
		}
		soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return err
		}
		if soerr != 0 {
			return unix.Errno(soerr)
		}
		return nil
	}
	return unix.ETIMEDOUT
}

func connectError(err error) string {
	if errors.Is(err, unix.EINPROGRESS) || errors.Is(err, unix.ETIMEDOUT) {
		// A blocking connect that hit SO_SNDTIMEO returns EINPROGRESS.
		return "timeout"
	}
	return err.Error()
}

func rusageCPU(ru *unix.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// userHZ is the unit of /proc/stat (USER_HZ, 100 on every Linux
// architecture Go supports).
const userHZ = 100

// machineBusy returns the time all CPUs spent not idle since boot.
func machineBusy() (time.Duration, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, errors.New("empty /proc/stat")
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat line %q", sc.Text())
	}
	var busy int64
	for i, f := range fields[1:] {
		if i >= 8 { // guest time is already counted in user time
			break
		}
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, err
		}
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		busy += v
	}
	return time.Duration(busy) * time.Second / userHZ, nil
}
