package synth

import (
	corev1 "k8s.io/api/core/v1"
)

// This file holds the vocabulary the generator draws from: team and product
// names, workload templates with their container ports, and the weights that
// make the generated cluster skewed the way real clusters are.

// teams are the owners of application namespaces, with relative weights (a
// few teams own most namespaces).
var teams = []weighted[string]{
	{"payments", 9}, {"checkout", 8}, {"search", 6}, {"identity", 5},
	{"platform", 7}, {"data", 6}, {"ml", 3}, {"growth", 4}, {"media", 3},
	{"logistics", 4}, {"support", 2},
}

// envs are the environments of application namespaces.
var envs = []weighted[string]{{"prod", 4}, {"staging", 3}, {"dev", 3}}

// products name the second part of an application namespace,
// <team>-<product>-<env>.
var products = []string{
	"core", "api", "web", "ledger", "orders", "catalog", "events", "reports",
	"billing", "accounts", "gateway", "stream", "batch", "portal", "mobile",
	"partners", "internal", "ingest", "insights", "fulfil", "pricing",
	"alerts", "sync", "legacy", "edge",
}

// prefixes name the first part of a workload, <prefix>-<role>.
var prefixes = []string{
	"checkout", "cart", "payments", "orders", "catalog", "inventory", "search",
	"users", "auth", "billing", "shipping", "notify", "email", "recs",
	"reviews", "ads", "pricing", "ledger", "fraud", "media", "thumbs",
	"profile", "session", "analytics", "reporting", "feed", "chat", "quotes",
	"invoice", "refunds", "tax", "loyalty", "coupons", "geo", "routing",
	"tracking", "audit", "export", "import", "webhooks",
}

// port is a named container port.
type port struct {
	name  string
	num   int32
	proto corev1.Protocol
}

func tcpPort(name string, num int32) port  { return port{name, num, corev1.ProtocolTCP} }
func udpPort(name string, num int32) port  { return port{name, num, corev1.ProtocolUDP} }
func sctpPort(name string, num int32) port { return port{name, num, corev1.ProtocolSCTP} }

// template describes a kind of workload. Several templates deliberately use
// the same port name for different numbers (http is 8080, 3000, 80 or 9200;
// grpc is 9000 or 50051; metrics is 9090 or 8081) the way real clusters do.
type template struct {
	role     string
	tier     string
	stateful bool
	image    string
	ports    []port
}

var templates = []weighted[*template]{
	{&template{role: "web", tier: "frontend", image: "nginx:1.27", ports: []port{tcpPort("http", 8080), tcpPort("metrics", 9090)}}, 10},
	{&template{role: "ui", tier: "frontend", image: "node:22-alpine", ports: []port{tcpPort("http", 3000)}}, 4},
	{&template{role: "api", tier: "backend", image: "registry.example.com/api:1.4.2", ports: []port{tcpPort("http", 8080), tcpPort("grpc", 9000), tcpPort("metrics", 9090)}}, 18},
	{&template{role: "svc", tier: "backend", image: "registry.example.com/svc:2.0.1", ports: []port{tcpPort("grpc", 50051), tcpPort("health", 8086), tcpPort("metrics", 9090)}}, 8},
	{&template{role: "gateway", tier: "edge", image: "envoyproxy/envoy:v1.31", ports: []port{tcpPort("http", 80), tcpPort("https", 443), tcpPort("admin", 9901)}}, 3},
	{&template{role: "worker", tier: "worker", image: "registry.example.com/worker:3.2.0", ports: []port{tcpPort("metrics", 9090)}}, 12},
	{&template{role: "consumer", tier: "worker", image: "registry.example.com/consumer:1.0.7"}, 5},
	{&template{role: "cron", tier: "batch", image: "registry.example.com/batch:0.9.3", ports: []port{tcpPort("metrics", 8081)}}, 3},
	{&template{role: "postgres", tier: "db", stateful: true, image: "postgres:16", ports: []port{tcpPort("postgres", 5432), tcpPort("metrics", 9187)}}, 6},
	{&template{role: "mysql", tier: "db", stateful: true, image: "mysql:8.4", ports: []port{tcpPort("mysql", 3306), tcpPort("metrics", 9104)}}, 2},
	{&template{role: "redis", tier: "cache", stateful: true, image: "redis:7.4", ports: []port{tcpPort("redis", 6379), tcpPort("metrics", 9121)}}, 5},
	{&template{role: "memcached", tier: "cache", image: "memcached:1.6", ports: []port{tcpPort("memcache", 11211)}}, 2},
	{&template{role: "kafka", tier: "queue", stateful: true, image: "apache/kafka:3.8.0", ports: []port{tcpPort("kafka", 9092), tcpPort("metrics", 9308)}}, 2},
	{&template{role: "rabbitmq", tier: "queue", stateful: true, image: "rabbitmq:3.13", ports: []port{tcpPort("amqp", 5672), tcpPort("management", 15672), tcpPort("metrics", 15692)}}, 1},
	{&template{role: "search", tier: "search", stateful: true, image: "elasticsearch:8.15.0", ports: []port{tcpPort("http", 9200), tcpPort("transport", 9300)}}, 1},
	{&template{role: "statsd", tier: "monitoring", image: "prom/statsd-exporter:v0.27.1", ports: []port{udpPort("statsd", 8125), tcpPort("metrics", 9102)}}, 1},
	{&template{role: "diameter", tier: "telecom", image: "registry.example.com/diameter:1.2.0", ports: []port{sctpPort("diameter", 3868), tcpPort("metrics", 9090)}}, 1},
	{&template{role: "sip", tier: "telecom", image: "registry.example.com/sip:5.1.0", ports: []port{udpPort("sip", 5060), tcpPort("sip-tcp", 5060), tcpPort("sip-tls", 5061)}}, 1},
}

// istioProxyPorts are the ports of the sidecar injected into pods of
// namespaces labelled istio-injection=enabled.
var istioProxyPorts = []port{tcpPort("http-envoy-prom", 15090)}

// weighted is a choice with a relative weight.
type weighted[T any] struct {
	v T
	w int
}
