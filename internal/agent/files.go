package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/netfence/netfence/internal/cluster"
	"github.com/netfence/netfence/internal/manifest"
	"github.com/netfence/netfence/internal/policy"
)

// isStandIn reports whether an object is a fail-closed stand-in
// (DenyVersion, DenyClusterVersion).
func isStandIn(o any) bool {
	switch v := o.(type) {
	case *networkingv1.NetworkPolicy:
		return v.Annotations[failClosedAnnotation] != ""
	case *cluster.ClusterPolicy:
		return IsFailClosed(v)
	}
	return false
}

// isClusterPolicyKey reports whether an identity is a cluster-scoped
// policy's.
func isClusterPolicyKey(key string) bool {
	kind, _, _ := strings.Cut(key, " ")
	switch kind {
	case cluster.KindCNP, cluster.KindANP, cluster.KindBANP:
		return true
	}
	return false
}

// FileSource reads the cluster from folders (or files) of manifests and
// fails closed on every fault:
//
//   - A path that is missing or unreadable (or a folder that cannot be
//     walked) makes Load fail with a SourceError: no snapshot is produced
//     and the caller keeps the last enforced state.
//   - Every file keeps its last good objects: a file that cannot be read or
//     parsed (syntax error, truncated, being written) keeps its previous
//     objects in force, and so does a file that became empty (a writer that
//     truncates before writing). A file whose documents parse but some of
//     which are invalid keeps, for each invalid object, its previous valid
//     version from that file.
//   - A file that is gone takes its objects out of force, which only
//     happens when the whole source could be walked.
//   - The same object (kind, namespace, name) in two files is a conflict
//     naming both files: the version last produced stays; when there is
//     none, a NetworkPolicy becomes a deny-all policy for each version
//     (every pod either version selects is isolated, in every direction
//     either version isolates, with no allows), and a Pod or Namespace
//     makes Load fail (nothing changes until the conflict is resolved).
//   - A NetworkPolicy that decodes but is invalid is handed on (in
//     Snapshot.Invalid) so that the agent keeps its last compiled version
//     or denies its pods.
//   - Cluster-scoped policies (ClusterNetworkPolicy, AdminNetworkPolicy,
//     BaselineAdminNetworkPolicy) and Nodes follow the same rules, the
//     policies as NetworkPolicies do: one invalid in a file keeps its
//     previous valid version from that file; with none, it is handed on
//     in Snapshot.InvalidClusterPolicies (not in the cluster: the CRD's
//     validation refused it) so that the agent keeps its last compiled
//     version or enforces its DenyClusterVersion; one defined in two
//     files with none enforced before becomes a DenyClusterVersion for
//     each version. A Node defined twice with none enforced stops every
//     change, as a Pod does.
//
// It is not safe for concurrent use.
type FileSource struct {
	Paths []string
	Log   *slog.Logger
	// Loader reads each file; nil uses one of the source's own. Its CRD
	// validator, built on the first cluster-scoped policy, is reused for
	// every later read: share one Loader between sources to build it once.
	Loader *manifest.Loader

	// files holds the last good state of each file, by path.
	files map[string]*fileState
	// produced holds every object of the last snapshot, by identity
	// ("Kind ns/name").
	produced map[string]any
}

// fileState is the last good content of one file.
type fileState struct {
	// objects by identity, with their documents' locations.
	objects map[string]any
	where   map[string]manifest.Location
	// invalid are NetworkPolicies of the file that decode but are invalid;
	// invalidCluster the same for cluster-scoped policies.
	invalid        map[string]*networkingv1.NetworkPolicy
	invalidCluster map[string]*policy.Rejection
}

// SourceError is a fault of the source as a whole (a path missing or
// unreadable): no snapshot can be trusted, so none is produced.
type SourceError struct {
	Path string
	Err  error
}

func (e *SourceError) Error() string { return fmt.Sprintf("manifests %s: %v", e.Path, e.Err) }
func (e *SourceError) Unwrap() error { return e.Err }

// FileProblem is a fault of one file: it keeps its previous objects.
type FileProblem struct {
	File string
	// Kept is the number of objects of the file kept in force.
	Kept int
	Err  error
}

func (e *FileProblem) Error() string {
	return fmt.Sprintf("%v (the file's previous %d objects stay in force)", e.Err, e.Kept)
}
func (e *FileProblem) Unwrap() error { return e.Err }

// ConflictError is one object defined in two or more files.
type ConflictError struct {
	Key   string
	Files []string
	// Resolution says what is in force meanwhile.
	Resolution string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s is defined in %s: %s", e.Key, strings.Join(e.Files, " and "), e.Resolution)
}

