// Command synth writes a synthetic cluster (namespaces, pods and
// NetworkPolicies, and with -cluster-policies nodes and
// ClusterNetworkPolicies) as multi-document YAML, for testing and
// benchmarking netfence on realistic inputs.
//
//	go run ./hack/synth -pods 5000 -namespaces 100 -policies 1000 -seed 1 [-nodes 10] [-cluster-policies 200] [-ipv6] [-o FILE|DIR]
//
// -cluster-policies N adds N ClusterNetworkPolicies
// (policy.networking.k8s.io/v1beta1), a Node object per node and a
// host-network node-exporter pod per node. Without -o the YAML goes to
// standard output. With -o naming an existing directory (or a path ending
// in "/", which is created) it writes namespaces.yaml, pods.yaml and
// policies.yaml there, and nodes.yaml and clusterpolicies.yaml when there
// are nodes and cluster policies; otherwise -o names the one file to
// write.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/netfence/netfence/test/synth"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "synth:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("synth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg synth.Config
	fs.IntVar(&cfg.Pods, "pods", 5000, "number of pods (kube-system's included)")
	fs.IntVar(&cfg.Namespaces, "namespaces", 100, "number of namespaces (kube-system, monitoring and ingress-nginx included)")
	fs.IntVar(&cfg.Policies, "policies", 1000, "number of NetworkPolicies")
	fs.Int64Var(&cfg.Seed, "seed", 1, "random seed; the same flags give the same output")
	fs.IntVar(&cfg.Nodes, "nodes", 1, "number of nodes (node-0 .. node-N-1) the pods are spread over")
	fs.IntVar(&cfg.ClusterPolicies, "cluster-policies", 0, "number of ClusterNetworkPolicies; when not 0, Node objects and a host-network node-exporter pod per node are added")
	fs.BoolVar(&cfg.IPv6, "ipv6", false, "dual-stack pods and IPv6 ipBlocks")
	out := fs.String("o", "", "output `FILE`, or DIR for namespaces.yaml, pods.yaml, policies.yaml (and nodes.yaml, clusterpolicies.yaml) (default standard output)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: synth [-pods N] [-namespaces N] [-policies N] [-seed N] [-nodes N] [-cluster-policies N] [-ipv6] [-o FILE|DIR]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	start := time.Now()
	objs, err := synth.Generate(cfg)
	if err != nil {
		return err
	}
	if *out == "" {
		bw := bufio.NewWriterSize(stdout, 1<<18)
		if err := objs.WriteYAML(bw); err != nil {
			return err
		}
		return bw.Flush()
	}

	dir := strings.HasSuffix(*out, "/") || strings.HasSuffix(*out, string(os.PathSeparator))
	if fi, err := os.Stat(*out); err == nil && fi.IsDir() {
		dir = true
	}
	var size int64
	if dir {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		parts := []struct {
			name string
			objs *synth.Objects
			skip bool // an optional file with nothing to write
		}{
			{"namespaces.yaml", &synth.Objects{Namespaces: objs.Namespaces}, false},
			{"nodes.yaml", &synth.Objects{Nodes: objs.Nodes}, len(objs.Nodes) == 0},
			{"pods.yaml", &synth.Objects{Pods: objs.Pods}, false},
			{"policies.yaml", &synth.Objects{Policies: objs.Policies}, false},
			{"clusterpolicies.yaml", &synth.Objects{ClusterPolicies: objs.ClusterPolicies}, len(objs.ClusterPolicies) == 0},
		}
		for _, p := range parts {
			if p.skip {
				continue
			}
			n, err := writeFile(filepath.Join(*out, p.name), p.objs)
			if err != nil {
				return err
			}
			size += n
		}
	} else {
		n, err := writeFile(*out, objs)
		if err != nil {
			return err
		}
		size = n
	}
	var cluster string
	if len(objs.ClusterPolicies) > 0 {
		cluster = fmt.Sprintf(", %d nodes, %d cluster policies", len(objs.Nodes), len(objs.ClusterPolicies))
	}
	fmt.Fprintf(stderr, "synth: %d namespaces, %d pods, %d policies%s, %.1f MB to %s in %s\n",
		len(objs.Namespaces), len(objs.Pods), len(objs.Policies), cluster, float64(size)/1e6, *out,
		time.Since(start).Round(time.Millisecond))
	return nil
}

// writeFile writes objs to path and returns the number of bytes written.
func writeFile(path string, objs *synth.Objects) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	cw := &countingWriter{w: f}
	if err := objs.WriteYAML(cw); err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
