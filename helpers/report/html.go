package report

import (
	"bytes"
	"fmt"
	"html/template"
	"regexp"
	"strings"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

// BannerColour is the background of report.html's top banner for each verdict, so the
// outcome is seen (and tested) without scrolling.
var BannerColour = map[Verdict]string{Pass: "#1a7f37", Fail: "#cf222e", Skip: "#6e7781"}

// page is what the template renders.
type page struct {
	*Results
	Duration time.Duration
	Failed   []Check
	Areas    []areaChecks
	Charts   []template.HTML
	Env      [][2]string
	Banner   string
}

type areaChecks struct {
	AreaCount
	Checks []Check
}

func renderHTML(res *Results) ([]byte, error) {
	p := page{Results: res, Duration: res.Run.End.Sub(res.Run.Start).Round(time.Second), Env: environment(res.Run), Banner: BannerColour[res.Verdict]}
	idx := map[string]int{}
	for _, a := range res.Areas {
		idx[a.Area] = len(p.Areas)
		p.Areas = append(p.Areas, areaChecks{AreaCount: a})
	}
	for _, c := range res.Checks {
		if c.Verdict == Fail {
			p.Failed = append(p.Failed, c)
		}
		if i, ok := idx[c.Area]; ok {
			p.Areas[i].Checks = append(p.Areas[i].Checks, c)
		}
	}
	if m := res.Metrics; m != nil {
		var ttft, itl, tpot, e2e, tps []float64
		for _, s := range m.Samples {
			if !s.OK() {
				continue
			}
			ttft = append(ttft, ms(s.TTFT))
			e2e = append(e2e, ms(s.E2E))
			for _, d := range s.ITLs {
				itl = append(itl, ms(d))
			}
			if s.TPOT > 0 {
				tpot = append(tpot, ms(s.TPOT))
			}
			if s.Usage {
				tps = append(tps, s.OutputTokensPerSecond)
			}
		}
		for _, c := range []template.HTML{
			histogramSVG("Time to first token", "ms", ttft), histogramSVG("Inter-token latency", "ms", itl),
			histogramSVG("Time per output token", "ms", tpot), histogramSVG("End-to-end latency", "ms", e2e),
			histogramSVG("Output tokens/s per request", "tok/s", tps),
		} {
			if c != "" {
				p.Charts = append(p.Charts, c)
			}
		}
	}
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, p); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

var anchorUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

var pageTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"lower":  func(v Verdict) string { return strings.ToLower(string(v)) },
	"anchor": func(id string) string { return "check-" + anchorUnsafe.ReplaceAllString(id, "-") },
	"first":  firstLine,
	"dur": func(d time.Duration) string {
		if d < time.Second {
			return d.Round(time.Millisecond).String()
		}
		return d.Round(100 * time.Millisecond).String()
	},
	"fmtms":    metrics.FormatMS,
	"ms":       ms,
	"timeline": timelineSVG,
	"utc":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 MST") },
	"pct":      func(f float64) string { return fmt.Sprintf("%.0f %%", 100*f) },
	"f2":       func(f float64) string { return fmt.Sprintf("%.2f", f) },
	"safeCSS":  func(s string) template.CSS { return template.CSS(s) }, //nolint:gosec // BannerColour's constants
	"observed": observed,
	"passfail": func(ok bool) Verdict {
		if ok {
			return Pass
		}
		return Fail
	},
	"dists": func(s metrics.Summary) []namedDist {
		return []namedDist{{"Time to first token", s.TTFT}, {"Inter-token latency", s.ITL}, {"Time per output token", s.TPOT}, {"End-to-end latency", s.E2E}}
	},
}).Parse(pageHTML))

type namedDist struct {
	Name string
	D    metrics.Distribution
}