// Snapshot is what one Load produced.
type Snapshot struct {
	Cluster *cluster.Cluster
	// Invalid are NetworkPolicies that decoded but are invalid and have no
	// valid version in the files. They are in Cluster as read; compiling
	// them fails, so the agent keeps their last compiled version or
	// isolates their pods (see Agent.Render).
	Invalid []*networkingv1.NetworkPolicy
	// InvalidClusterPolicies are cluster-scoped policies that decoded but
	// are invalid (CRD validation) or do not compile, and have no valid
	// version in the files, with why. They are not in Cluster (a policy
	// the CRD refuses may still compile, into something it does not
	// mean); hand them to Agent.SyncWith, which keeps their last compiled
	// version or enforces their DenyClusterVersion.
	InvalidClusterPolicies []*policy.Rejection
	// Problems are the faults found; each says what stays in force.
	Problems []error
	// Degraded is true when a file could not be read or parsed, or objects
	// conflict: the snapshot is the best fail-closed reading, but not what
	// the files say.
	Degraded bool
}

func identity(kind, namespace, name string) string {
	switch kind {
	case "Namespace", "Node", cluster.KindCNP, cluster.KindANP, cluster.KindBANP:
		return kind + " " + name // cluster-scoped
	}
	if namespace == "" {
		namespace = corev1.NamespaceDefault
	}
	return kind + " " + namespace + "/" + name
}

// Load reads the manifests. It fails (with a *SourceError) when a path is
// missing or unreadable; then nothing may change. Otherwise the snapshot
// holds, for each file, its last good objects.
func (s *FileSource) Load() (*Snapshot, error) {
	files, err := s.list()
	if err != nil {
		return nil, err
	}
	if s.files == nil {
		s.files = map[string]*fileState{}
	}
	snap := &Snapshot{}
	next := make(map[string]*fileState, len(files))
	for _, f := range files {
		st, problem := s.readFile(f, s.files[f])
		if problem != nil {
			snap.Problems = append(snap.Problems, problem)
			var fp *FileProblem
			if errors.As(problem, &fp) {
				snap.Degraded = true
			}
		}
		if st != nil {
			next[f] = st
		}
	}
	s.files = next

	// Merge, detecting objects defined in more than one file.
	byKey := map[string][]string{}
	for _, f := range files {
		st := next[f]
		if st == nil {
			continue
		}
		for key := range st.objects {
			byKey[key] = append(byKey[key], f)
		}
		for key := range st.invalid {
			if _, ok := st.objects[key]; !ok {
				byKey[key] = append(byKey[key], f)
			}
		}
		for key := range st.invalidCluster {
			if _, ok := st.objects[key]; !ok {
				byKey[key] = append(byKey[key], f)
			}
		}
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	objects := map[string]any{}
	var invalid []*networkingv1.NetworkPolicy
	for _, key := range keys {
		fs := byKey[key]
		if len(fs) == 1 {
			st := next[fs[0]]
			if o, ok := st.objects[key]; ok {
				objects[key] = o
			} else if np, ok := st.invalid[key]; ok {
				invalid = append(invalid, np)
			} else {
				snap.InvalidClusterPolicies = append(snap.InvalidClusterPolicies, st.invalidCluster[key])
			}
			continue
		}
		snap.Degraded = true
		conflict := &ConflictError{Key: key, Files: fs}
		// A stand-in produced for this conflict before is no version
		// enforced before: the stand-ins of every version are made again
		// (keeping only the first would drop the others').
		if prev, ok := s.produced[key]; ok && !isStandIn(prev) {
			objects[key] = prev
			conflict.Resolution = "the version enforced before stays in force until only one file defines it"
			snap.Problems = append(snap.Problems, conflict)
			continue
		}
		if isClusterPolicyKey(key) {
			conflict.Resolution = "no version was enforced before: a stand-in denying the subject of each version in every direction it has rules is enforced until only one file defines it"
			snap.Problems = append(snap.Problems, conflict)
			for i, f := range fs {
				cp, ok := next[f].objects[key].(*cluster.ClusterPolicy)
				if !ok {
					cp = next[f].invalidCluster[key].ClusterPolicy
				}
				deny := DenyClusterVersion(cp)
				if i > 0 {
					deny.Name = fmt.Sprintf("%s.conflict-%d", deny.Name, i+1)
				}
				objects[identity(deny.Kind, "", deny.Name)] = deny
			}
			continue
		}
		if !strings.HasPrefix(key, "NetworkPolicy ") {
			conflict.Resolution = "no version was enforced before, so nothing changes until only one file defines it"
			return nil, &SourceError{Path: strings.Join(fs, ", "), Err: conflict}
		}
		conflict.Resolution = "no version was enforced before: every pod either version selects is denied until only one file defines it"
		snap.Problems = append(snap.Problems, conflict)
		for i, f := range fs {
			np := next[f].objects[key]
			if np == nil {
				np = next[f].invalid[key]
			}
			deny := DenyVersion(np.(*networkingv1.NetworkPolicy))
			if i > 0 {
				deny.Name = fmt.Sprintf("%s.conflict-%d", deny.Name, i+1)
			}
			objects[identity("NetworkPolicy", deny.Namespace, deny.Name)] = deny
		}
	}
	s.produced = objects

	var parts cluster.Parts
	for _, o := range objects {
		switch v := o.(type) {
		case *corev1.Namespace:
			parts.Namespaces = append(parts.Namespaces, cluster.NamespaceFromAPI(v))
		case *corev1.Pod:
			parts.Pods = append(parts.Pods, cluster.PodFromAPI(v))
		case *networkingv1.NetworkPolicy:
			parts.Policies = append(parts.Policies, v)
		case *cluster.ClusterPolicy:
			parts.ClusterPolicies = append(parts.ClusterPolicies, v)
		case *cluster.Node:
			parts.Nodes = append(parts.Nodes, v)
		}
	}
	// Invalid policies go into the cluster as read: they do not compile,
	// so the agent keeps their last compiled version or denies their pods.
	// Invalid cluster policies stay out (see InvalidClusterPolicies).
	parts.Policies = append(parts.Policies, invalid...)
	snap.Cluster = cluster.NewWith(parts)
	snap.Invalid = invalid
	s.logProblems(snap.Problems)
	return snap, nil
}

func (s *FileSource) logProblems(problems []error) {
	if s.Log == nil {
		return
	}
	for _, p := range problems {
		s.Log.Warn("manifest problem", "error", p.Error())
	}
}

// list returns every manifest file under the paths, or a *SourceError when
// a path is missing or a folder cannot be walked whole.
func (s *FileSource) list() ([]string, error) {
	if len(s.Paths) == 0 {
		return nil, &SourceError{Path: "(none)", Err: errors.New("no manifests path given")}
	}
	var files []string
	for _, p := range s.Paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, &SourceError{Path: p, Err: err}
		}
		if !st.IsDir() {
			f, err := os.Open(p)
			if err != nil {
				return nil, &SourceError{Path: p, Err: err}
			}
			f.Close()
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if manifestFile(path) {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, &SourceError{Path: p, Err: err}
		}
	}
	sort.Strings(files)
	return slices.Compact(files), nil
}

