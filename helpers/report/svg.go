package report

import (
	"fmt"
	"html/template"
	"math"
	"sort"
	"strings"

	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

// The charts are SVG written here, inline in report.html: no script, no font, no
// request.

var kindColour = map[metrics.Kind]string{
	metrics.KindContent:  "#0969da",
	metrics.KindToolCall: "#8250df",
	metrics.KindRole:     "#8c959f",
	metrics.KindUsage:    "#bc4c00",
	metrics.KindFinish:   "#4d2d00",
	metrics.KindDone:     "#1f2328",
	metrics.KindError:    "#cf222e",
	metrics.KindOther:    "#afb8c1",
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// niceStep is a round step (1, 2 or 5 × 10^k) giving about n intervals over span.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// axisLabel prints a millisecond value compactly for an axis.
func axisLabel(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 1000:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v/1000), "0"), ".") + " s"
	}
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v), "0"), ".") + " ms"
}

// timelineSVG draws a stream's events on a time axis from the request (0) to the last
// event: a strip with one tick per event coloured by kind, and below it the cumulative
// count of output events, so a buffered stream shows as one late cliff and a live one
// as a slope.
func timelineSVG(events []metrics.Event) template.HTML {
	if len(events) == 0 {
		return ""
	}
	const (
		w, h                   = 720.0, 190.0
		left, right, top, bott = 56.0, 16.0, 14.0, 34.0
		strip                  = 26.0
	)
	maxT := 0.0
	outputs := 0
	for _, e := range events {
		maxT = math.Max(maxT, ms(e.Offset))
		if e.Kind == metrics.KindContent || e.Kind == metrics.KindToolCall {
			outputs++
		}
	}
	step := niceStep(maxT, 6)
	xmax := math.Max(step, math.Ceil(maxT/step)*step)
	pw := w - left - right
	x := func(v float64) float64 { return left + pw*v/xmax }
	plotTop, plotBot := top+strip+12, h-bott
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img" aria-label="stream timeline: %d events over %s">`,
		w, h, w, h, len(events), esc(metrics.FormatMS(maxT)))
	fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#f6f8fa"/>`, left, top, pw, strip)
	for _, e := range events {
		fmt.Fprintf(&b, `<line x1="%.2f" x2="%.2f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="1.2"><title>%s %s</title></line>`,
			x(ms(e.Offset)), x(ms(e.Offset)), top+2, top+strip-2, kindColour[e.Kind], esc(axisLabel(ms(e.Offset))), esc(string(e.Kind)))
	}
	// Axes and grid.
	for v := 0.0; v <= xmax+step/2; v += step {
		fmt.Fprintf(&b, `<line x1="%.2f" x2="%.2f" y1="%.1f" y2="%.1f" stroke="#d0d7de" stroke-width="0.6"/>`, x(v), x(v), plotTop, plotBot)
		fmt.Fprintf(&b, `<text x="%.2f" y="%.1f" font-size="10" text-anchor="middle" fill="#57606a">%s</text>`, x(v), plotBot+13, esc(axisLabel(v)))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="end" fill="#57606a">time since the request</text>`, w-right, h-4)
	lx := left
	for _, k := range []metrics.Kind{metrics.KindContent, metrics.KindToolCall, metrics.KindRole, metrics.KindUsage, metrics.KindFinish, metrics.KindDone, metrics.KindError} {
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="8" height="8" fill="%s"/><text x="%.1f" y="%.1f" font-size="10" fill="#57606a">%s</text>`,
			lx, h-12, kindColour[k], lx+11, h-4, esc(strings.ReplaceAll(string(k), "_", " ")))
		lx += 19 + 6*float64(len(k))
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="end" fill="#57606a">events</text>`, left-6, top+strip/2+3)
	fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#8c959f"/>`, left, w-right, plotBot, plotBot)
	if outputs > 0 {
		y := func(n int) float64 { return plotBot - (plotBot-plotTop)*float64(n)/float64(outputs) }
		var path strings.Builder
		n, ttft := 0, -1.0
		fmt.Fprintf(&path, "M%.2f %.2f", x(0), y(0))
		for _, e := range events {
			if e.Kind != metrics.KindContent && e.Kind != metrics.KindToolCall {
				continue
			}
			if ttft < 0 {
				ttft = ms(e.Offset)
			}
			fmt.Fprintf(&path, " H%.2f", x(ms(e.Offset)))
			n++
			fmt.Fprintf(&path, " V%.2f", y(n))
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="#0969da" stroke-width="1.6"/>`, path.String())
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="end" fill="#57606a">%d</text>`, left-6, plotTop+4, outputs)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="end" fill="#57606a">0</text>`, left-6, plotBot)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="end" fill="#57606a" transform="rotate(-90 %.1f %.1f)">output events</text>`,
			14.0, (plotTop+plotBot)/2, 14.0, (plotTop+plotBot)/2)
		fmt.Fprintf(&b, `<line x1="%.2f" x2="%.2f" y1="%.1f" y2="%.1f" stroke="#cf222e" stroke-dasharray="3 2"/>`, x(ttft), x(ttft), top, plotBot)
		anchor := "start"
		tx := x(ttft) + 4
		if x(ttft) > w-right-90 {
			anchor, tx = "end", x(ttft)-4
		}
		fmt.Fprintf(&b, `<text x="%.2f" y="%.1f" font-size="10" text-anchor="%s" fill="#cf222e">TTFT %s</text>`, tx, plotTop+12, anchor, esc(metrics.FormatMS(ttft)))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built here, every text escaped
}

