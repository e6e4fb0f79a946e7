// Command promparse reads the Prometheus text exposition format on stdin with the reference parser
// (github.com/prometheus/common/expfmt TextParser, what Prometheus' own text scrapes and client_golang
// use) and prints the metric families as JSON:
//
//	{ "<family>": { "type": "counter", "help": "…", "samples": [ { "labels": {…}, "value": 1.5, "timestampMs": 1633253809720 } ] } }
//
// timestampMs is null when a sample has none. NaN and ±Inf are printed as the strings "NaN", "+Inf",
// "-Inf" (JSON has no such numbers). Summaries and histograms carry value = the sum, plus count and
// their quantiles or cumulative buckets. On a parse error it prints the parser's message on stderr
// and exits 1.
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

type sample struct {
	Labels      map[string]string `json:"labels"`
	Value       any               `json:"value"`
	TimestampMs *int64            `json:"timestampMs"`
	Count       *uint64           `json:"count,omitempty"`
	Quantiles   map[string]any    `json:"quantiles,omitempty"`
	Buckets     map[string]uint64 `json:"buckets,omitempty"`
}

type family struct {
	Type    string   `json:"type"`
	Help    string   `json:"help,omitempty"`
	Samples []sample `json:"samples"`
}

func number(v float64) any {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return v
}

func key(v float64) string {
	if s, ok := number(v).(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

func main() {
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
	out := make(map[string]family, len(families))
	names := make([]string, 0, len(families))
	for name := range families {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		mf := families[name]
		f := family{Type: strings.ToLower(mf.GetType().String()), Help: mf.GetHelp(), Samples: []sample{}}
		for _, m := range mf.GetMetric() {
			s := sample{Labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.Labels[l.GetName()] = l.GetValue()
			}
			if m.TimestampMs != nil {
				ts := m.GetTimestampMs()
				s.TimestampMs = &ts
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				s.Value = number(m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				s.Value = number(m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				s.Value = number(m.GetUntyped().GetValue())
			case dto.MetricType_SUMMARY:
				c := m.GetSummary().GetSampleCount()
				s.Value, s.Count, s.Quantiles = number(m.GetSummary().GetSampleSum()), &c, map[string]any{}
				for _, q := range m.GetSummary().GetQuantile() {
					s.Quantiles[key(q.GetQuantile())] = number(q.GetValue())
				}
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				c := m.GetHistogram().GetSampleCount()
				s.Value, s.Count, s.Buckets = number(m.GetHistogram().GetSampleSum()), &c, map[string]uint64{}
				for _, b := range m.GetHistogram().GetBucket() {
					s.Buckets[key(b.GetUpperBound())] = b.GetCumulativeCount()
				}
			}
			f.Samples = append(f.Samples, s)
		}
		out[name] = f
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
}
