// promql-operands: parses PromQL with Prometheus's own parser and says, for each expression, which
// metrics it reads and which of its parts must return data for it to mean anything: every operand of
// a comparison or set operation (and, or, unless), and the argument of absent(). The monitoring tests
// use it to refuse dashboards and alerts that read a metric nobody exports, and to query each operand
// against a Prometheus that scrapes the real runtime and operator.
//
//	echo '["expr", ...]' | promql-operands   →   [{"expr", "metrics": [...], "operands": [...]} | {"expr", "error"}]
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

type result struct {
	Expr     string   `json:"expr"`
	Metrics  []string `json:"metrics,omitempty"`
	Operands []string `json:"operands,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// splits reports whether e itself separates operands that must each return data.
func splits(e parser.Expr) bool {
	switch n := e.(type) {
	case *parser.BinaryExpr:
		return n.Op.IsComparisonOperator() || n.Op.IsSetOperator()
	case *parser.Call:
		return n.Func.Name == "absent" || n.Func.Name == "absent_over_time"
	}
	return false
}

func containsSplit(e parser.Expr) bool {
	found := false
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if x, ok := n.(parser.Expr); ok && splits(x) {
			found = true
		}
		return nil
	})
	return found
}

// operands returns the largest sub-expressions without a split whose value is a vector or matrix.
func operands(e parser.Expr) []parser.Expr {
	if !containsSplit(e) {
		switch e.Type() {
		case parser.ValueTypeVector, parser.ValueTypeMatrix:
			return []parser.Expr{e}
		}
		return nil
	}
	var out []parser.Expr
	for _, child := range parser.Children(e) {
		if x, ok := child.(parser.Expr); ok {
			out = append(out, operands(x)...)
		}
	}
	return out
}

func metricNames(e parser.Expr) []string {
	set := map[string]bool{}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
			if name != "" {
				set[name] = true
			}
		}
		return nil
	})
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func main() {
	var exprs []string
	if err := json.NewDecoder(os.Stdin).Decode(&exprs); err != nil {
		fmt.Fprintf(os.Stderr, "promql-operands: stdin must be a JSON array of strings: %v\n", err)
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	results := make([]result, 0, len(exprs))
	for _, s := range exprs {
		e, err := p.ParseExpr(s)
		if err != nil {
			results = append(results, result{Expr: s, Error: err.Error()})
			continue
		}
		r := result{Expr: s, Metrics: metricNames(e)}
		for _, o := range operands(e) {
			r.Operands = append(r.Operands, o.String())
		}
		results = append(results, r)
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	if err := out.Encode(results); err != nil {
		fmt.Fprintf(os.Stderr, "promql-operands: %v\n", err)
		os.Exit(1)
	}
}
