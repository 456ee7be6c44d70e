package connectivity

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteJSON writes the report: the matrix contract ("ports", "pods",
// "results" with from, to, protocol, port, allowed, ingress, egress) where
// allowed is observed, plus "expected" per result.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	return enc.Encode(r)
}

// WriteTable writes, per port, the observed truth table beside the
// analyzer's expected one ("." allowed, "X" denied); a mismatch is marked
// "!" in the observed table and listed below.
func (r *Report) WriteTable(w io.Writer) error {
	bw := bufio.NewWriter(w)
	n := len(r.Pods)
	for k, port := range r.Ports {
		if k > 0 {
			bw.WriteByte('\n')
		}
		fmt.Fprintf(bw, "%s: observed | expected\n", port)
		tw := tabwriter.NewWriter(bw, 0, 0, 1, ' ', 0)
		io.WriteString(tw, "-")
		for _, p := range r.Pods {
			io.WriteString(tw, "\t"+p)
		}
		io.WriteString(tw, "\t|")
		for i := range r.Pods {
			fmt.Fprintf(tw, "\t%d", i+1)
		}
		io.WriteString(tw, "\n")
		for i, from := range r.Pods {
			fmt.Fprintf(tw, "%d %s", i+1, from)
			for j := 0; j < n; j++ {
				res := r.Results[k*n*n+i*n+j]
				mark := mark(res.Allowed)
				if !res.Probed {
					mark = "-"
				}
				if res.Mismatch {
					mark += "!"
				}
				io.WriteString(tw, "\t"+mark)
			}
			io.WriteString(tw, "\t|")
			for j := 0; j < n; j++ {
				io.WriteString(tw, "\t"+mark(r.Results[k*n*n+i*n+j].Expected))
			}
			io.WriteString(tw, "\n")
		}
		tw.Flush()
	}
	fmt.Fprintf(bw, "\n%d probes, %d mismatches (\"-\" not probed: same pod, or from a host-network pod; the table shows each pair at the destination's primary address)\n", r.Probes, r.Mismatches)
	if r.Reprobed > 0 {
		fmt.Fprintf(bw, "%d probes disagreed at first and were made again after the settle time (agents still syncing?); the final outcomes are shown\n", r.Reprobed)
	}
	for _, res := range r.Results {
		if res.Mismatch {
			fmt.Fprintf(bw, "MISMATCH %s -> %s%s %s/%d: observed %s (%s), expected %s\n", res.From, res.To, addrWords(res), res.Protocol, res.Port,
				word(res.Allowed), res.Outcome, word(res.Expected))
		}
	}
	return bw.Flush()
}

func mark(allowed bool) string {
	if allowed {
		return "."
	}
	return "X"
}

func word(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "denied"
}

// addrWords names a result's addresses, when known.
func addrWords(r Result) string {
	if r.FromAddress == "" || r.ToAddress == "" {
		return ""
	}
	return " (" + r.FromAddress + " -> " + r.ToAddress + ")"
}