// manifestFile reports whether a file name is one the loader reads.
func manifestFile(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// readFile reads one file. It returns the file's state to keep (its new
// state, or prev when the file cannot be read or parsed) and the problem,
// if any.
func (s *FileSource) readFile(path string, prev *fileState) (*fileState, error) {
	kept := func(err error) (*fileState, error) {
		n := 0
		if prev != nil {
			n = len(prev.objects)
		}
		return prev, &FileProblem{File: path, Kept: n, Err: err}
	}
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// Removed between the walk and now: gone, as in the walk's
			// folder, which was readable.
			return nil, nil
		}
		return kept(fmt.Errorf("%s: %w", path, err))
	}
	if st.Size() == 0 && prev != nil && len(prev.objects)+len(prev.invalid)+len(prev.invalidCluster) > 0 {
		return kept(fmt.Errorf("%s: file is empty (being written?)", path))
	}
	if s.Loader == nil {
		s.Loader = &manifest.Loader{}
	}
	objs, err := s.Loader.Load([]string{path})
	var docErrs manifest.Errors
	if err != nil && !errors.As(err, &docErrs) {
		return kept(fmt.Errorf("%s: %w", path, err))
	}
	next := &fileState{objects: map[string]any{}, where: objs.Where, invalid: map[string]*networkingv1.NetworkPolicy{},
		invalidCluster: map[string]*policy.Rejection{}}
	for _, ns := range objs.Namespaces {
		next.objects[identity("Namespace", "", ns.Name)] = ns
	}
	for _, p := range objs.Pods {
		next.objects[identity("Pod", p.Namespace, p.Name)] = p
	}
	for _, np := range objs.Policies {
		next.objects[identity("NetworkPolicy", np.Namespace, np.Name)] = np
	}
	for _, cp := range objs.ClusterPolicies {
		next.objects[identity(cp.Kind, "", cp.Name)] = cp
	}
	for _, n := range objs.Nodes {
		next.objects[identity("Node", "", n.Name)] = n
	}
	var problems []error
	for _, e := range docErrs {
		if e.Document == 0 || e.Kind == "" || e.Name == "" {
			// Not attributable to one object: a syntax error, a truncated
			// or unreadable file. The whole file keeps its last good state.
			return kept(docErrs)
		}
		key := identity(e.Kind, e.Namespace, e.Name)
		if _, ok := next.objects[key]; ok {
			continue // another error of a document already read
		}
		if prev != nil {
			if o, ok := prev.objects[key]; ok {
				next.objects[key] = o
				problems = append(problems, fmt.Errorf("%w (its last valid version stays in force)", e))
				continue
			}
		}
		problems = append(problems, e)
	}
	for _, np := range objs.InvalidPolicies {
		key := identity("NetworkPolicy", np.Namespace, np.Name)
		if _, ok := next.objects[key]; !ok {
			next.invalid[key] = np
		}
	}
	for _, cp := range objs.InvalidClusterPolicies {
		key := identity(cp.Kind, "", cp.Name)
		if _, ok := next.objects[key]; ok {
			continue
		}
		var why []error
		for _, e := range docErrs {
			if identity(e.Kind, e.Namespace, e.Name) == key {
				why = append(why, e)
			}
		}
		if len(why) == 0 {
			why = append(why, fmt.Errorf("%s %s is invalid", cp.Kind, cp.Name))
		}
		next.invalidCluster[key] = &policy.Rejection{ClusterPolicy: cp, Err: errors.Join(why...)}
	}
	return next, errors.Join(problems...)
}

