package flow

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultSocket is where the agent serves its records.
const DefaultSocket = "/run/netfence/monitor.sock"

// SubscriberBuffer is how many records a monitor may fall behind before
// it loses some.
const SubscriberBuffer = 1024

// Listen listens on a unix socket at path (its folder created, a stale
// socket replaced), readable and writable by its owner only.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Serve streams the hub's records to every client of l, as NDJSON, until
// ctx ends; it closes l. Each client has a buffer of SubscriberBuffer
// records: a client that does not keep up loses records (counted), and
// never slows the agent or other clients.
func Serve(ctx context.Context, l net.Listener, h *Hub) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveConn(ctx, c, h)
		}()
	}
}

func serveConn(ctx context.Context, c net.Conn, h *Hub) {
	defer c.Close()
	sub := h.Subscribe(SubscriberBuffer)
	defer h.Unsubscribe(sub)
	// The client sends nothing: a read returning means it went away.
	gone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, c)
		close(gone)
	}()
	w := bufio.NewWriter(c)
	enc := json.NewEncoder(w)
	for {
		select {
		case <-ctx.Done():
			return
		case <-gone:
			return
		case r, ok := <-sub.C:
			if !ok {
				return
			}
			if err := enc.Encode(&r); err != nil {
				return
			}
			// Write what is queued, then flush once.
			for n := len(sub.C); n > 0; n-- {
				r, ok := <-sub.C
				if !ok {
					break
				}
				if err := enc.Encode(&r); err != nil {
					return
				}
			}
			_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// Stream reads records from the agent's socket at path and calls fn for
// each, until the connection ends or ctx does.
func Stream(ctx context.Context, path string, fn func(*Record) error) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("connect to the agent's monitor socket: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	dec := json.NewDecoder(bufio.NewReader(c))
	for {
		var r Record
		if err := dec.Decode(&r); err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
}
