package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

// renderMarkdown writes report.md: what a marketplace pull request quotes. GitHub
// renders its tables and <details>.
func renderMarkdown(res *Results) ([]byte, error) {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	run := res.Run
	p("# SLM-Copilot certification: %s\n\n", verdictMark(res.Verdict))
	p("%d checks: %d passed, %d failed, %d skipped. %s, %s mode, %s.\n\n",
		len(res.Checks), res.Totals.Pass, res.Totals.Fail, res.Totals.Skip, mdCode(run.Endpoint), orDash(string(run.Mode)),
		run.Start.UTC().Format("2006-01-02 15:04 MST"))

	p("## Verdicts by area\n\n| Area | Verdict | Pass | Fail | Skip |\n|---|---|--:|--:|--:|\n")
	for _, a := range res.Areas {
		p("| %s | %s | %d | %d | %d |\n", mdCell(a.Area), verdictMark(a.Verdict), a.Pass, a.Fail, a.Skip)
	}
	p("| **Total** | %s | %d | %d | %d |\n\n", verdictMark(res.Verdict), res.Totals.Pass, res.Totals.Fail, res.Totals.Skip)

	var failed []Check
	for _, c := range res.Checks {
		if c.Verdict == Fail {
			failed = append(failed, c)
		}
	}
	if len(failed) > 0 {
		p("## Failures\n\n")
		for _, c := range failed {
			p("- %s: %s\n", mdCode(c.ID), mdCell(firstLine(c.Message)))
		}
		p("\n")
	}

	if m := res.Metrics; m != nil {
		s := m.Summary
		p("## Performance\n\n%d streamed requests measured, %d completed. Times from the request to the arrival of the bytes; tokens from the server's usage.\n\n", s.Requests, s.Completed)
		p("| Metric | n | mean | p50 | p90 | p99 |\n|---|--:|--:|--:|--:|--:|\n")
		for _, row := range []struct {
			name string
			d    metrics.Distribution
		}{{"Time to first token", s.TTFT}, {"Inter-token latency", s.ITL}, {"Time per output token", s.TPOT}, {"End-to-end latency", s.E2E}} {
			if row.d.Count == 0 {
				p("| %s | 0 | – | – | – | – |\n", row.name)
				continue
			}
			p("| %s | %d | %s | %s | %s | %s |\n", row.name, row.d.Count, metrics.FormatMS(row.d.Mean), metrics.FormatMS(row.d.P50), metrics.FormatMS(row.d.P90), metrics.FormatMS(row.d.P99))
		}
		if s.TPS.Count > 0 {
			p("| Output tokens/s per request | %d | %.2f | %.2f | %.2f | %.2f |\n", s.TPS.Count, s.TPS.Mean, s.TPS.P50, s.TPS.P90, s.TPS.P99)
		}
		p("\nAggregate output throughput %.2f tokens/s, request throughput %.3f requests/s over %s", s.OutputThroughput, s.RequestThroughput, metrics.FormatMS(s.WindowMS))
		if g := s.Goodput; g != nil {
			p("; goodput %d of %d requests (%.0f %%), %.3f requests/s", g.Requests, s.Requests, 100*g.Share, g.Rate)
		}
		p(".\n\n")
		if len(m.SLOs) > 0 {
			p("### SLO gates (%s)\n\n| SLO | Target | Observed | Verdict |\n|---|---|---|---|\n", mdCode(m.SLOSpec))
			for _, v := range m.SLOs {
				verdict, obs := Pass, "not measured"
				if !v.Pass {
					verdict = Fail
				}
				if v.Measured {
					obs = observed(v)
				}
				p("| %s | %s | %s | %s |\n", mdCode(v.SLO), mdCell(v.Target), obs, verdictMark(verdict))
			}
			p("\n")
		}
		if bl := m.Baseline; bl != nil {
			p("### Compared with a baseline\n\n%s (run of %s), tolerance %.0f %%: ", mdCode(bl.Path), bl.Run.Start.UTC().Format(time.RFC3339), 100*bl.Tolerance)
			if len(bl.Regressions) == 0 {
				p("no regression.\n\n")
			} else {
				p("%d regressions.\n\n", len(bl.Regressions))
				for _, r := range bl.Regressions {
					p("- %s\n", mdCell(r.Message))
				}
				p("\n")
			}
		}
		if m.Bench != nil {
			p("%s", benchMarkdown(m.Bench))
		}
	}

	p("## Environment\n\n| | |\n|---|---|\n")
	for _, kv := range environment(run) {
		p("| %s | %s |\n", kv[0], mdCell(kv[1]))
	}
	p("\n<details><summary>All %d checks</summary>\n\n| Check | Area | Verdict | Duration |\n|---|---|---|--:|\n", len(res.Checks))
	for _, c := range res.Checks {
		p("| %s | %s | %s | %s |\n", mdCode(c.ID), mdCell(c.Area), verdictMark(c.Verdict), c.Duration.Round(time.Millisecond))
	}
	p("\n</details>\n")
	return []byte(b.String()), nil
}