// histogramSVG draws the distribution of values (milliseconds, or tokens/s when unit
// says so) with its p50, p90 and p99 marked.
func histogramSVG(title, unit string, values []float64) template.HTML {
	if len(values) == 0 {
		return ""
	}
	const (
		w, h                   = 340.0, 190.0
		left, right, top, bott = 36.0, 12.0, 62.0, 24.0
	)
	v := append([]float64(nil), values...)
	sort.Float64s(v)
	lo, hi := v[0], v[len(v)-1]
	if hi == lo {
		lo, hi = lo-math.Max(1, lo*0.1), hi+math.Max(1, hi*0.1)
		lo = math.Max(lo, 0)
	}
	bins := int(math.Ceil(math.Sqrt(float64(len(v)))))
	bins = min(max(bins, 5), 24)
	counts := make([]int, bins)
	for _, x := range v {
		i := int(float64(bins) * (x - lo) / (hi - lo))
		counts[min(max(i, 0), bins-1)]++
	}
	most := 0
	for _, c := range counts {
		most = max(most, c)
	}
	pw, ph := w-left-right, h-top-bott
	x := func(val float64) float64 { return left + pw*(val-lo)/(hi-lo) }
	label := func(val float64) string {
		if unit == "ms" {
			return axisLabel(val)
		}
		return fmt.Sprintf("%.2f", val)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f" role="img" aria-label="%s: %d values">`,
		w, h, w, h, esc(title), len(v))
	fmt.Fprintf(&b, `<text x="%.1f" y="14" font-size="12" font-weight="600" fill="#1f2328">%s</text>`, left, esc(title))
	fmt.Fprintf(&b, `<text x="%.1f" y="14" font-size="10" text-anchor="end" fill="#57606a">n = %d</text>`, w-right, len(v))
	fmt.Fprintf(&b, `<text x="%.1f" y="29" font-size="10" fill="#57606a">%s</text>`, left, esc(fmt.Sprintf("p50 %s · p90 %s · p99 %s",
		label(metrics.Percentile(v, 50)), label(metrics.Percentile(v, 90)), label(metrics.Percentile(v, 99)))))
	bw := pw / float64(bins)
	for i, c := range counts {
		if c == 0 {
			continue
		}
		bh := ph * float64(c) / float64(most)
		fmt.Fprintf(&b, `<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="#54aeff"><title>%d</title></rect>`,
			left+float64(i)*bw+0.5, top+ph-bh, math.Max(bw-1, 0.5), bh, c)
	}
	fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#8c959f"/>`, left, w-right, top+ph, top+ph)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" fill="#57606a">%s</text>`, left, h-8, esc(label(lo)))
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="end" fill="#57606a">%s</text>`, w-right, h-8, esc(label(hi)))
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="end" fill="#57606a">%d</text>`, left-4, top+6, most)
	for i, p := range []struct {
		name string
		pct  float64
	}{{"p50", 50}, {"p90", 90}, {"p99", 99}} {
		val := metrics.Percentile(v, p.pct)
		ly := top - 6 - float64(2-i)*9
		fmt.Fprintf(&b, `<line x1="%.2f" x2="%.2f" y1="%.1f" y2="%.1f" stroke="#cf222e" stroke-dasharray="3 2"/>`, x(val), x(val), ly+2, top+ph)
		fmt.Fprintf(&b, `<text x="%.2f" y="%.1f" font-size="9" text-anchor="middle" fill="#cf222e">%s</text>`, x(val), ly, esc(p.name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built here, every text escaped
}
