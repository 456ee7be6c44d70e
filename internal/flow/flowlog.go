package flow

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"time"
)

// FileLog writes aggregated flow records to a file: per interval, one
// record per key (verdict, from, to, protocol, port, where it was denied:
// no source port), its count the number of records folded into it and its
// time the first one's. The file is rotated by size: past MaxBytes it
// becomes FILE.1 (FILE.1 becomes FILE.2, ..., up to Backups) and a new FILE
// is started.
type FileLog struct {
	Path     string
	Interval time.Duration
	MaxBytes int64
	Backups  int

	f    *os.File
	w    *bufio.Writer
	size int64
}

type aggKey struct {
	verdict, from, to, protocol, deniedAt string
	port                                  int
}

// Run subscribes to h and writes until ctx ends, flushing what it holds
// then. Records it cannot take in time are lost by the hub (counted), the
// agent never waits.
func (l *FileLog) Run(ctx context.Context, h *Hub) error {
	if l.Interval <= 0 {
		l.Interval = 10 * time.Second
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 100 << 20
	}
	if err := l.open(); err != nil {
		return err
	}
	sub := h.Subscribe(4096)
	defer h.Unsubscribe(sub)
	agg := map[aggKey]*Record{}
	tick := time.NewTicker(l.Interval)
	defer tick.Stop()
	flush := func() error {
		err := l.write(agg)
		clear(agg)
		return err
	}
	defer l.close()
	for {
		select {
		case <-ctx.Done():
			return flush()
		case <-tick.C:
			if err := flush(); err != nil {
				return err
			}
		case r, ok := <-sub.C:
			if !ok {
				return flush()
			}
			k := aggKey{r.Verdict, r.From, r.To, r.Protocol, r.DeniedAt, r.Port}
			if a := agg[k]; a != nil {
				a.Count += max(r.Count, 1)
				continue
			}
			rc := r
			rc.SrcPort = 0
			rc.Count = max(r.Count, 1)
			agg[k] = &rc
		}
	}
}

func (l *FileLog) open() error {
	f, err := os.OpenFile(l.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("flow log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("flow log: %w", err)
	}
	l.f, l.w, l.size = f, bufio.NewWriter(f), st.Size()
	return nil
}

func (l *FileLog) close() {
	if l.f != nil {
		l.w.Flush()
		l.f.Close()
		l.f = nil
	}
}

// write appends the aggregated records, in a stable order, rotating first
// when the file is full.
func (l *FileLog) write(agg map[aggKey]*Record) error {
	if len(agg) == 0 {
		return nil
	}
	recs := make([]*Record, 0, len(agg))
	for _, r := range agg {
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Time.Before(recs[j].Time) })
	for _, r := range recs {
		if l.size >= l.MaxBytes {
			if err := l.rotate(); err != nil {
				return err
			}
		}
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("flow log: %w", err)
		}
		b = append(b, '\n')
		n, err := l.w.Write(b)
		l.size += int64(n)
		if err != nil {
			return fmt.Errorf("flow log: %w", err)
		}
	}
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("flow log: %w", err)
	}
	return nil
}

func (l *FileLog) rotate() error {
	l.close()
	for i := l.Backups; i >= 1; i-- {
		from := l.Path
		if i > 1 {
			from = fmt.Sprintf("%s.%d", l.Path, i-1)
		}
		if _, err := os.Stat(from); err == nil {
			if err := os.Rename(from, fmt.Sprintf("%s.%d", l.Path, i)); err != nil {
				return fmt.Errorf("flow log: rotate: %w", err)
			}
		}
	}
	if l.Backups <= 0 {
		if err := os.Remove(l.Path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("flow log: rotate: %w", err)
		}
	}
	return l.open()
}