// Watch calls changed (debounced) whenever a file under the paths is
// written, created, removed or renamed, until ctx ends. New directories are
// watched as they appear, and so is a path that reappears.
func (s *FileSource) Watch(ctx context.Context, debounce time.Duration, changed func()) error {
	w, err := s.startWatch()
	if err != nil {
		return err
	}
	return w.loop(ctx, debounce, changed)
}

// watcher watches the paths and their parents.
type watcher struct {
	src *FileSource
	fsw *fsnotify.Watcher
	// parents are the folders holding the paths, watched too.
	parents map[string]bool
}

// startWatch sets up the watches on every path that exists, and on the
// parents of every path (so that a path that is removed and comes back is
// seen), before it returns: no change made after it returns is missed.
func (s *FileSource) startWatch() (*watcher, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch manifests: %w", err)
	}
	w := &watcher{src: s, fsw: fsw, parents: map[string]bool{}}
	for _, p := range s.Paths {
		parent := filepath.Dir(filepath.Clean(p))
		w.parents[parent] = true
		if err := fsw.Add(parent); err != nil && s.Log != nil {
			s.Log.Warn("cannot watch the parent of a manifests path", "path", p, "error", err)
		}
		if err := w.addTree(p); err != nil && s.Log != nil {
			s.Log.Warn("cannot watch manifests path (retrying)", "path", p, "error", err)
		}
	}
	return w, nil
}

// addTree watches a folder and its sub-folders (or a file's folder).
func (w *watcher) addTree(root string) error {
	st, err := os.Stat(root)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		// The parent is watched already: editors replace files by rename.
		return nil
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return w.fsw.Add(p)
		}
		return nil
	})
}

// rewatch adds the watches of every path again (after a path reappeared,
// while the source is failing, and periodically: a folder moved away and
// back can lose its watch to the event of the move). Adding a watch twice
// is harmless. It reports whether a watch was missing, in which case
// changes may have gone unseen and the caller must read the source again.
func (w *watcher) rewatch() bool {
	before := map[string]bool{}
	for _, p := range w.fsw.WatchList() {
		before[p] = true
	}
	for parent := range w.parents {
		_ = w.fsw.Add(parent)
	}
	for _, p := range w.src.Paths {
		_ = w.addTree(p)
	}
	for _, p := range w.fsw.WatchList() {
		if !before[p] {
			return true
		}
	}
	return false
}

func (w *watcher) loop(ctx context.Context, debounce time.Duration, changed func()) error {
	defer w.fsw.Close()
	var timer *time.Timer
	fire := make(chan struct{}, 1)
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return nil
			}
			if ev.Op&(fsnotify.Create|fsnotify.Rename) != 0 {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() {
					_ = w.addTree(ev.Name)
				}
			}
			if !w.underPaths(ev.Name) {
				continue // a sibling of a path, seen through its parent's watch
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
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return nil
			}
			if w.src.Log != nil {
				w.src.Log.Warn("file watch error", "error", err)
			}
		case <-fire:
			// Once events settle, set up any watch they took away: a
			// folder moved away and back is re-added on its return, but
			// the move's own event can remove that watch afterwards.
			w.rewatch()
			changed()
		}
	}
}

// underPaths reports whether name is one of the paths or under one.
func (w *watcher) underPaths(name string) bool {
	name = filepath.Clean(name)
	for _, p := range w.src.Paths {
		p = filepath.Clean(p)
		if name == p || strings.HasPrefix(name, p+string(filepath.Separator)) {
			return true
		}
	}
	return false
}
