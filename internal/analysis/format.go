package analysis

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
)

// WriteJSON writes the matrix in its JSON contract:
//
//	{"ports":["TCP/80"],"pods":["ns/name"],"results":[{"from":"x/a","to":"y/b",
//	 "protocol":"TCP","port":80,"allowed":true,"ingress":true,"egress":true}]}
//
// plus "inactive" (pods left out and why) and, when there are any,
// "warnings" (m.Warnings). When the cluster has cluster-scoped policies,
// each result of two different pods also says what decided each
// direction: "egressTier" and "ingressTier" (Admin, NetworkPolicy,
// Baseline or Default; absent for a direction not subject to policy and
// for ingress from the destination's own node, always allowed) and,
// when a cluster policy rule decided, "egressRule" and "ingressRule"
// ("cnp/NAME spec.egress[0]"); see Matrix.Explain. It streams; results
// are ordered by port, then source, then destination.
func (m *Matrix) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	ports := make([]string, len(m.Ports))
	for i, p := range m.Ports {
		ports[i] = p.String()
	}
	keys := make([]string, len(m.Pods))
	quoted := make([]string, len(m.Pods))
	for i, p := range m.Pods {
		keys[i] = p.Key()
		q, _ := json.Marshal(keys[i])
		quoted[i] = string(q)
	}
	pj, _ := json.Marshal(ports)
	kj, _ := json.Marshal(keys)
	fmt.Fprintf(bw, `{"ports":%s,"pods":%s,"results":[`, pj, kj)
	first := true
	tiered := m.Tiered()
	quotedRules := map[string][]byte{}
	for k, port := range m.Ports {
		for i := range m.Pods {
			for j := range m.Pods {
				a, e, in := m.Result(i, j, k)
				if !first {
					bw.WriteByte(',')
				}
				first = false
				bw.WriteString(`{"from":`)
				bw.WriteString(quoted[i])
				bw.WriteString(`,"to":`)
				bw.WriteString(quoted[j])
				bw.WriteString(`,"protocol":"`)
				bw.WriteString(string(port.Protocol))
				bw.WriteString(`","port":`)
				bw.WriteString(strconv.Itoa(int(port.Port)))
				bw.WriteString(`,"allowed":`)
				bw.WriteString(strconv.FormatBool(a))
				bw.WriteString(`,"ingress":`)
				bw.WriteString(strconv.FormatBool(in))
				bw.WriteString(`,"egress":`)
				bw.WriteString(strconv.FormatBool(e))
				if i == j {
					bw.WriteString(`,"reason":"same pod"`)
				} else if tiered {
					eg, ing := m.Explain(i, j, k)
					writeDecision(bw, "egress", eg, quotedRules)
					writeDecision(bw, "ingress", ing, quotedRules)
				}
				bw.WriteByte('}')
			}
		}
	}
	bw.WriteString(`],"inactive":[`)
	for i, p := range m.Inactive {
		if i > 0 {
			bw.WriteByte(',')
		}
		b, _ := json.Marshal(map[string]string{"pod": p.Pod.Key(), "reason": p.Reason})
		bw.Write(b)
	}
	bw.WriteByte(']')
	if len(m.Warnings) > 0 {
		wj, _ := json.Marshal(m.Warnings)
		bw.WriteString(`,"warnings":`)
		bw.Write(wj)
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

// writeDecision writes the "egressTier" and "egressRule" (or ingress)
// fields of a cell, each when set; quoted caches the rules' JSON.
func writeDecision(bw *bufio.Writer, dir string, d Decision, quoted map[string][]byte) {
	if d.Layer != "" {
		bw.WriteString(`,"`)
		bw.WriteString(dir)
		bw.WriteString(`Tier":"`)
		bw.WriteString(string(d.Layer))
		bw.WriteByte('"')
	}
	if d.Rule != "" {
		q, ok := quoted[d.Rule]
		if !ok {
			q, _ = json.Marshal(d.Rule)
			quoted[d.Rule] = q
		}
		bw.WriteString(`,"`)
		bw.WriteString(dir)
		bw.WriteString(`Rule":`)
		bw.Write(q)
	}
}

// WriteCSV writes one line per pod pair and port.
func (m *Matrix) WriteCSV(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	bw.WriteString("from,to,protocol,port,allowed,egress,ingress\n")
	for k, port := range m.Ports {
		for i, from := range m.Pods {
			for j, to := range m.Pods {
				a, e, in := m.Result(i, j, k)
				fmt.Fprintf(bw, "%s,%s,%s,%d,%t,%t,%t\n", from.Key(), to.Key(), port.Protocol, port.Port, a, e, in)
			}
		}
	}
	return bw.Flush()
}

// WriteTable writes one truth table per port, as the upstream e2e tests
// print them: rows are sources, columns destinations, "." allowed, "X"
// denied.
func (m *Matrix) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for k, port := range m.Ports {
		if k > 0 {
			bw.WriteByte('\n')
		}
		fmt.Fprintf(bw, "%s:\n", port)
		tw := tabwriter.NewWriter(bw, 0, 0, 1, ' ', 0)
		io.WriteString(tw, "-")
		for _, p := range m.Pods {
			io.WriteString(tw, "\t"+p.Key())
		}
		io.WriteString(tw, "\n")
		for i, from := range m.Pods {
			io.WriteString(tw, from.Key())
			for j := range m.Pods {
				mark := "X"
				if a, _, _ := m.Result(i, j, k); a {
					mark = "."
				}
				io.WriteString(tw, "\t"+mark)
			}
			io.WriteString(tw, "\n")
		}
		tw.Flush()
	}
	m.writeInactive(bw)
	return bw.Flush()
}

// WriteSummary writes allowed and denied pair counts per port.
func (m *Matrix) WriteSummary(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "pods: %d (in %d equivalence classes), ordered pairs per port: %d\n", len(m.Pods), len(m.classes), int64(len(m.Pods))*int64(len(m.Pods)))
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	io.WriteString(tw, "PORT\tALLOWED\tDENIED\tALLOWED%\t\n")
	for _, s := range m.Summary() {
		pct := 0.0
		if t := s.Allowed + s.Denied; t > 0 {
			pct = 100 * float64(s.Allowed) / float64(t)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t\n", s.Port, s.Allowed, s.Denied, pct)
	}
	tw.Flush()
	m.writeInactive(bw)
	return bw.Flush()
}

func (m *Matrix) writeInactive(w io.Writer) {
	if len(m.Inactive) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%d pods left out (not Running or without an IP):\n", len(m.Inactive))
	for _, p := range m.Inactive {
		fmt.Fprintf(w, "  %s %s\n", p.Pod.Key(), p.Reason)
	}
}