// pageHTML is one self-contained page: inline CSS, inline SVG, no script, and a
// Content-Security-Policy that forbids every fetch, so a mistake that adds one shows as
// a console error (the browser test fails on any) instead of a request.
const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SLM-Copilot certification: {{.Verdict}}</title>
<style>
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2328;background:#fff}
main{max-width:1120px;margin:0 auto;padding:0 24px 48px}
#verdict{color:#fff;padding:18px 24px}
#verdict .inner{max-width:1120px;margin:0 auto;display:flex;align-items:baseline;gap:24px;flex-wrap:wrap}
#verdict .word{font-size:40px;font-weight:700;letter-spacing:.04em}
#verdict .what{font-size:16px}
#verdict .counts{font-size:15px;opacity:.95}
h2{font-size:19px;margin:28px 0 10px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 8px}
table{border-collapse:collapse;margin:6px 0 12px}
th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;min-width:38px;text-align:center;border-radius:4px;padding:0 6px;font-size:12px;font-weight:700;color:#fff}
.badge.pass{background:#1a7f37}.badge.fail{background:#cf222e}.badge.skip{background:#6e7781}
details.check{border:1px solid #d0d7de;border-radius:6px;margin:4px 0}
details.check>summary{cursor:pointer;padding:5px 10px;list-style-position:inside}
details.check>summary .id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
details.check>summary .dur{color:#57606a;font-size:12px;margin-left:8px}
details.check>summary .msg{color:#57606a;font-size:12px;display:block;margin-left:52px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
details.check.fail{border-color:#ff8182}
details.check .body{padding:4px 14px 12px;border-top:1px solid #d0d7de}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:8px 10px;overflow:auto;max-height:360px;font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-all}
.ev{border-left:3px solid #d0d7de;padding-left:10px;margin:10px 0}
.ev .req{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.ev table{font-size:12px}
.muted{color:#57606a}
.charts{display:flex;flex-wrap:wrap;gap:12px}
svg.chart{background:#fff;border:1px solid #d0d7de;border-radius:6px;max-width:100%;height:auto}
ul.fails li{margin:2px 0}
a{color:#0969da}
footer{color:#57606a;font-size:12px;margin-top:32px}
</style>
</head>
<body>
<header id="verdict" style="background:{{.Banner | safeCSS}}">
<div class="inner">
<span class="word">{{.Verdict}}</span>
<span class="what">SLM-Copilot certification of <strong>{{.Run.Endpoint}}</strong>{{with .Run.Model}} · model {{.}}{{end}}</span>
<span class="counts">{{.Totals.Pass}} passed · {{.Totals.Fail}} failed · {{.Totals.Skip}} skipped · {{utc .Run.Start}} · {{.Duration}}</span>
</div>
</header>
<main>
<h2>Verdicts by area</h2>
<table>
<tr><th>Area</th><th>Verdict</th><th>Pass</th><th>Fail</th><th>Skip</th></tr>
{{range .Areas}}<tr><td><a href="#area-{{anchor .Area}}">{{.Area}}</a></td><td><span class="badge {{lower .Verdict}}">{{.Verdict}}</span></td><td class="n">{{.Pass}}</td><td class="n">{{.Fail}}</td><td class="n">{{.Skip}}</td></tr>
{{end}}<tr><th>Total</th><th><span class="badge {{lower .Verdict}}">{{.Verdict}}</span></th><th class="n">{{.Totals.Pass}}</th><th class="n">{{.Totals.Fail}}</th><th class="n">{{.Totals.Skip}}</th></tr>
</table>
{{with .Failed}}<h2>Failures</h2>
<ul class="fails">{{range .}}<li><a href="#{{anchor .ID}}"><code>{{.ID}}</code></a>: {{first .Message}}</li>{{end}}</ul>
{{end}}
{{with .Metrics}}<h2>Performance</h2>
<p class="muted">{{.Summary.Requests}} streamed requests measured, {{.Summary.Completed}} completed. Times run from the request to the arrival of the bytes, before parsing; tokens are the server's usage counts. Percentiles interpolate linearly between ranks (numpy's default).</p>
<table>
<tr><th>Metric</th><th>n</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>
{{range dists .Summary}}<tr><td>{{.Name}}</td><td class="n">{{.D.Count}}</td>{{if .D.Count}}<td class="n">{{fmtms .D.Mean}}</td><td class="n">{{fmtms .D.P50}}</td><td class="n">{{fmtms .D.P90}}</td><td class="n">{{fmtms .D.P99}}</td><td class="n">{{fmtms .D.Max}}</td>{{else}}<td colspan="5" class="muted">not measured</td>{{end}}</tr>
{{end}}{{with .Summary.TPS}}{{if .Count}}<tr><td>Output tokens/s per request</td><td class="n">{{.Count}}</td><td class="n">{{f2 .Mean}}</td><td class="n">{{f2 .P50}}</td><td class="n">{{f2 .P90}}</td><td class="n">{{f2 .P99}}</td><td class="n">{{f2 .Max}}</td></tr>{{end}}{{end}}
</table>
<p>Aggregate output throughput <strong>{{f2 .Summary.OutputThroughput}} tokens/s</strong>, request throughput {{f2 .Summary.RequestThroughput}} requests/s over {{fmtms .Summary.WindowMS}}{{with .Summary.Goodput}}; goodput {{.Requests}} requests ({{pct .Share}}), {{f2 .Rate}} requests/s{{end}}.</p>
<div class="charts">{{range $.Charts}}{{.}}{{end}}</div>
{{with .SLOs}}<h3>SLO gates{{with $.Metrics.SLOSpec}} ({{.}}){{end}}</h3>
<table><tr><th>SLO</th><th>Target</th><th>Observed</th><th>Verdict</th></tr>
{{range .}}<tr><td><code>{{.SLO}}</code></td><td>{{.Target}}</td><td class="n">{{if .Measured}}{{observed .}}{{else}}<span class="muted">not measured</span>{{end}}</td><td><span class="badge {{lower (passfail .Pass)}}">{{passfail .Pass}}</span></td></tr>
{{end}}</table>{{end}}
{{with .Baseline}}<h3>Compared with a baseline</h3>
<p><code>{{.Path}}</code> (run of {{utc .Run.Start}}), tolerance {{pct .Tolerance}}: {{if .Regressions}}{{len .Regressions}} regressions.{{else}}no regression.{{end}}</p>
{{with .Regressions}}<ul>{{range .}}<li>{{.Message}}</li>{{end}}</ul>{{end}}{{end}}
{{with .Bench}}{{template "bench" .}}{{end}}
{{end}}
<h2>Checks</h2>
{{range .Areas}}<h3 id="area-{{anchor .Area}}">{{.Area}} <span class="badge {{lower .Verdict}}">{{.Verdict}}</span> <span class="muted">{{.Pass}} pass · {{.Fail}} fail · {{.Skip}} skip</span></h3>
{{range .Checks}}<details class="check {{lower .Verdict}}" id="{{anchor .ID}}"{{if eq .Verdict "FAIL"}} open{{end}}>
<summary><span class="badge {{lower .Verdict}}">{{.Verdict}}</span> <span class="id">{{.ID}}</span><span class="dur">{{dur .Duration}}</span>{{with first .Message}}<span class="msg">{{.}}</span>{{end}}</summary>
<div class="body">
{{with .Message}}<pre>{{.}}</pre>{{end}}
{{range .Evidence}}<div class="ev">
<div class="req">{{.Request}}{{if .Status}} → <strong>{{.Status}}</strong>{{end}}{{with .From}} <span class="muted">(recorded by {{.}})</span>{{end}}</div>
{{with .Note}}<p class="muted">{{.}}</p>{{end}}
{{if .RequestHeaders}}<table><tr><th colspan="2">Request headers</th></tr>{{range $k, $v := .RequestHeaders}}<tr><td>{{$k}}</td><td>{{$v}}</td></tr>{{end}}</table>{{end}}
{{if .Headers}}<table><tr><th colspan="2">Response headers</th></tr>{{range $k, $v := .Headers}}<tr><td>{{$k}}</td><td>{{$v}}</td></tr>{{end}}</table>{{end}}
{{with .Timeline}}{{timeline .}}
<details><summary>{{len .}} events</summary><table><tr><th>at</th><th>kind</th><th>text</th></tr>{{range .}}<tr><td class="n">{{fmtms (ms .Offset)}}</td><td>{{.Kind}}</td><td>{{.Text}}</td></tr>{{end}}</table></details>{{end}}
{{with .BodyExcerpt}}<pre>{{.}}</pre>{{end}}
</div>{{end}}
</div>
</details>
{{end}}{{end}}
<h2>Environment</h2>
<table>{{range .Env}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>{{end}}</table>
<footer>Written by {{.Run.Suite}} · results.json schema_version {{.SchemaVersion}} · junit.xml and report.md beside this file.</footer>
</main>
</body>
</html>
`