func observed(v metrics.Verdict) string {
	if strings.HasPrefix(v.SLO, "tps_") {
		return fmt.Sprintf("%.2f tok/s", v.Observed)
	}
	return metrics.FormatMS(v.Observed)
}

// environment is the run's metadata as label/value rows, shared by the Markdown and
// HTML reports.
func environment(run Run) [][2]string {
	rows := [][2]string{
		{"Suite", strings.TrimSpace(run.Suite + " " + run.SuiteVersion)},
		{"Suite commit", run.SuiteCommit},
		{"Go", run.GoVersion},
		{"Started", run.Start.UTC().Format(time.RFC3339)},
		{"Ended", run.End.UTC().Format(time.RFC3339)},
		{"Mode", string(run.Mode)},
		{"Endpoint", run.Endpoint},
		{"Model", run.Model},
		{"Engine", strings.TrimSpace(run.Engine + " " + run.EngineVersion)},
		{"TLS versions accepted", strings.Join(run.TLSVersions, ", ")},
	}
	if c := run.Certificate; c != nil {
		self := ""
		if c.SelfSigned {
			self = " (self-signed)"
		}
		rows = append(rows,
			[2]string{"Certificate subject", c.Subject + self},
			[2]string{"Certificate issuer", c.Issuer},
			[2]string{"Certificate SANs", strings.Join(c.SANs, ", ")},
			[2]string{"Certificate validity", c.NotBefore.UTC().Format(time.RFC3339) + " to " + c.NotAfter.UTC().Format(time.RFC3339)},
			[2]string{"Certificate SHA-256", c.SHA256},
		)
	}
	if o := run.OpenNebula; o != nil {
		rows = append(rows, [2]string{"OpenNebula", o.Endpoint})
		for _, obj := range o.Objects {
			v := fmt.Sprintf("%d %s", obj.ID, obj.Name)
			if obj.Note != "" {
				v += " (" + obj.Note + ")"
			}
			rows = append(rows, [2]string{"OpenNebula " + obj.Kind, strings.TrimSpace(v)})
		}
	}
	for _, s := range run.Settings {
		rows = append(rows, [2]string{s.Name, s.Value})
	}
	out := rows[:0]
	for _, r := range rows {
		if strings.TrimSpace(r[1]) != "" {
			out = append(out, r)
		}
	}
	return out
}

func verdictMark(v Verdict) string {
	switch v {
	case Pass:
		return "✅ PASS"
	case Fail:
		return "❌ FAIL"
	}
	return "⏭️ SKIP"
}

// mdCell makes s safe inside a table cell: one line, pipes and markup escaped.
func mdCell(s string) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
	r := strings.NewReplacer(`\`, `\\`, "|", `\|`, "<", `&lt;`, ">", `&gt;`, "*", `\*`, "_", `\_`, "`", "\\`", "[", `\[`, "]", `\]`)
	return r.Replace(s)
}

// mdCode puts s in a code span, with a fence longer than any backtick run inside.
func mdCode(s string) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
	s = strings.ReplaceAll(s, "|", `\|`)
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}
