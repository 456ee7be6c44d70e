package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/manifest"
)

// FileSource reads the cluster from a folder of manifests. A document that
// became invalid is reported and its object's last valid version stays in
// force, so a typo never opens isolated pods; a document that was never
// valid is skipped. Other documents are unaffected.
type FileSource struct {
	Paths []string
	Log   *slog.Logger

	// lastGood holds the last valid object by identity ("Kind ns/name").
	lastGood map[string]any
}

// Load reads the manifests. The error is non-nil only when nothing usable
// could be read at all (e.g. the folder is missing).
func (s *FileSource) Load() (*cluster.Cluster, []error) {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	objs, err := (&manifest.Loader{}).Load(s.Paths)
	var problems []error
	var docErrs manifest.Errors
	if err != nil && !errors.As(err, &docErrs) {
		return nil, []error{err}
	}
	good := map[string]any{}
	for _, ns := range objs.Namespaces {
		good["Namespace "+ns.Name] = ns
	}
	for _, p := range objs.Pods {
		good["Pod "+p.Namespace+"/"+p.Name] = p
	}
	for _, np := range objs.Policies {
		good["NetworkPolicy "+np.Namespace+"/"+np.Name] = np
	}
	for _, e := range docErrs {
		problems = append(problems, e)
		if e.Kind == "" || e.Name == "" {
			log.Warn("invalid manifest skipped", "error", e.Error())
			continue
		}
		ns := e.Namespace
		if ns == "" && e.Kind != "Namespace" {
			ns = corev1.NamespaceDefault
		}
		key := e.Kind + " " + e.Name
		if e.Kind != "Namespace" {
			key = e.Kind + " " + ns + "/" + e.Name
		}
		if _, ok := good[key]; ok {
			continue
		}
		if prev, ok := s.lastGood[key]; ok {
			good[key] = prev
			log.Warn("invalid manifest: keeping the last valid version in force", "object", key, "error", e.Error())
			continue
		}
		log.Warn("invalid manifest skipped", "object", key, "error", e.Error())
	}
	s.lastGood = good
	var nss []*cluster.Namespace
	var pods []*cluster.Pod
	var pols []*networkingv1.NetworkPolicy
	for _, o := range good {
		switch v := o.(type) {
		case *corev1.Namespace:
			nss = append(nss, cluster.NamespaceFromAPI(v))
		case *corev1.Pod:
			pods = append(pods, cluster.PodFromAPI(v))
		case *networkingv1.NetworkPolicy:
			pols = append(pols, v)
		}
	}
	return cluster.New(nss, pods, pols), problems
}

// Watch calls changed (debounced) whenever a file under the paths is
// written, created, removed or renamed, until ctx ends. New directories are
// watched as they appear.
func (s *FileSource) Watch(ctx context.Context, debounce time.Duration, changed func()) error {
	w, addTree, err := s.startWatch()
	if err != nil {
		return err
	}
	return s.watchLoop(ctx, w, addTree, debounce, changed)
}

// startWatch sets up the watches on every path before it returns, so that
// no change made after it returns is missed.
func (s *FileSource) startWatch() (*fsnotify.Watcher, func(string) error, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, nil, fmt.Errorf("watch manifests: %w", err)
	}
	addTree := func(root string) error {
		st, err := os.Stat(root)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			// Watch the parent: editors replace files by rename.
			return w.Add(filepath.Dir(root))
		}
		return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if p != root && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return w.Add(p)
			}
			return nil
		})
	}
	for _, p := range s.Paths {
		if err := addTree(p); err != nil {
			w.Close()
			return nil, nil, fmt.Errorf("watch %s: %w", p, err)
		}
	}
	return w, addTree, nil
}

func (s *FileSource) watchLoop(ctx context.Context, w *fsnotify.Watcher, addTree func(string) error, debounce time.Duration, changed func()) error {
	defer w.Close()
	var timer *time.Timer
	fire := make(chan struct{}, 1)
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op&fsnotify.Create != 0 {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() {
					_ = addTree(ev.Name)
				}
			}
			if timer != nil {
				timer.Stop()
			}
			timer = time.AfterFunc(debounce, func() {
				select {
				case fire <- struct{}{}:
				default:
				}
			})
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			if s.Log != nil {
				s.Log.Warn("file watch error", "error", err)
			}
		case <-fire:
			changed()
		}
	}
}
