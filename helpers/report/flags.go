package report

import (
	"flag"
	"fmt"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

// Flags are the suite's report options, registered by RegisterFlags so their names and
// help live with the code that reads them.
type Flags struct {
	Dir       string // -report
	SLO       string // -slo
	Baseline  string // -baseline
	Tolerance string // -baseline-tolerance
}

// RegisterFlags defines -report, -slo, -baseline and -baseline-tolerance on fs.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.Dir, "report", "", "directory for results.json, junit.xml, report.md and report.html (default ./certification/<UTC date-time>)")
	fs.StringVar(&f.SLO, "slo", "", `SLO gates, each a check: "ttft_p99=30s,itl_p99=2s,tpot_p99=1s,tps_min=1", or a preset: cpu, opennebula-gpu (combinable: "cpu,ttft_p99=20s")`)
	fs.StringVar(&f.Baseline, "baseline", "", "an earlier run's results.json: a metric worse than it by more than -baseline-tolerance fails")
	fs.StringVar(&f.Tolerance, "baseline-tolerance", "20%", "how much worse than -baseline a metric may be (20% or 0.2)")
	return f
}

// Check validates the flags before any check runs, so a typo fails at once.
func (f *Flags) Check() error {
	if _, err := metrics.ParseSLOs(f.SLO); err != nil {
		return fmt.Errorf("-slo: %w", err)
	}
	if _, err := metrics.ParseTolerance(f.Tolerance); err != nil {
		return fmt.Errorf("-baseline-tolerance: %w", err)
	}
	if f.Baseline != "" {
		if _, err := ReadResults(f.Baseline); err != nil {
			return fmt.Errorf("-baseline: %w", err)
		}
	}
	return nil
}

// Apply gives rec the SLOs and the baseline.
func (f *Flags) Apply(rec *Recorder) error {
	if err := rec.SetSLOs(f.SLO); err != nil {
		return fmt.Errorf("-slo: %w", err)
	}
	if f.Baseline == "" {
		return nil
	}
	tol, err := metrics.ParseTolerance(f.Tolerance)
	if err != nil {
		return fmt.Errorf("-baseline-tolerance: %w", err)
	}
	if err := rec.SetBaseline(f.Baseline, tol); err != nil {
		return fmt.Errorf("-baseline: %w", err)
	}
	return nil
}

// ReportDir is -report, or DefaultDir(start) without it.
func (f *Flags) ReportDir(start time.Time) string {
	if f.Dir != "" {
		return f.Dir
	}
	return DefaultDir(start)
}
