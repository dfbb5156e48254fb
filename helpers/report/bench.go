package report

import (
	"fmt"
	"html/template"
	"strings"

	"github.com/slm-copilot/slm-copilot/helpers/bench"
	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

// benchMarkdown is report.md's account of a -bench run: a row per concurrency level,
// then the Cline profile and the front door's overhead.
func benchMarkdown(b *bench.Result) string {
	var s strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&s, format, a...) }
	p("### Load profile (-bench)\n\n%s\n\n", benchSettings(b))
	if b.LoadError != "" {
		p("Load profile not measured: %s\n\n", mdCell(b.LoadError))
	}
	if len(b.Levels) > 0 {
		p("| Concurrency | Completed | TTFT p50 | TTFT p90 | TTFT p99 | TTFT mean | ITL p50 | ITL p99 | TPOT p50 | TPOT p99 | E2E p50 | E2E p99 | tok/s per request | tok/s | requests/s | Goodput | Stopped by |\n")
		p("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
		fm := metrics.FormatMS
		for _, lv := range b.Levels {
			s := lv.Summary
			p("| %d | %d/%d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2f | %.2f | %.3f | %s | %s |\n",
				lv.Concurrency, s.Completed, s.Requests, fm(s.TTFT.P50), fm(s.TTFT.P90), fm(s.TTFT.P99), fm(s.TTFT.Mean),
				fm(s.ITL.P50), fm(s.ITL.P99), fm(s.TPOT.P50), fm(s.TPOT.P99), fm(s.E2E.P50), fm(s.E2E.P99),
				s.TPS.Mean, s.OutputThroughput, s.RequestThroughput, goodputCell(s.Goodput), mdCell(lv.Stop))
		}
		p("\n")
	}
	switch {
	case b.Cline != nil:
		p("Cline profile: %s.\n\n", mdCell(b.Cline.String()))
	case b.ClineError != "":
		p("Cline profile not measured: %s\n\n", mdCell(b.ClineError))
	}
	switch {
	case b.FrontDoor != nil:
		p("Front door overhead: %s.\n\n", mdCell(b.FrontDoor.String()))
	case b.FrontDoorError != "":
		p("Front door overhead not measured: %s\n\n", mdCell(b.FrontDoorError))
	}
	return s.String()
}

// benchSettings says what the load was.
func benchSettings(b *bench.Result) string {
	s := fmt.Sprintf("%d output tokens per request, at most %d requests and %s per level", b.OutputTokens, b.Requests, metrics.FormatMS(b.DurationMS))
	if z := b.Sizing; z != nil {
		s += fmt.Sprintf(", prompts of ≈%d tokens", z.Tokens)
	}
	return s + ". Not in the SLO gates above: goodput counts the level's requests that met every SLO."
}

func goodputCell(g *metrics.Goodput) string {
	if g == nil {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100*g.Share)
}

// benchHTML is report.html's account of a -bench run, a template of pageTemplate's set.
const benchHTML = `<h3>Load profile (-bench)</h3>
<p class="muted">{{benchSettings .}}</p>
{{with .LoadError}}<p>Load profile not measured: {{.}}</p>{{end}}
{{with .Levels}}<table>
<tr><th>Concurrency</th><th>Completed</th><th>TTFT p50</th><th>p90</th><th>p99</th><th>mean</th><th>ITL p50</th><th>p99</th><th>TPOT p50</th><th>p99</th><th>E2E p50</th><th>p99</th><th>tok/s per request</th><th>tok/s</th><th>requests/s</th><th>Goodput</th><th>Stopped by</th></tr>
{{range .}}{{$s := .Summary}}<tr><td class="n">{{.Concurrency}}</td><td class="n">{{$s.Completed}}/{{$s.Requests}}</td><td class="n">{{fmtms $s.TTFT.P50}}</td><td class="n">{{fmtms $s.TTFT.P90}}</td><td class="n">{{fmtms $s.TTFT.P99}}</td><td class="n">{{fmtms $s.TTFT.Mean}}</td><td class="n">{{fmtms $s.ITL.P50}}</td><td class="n">{{fmtms $s.ITL.P99}}</td><td class="n">{{fmtms $s.TPOT.P50}}</td><td class="n">{{fmtms $s.TPOT.P99}}</td><td class="n">{{fmtms $s.E2E.P50}}</td><td class="n">{{fmtms $s.E2E.P99}}</td><td class="n">{{f2 $s.TPS.Mean}}</td><td class="n">{{f2 $s.OutputThroughput}}</td><td class="n">{{f2 $s.RequestThroughput}}</td><td class="n">{{goodput $s.Goodput}}</td><td>{{.Stop}}</td></tr>
{{end}}</table>{{end}}
{{with .Cline}}<p>Cline profile: {{.String}}.</p>{{end}}{{with .ClineError}}<p>Cline profile not measured: {{.}}</p>{{end}}
{{with .FrontDoor}}<p>Front door overhead: {{.String}}.</p>{{end}}{{with .FrontDoorError}}<p>Front door overhead not measured: {{.}}</p>{{end}}
`

var _ = template.Must(pageTemplate.New("bench").Funcs(template.FuncMap{
	"benchSettings": benchSettings,
	"goodput":       goodputCell,
}).Parse(benchHTML))
