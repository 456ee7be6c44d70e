// Package bench measures netfence's dataplane and control plane.
//
// # Dataplane
//
// Between two real pods of a testbed (internal/testbed), a client and a
// server, the load generator (Load) opens and closes TCP connections as fast
// as it can for a fixed time with a few workers, and records the connect
// latency of each, the connection rate and the CPU time this process spent
// per connection. Connections are closed with SO_LINGER 0, so the client
// sends a reset and neither side keeps a TIME_WAIT socket: ports are never
// exhausted. The server (Server) is a bare accept-and-close loop.
//
// The cluster (Build) holds the two pods, on the bed's node, plus
// Scenario.RemotePods pods of other nodes (addresses only: they are peers,
// not local, and are not in the bed) and Scenario.Policies policies in the
// server's namespace, Scenario.Selecting of which select the server and
// allow the client among many other peers. The ruleset is rendered from the
// whole cluster with nft.Options{Node: Node}, so only the two pods are
// local. Configurations (no table; a table holding only the conntrack rule;
// netfence's table for several policy counts) are installed in turn in the
// bed's node namespace and measured in the same run, interleaved.
//
// # Control plane
//
// SynthCluster generates a realistic cluster (test/synth). Through the
// node agent as it runs (TimedAgent wraps internal/agent with a timed
// dataplane), the benchmarks time a full sync (compile, render and one
// transaction) and the path from one pod label change to the kernel
// (compile, render, diff and one transaction), in a bare node namespace
// (NodeNS).
//
// Everything is created inside network namespaces the package (or the
// testbed) creates; nothing touches the root network namespace.
package bench
