// Package metrics measures streamed chat completions the way LLM serving benchmarks do
// (vLLM's bench serve, GuideLLM, AIPerf), from the arrival time of each server-sent event
// as the client received it, and turns the numbers into verdicts against SLOs.
//
// Definitions, per request, with every time measured from Sent (the request handed to
// the transport) to the arrival of the read that completed an event, taken before any
// parsing (copilot.Tap records it):
//
//   - TTFT: the first event carrying output (delta content, reasoning content or a tool
//     call). A role-only chunk is not a token.
//   - ITL: the gaps between consecutive output events. Events a relay coalesced into one
//     read share its arrival time, so their gaps are zero, as a client saw them.
//   - E2E: the last event before [DONE] (vLLM's latency: the usage chunk counts).
//   - TPOT: (E2E − TTFT) / (output tokens − 1), defined when output tokens > 1.
//   - Output tokens: completion_tokens of the server's usage (stream_options.include_usage),
//     never a count of chunks: a chunk may carry several tokens or none. Without usage,
//     TPOT and tokens/s are unknown, not guessed.
//   - Output tokens/s (per request): output tokens / E2E (GuideLLM's definition).
//
// A Summary pools samples: percentiles use linear interpolation between closest ranks
// (numpy.percentile's default, which vLLM uses), ITLs are pooled over all requests, the
// aggregate output throughput is the sum of output tokens over the wall window from the
// first request sent to the last event received.
package metrics

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
)

// Kind is what a server-sent event carried, for the timeline.
type Kind string

// The kinds of event, in the order Classify tests them.
const (
	KindError    Kind = "error"     // an {"error":...} event: the stream failed
	KindDone     Kind = "done"      // data: [DONE]
	KindContent  Kind = "content"   // delta.content or delta.reasoning_content, non-empty
	KindToolCall Kind = "tool_call" // delta.tool_calls, non-empty
	KindUsage    Kind = "usage"     // a usage object and no output
	KindFinish   Kind = "finish"    // a finish_reason and no output
	KindRole     Kind = "role"      // delta.role only
	KindOther    Kind = "other"     // anything else (empty deltas, unparsable data)
)

// Event is one server-sent event of a stream as the timeline shows it.
type Event struct {
	Offset time.Duration // since the request was sent
	Kind   Kind
	Text   string // the output text the event carried (content, or a tool call's name and arguments), or its error message
}

// Sample is one streamed request's measurements.
type Sample struct {
	Name  string    // what the caller calls the request, e.g. the check's test name
	Start time.Time // when the request was sent

	TTFT time.Duration   // zero when no output came
	ITLs []time.Duration // gaps between consecutive output events
	E2E  time.Duration   // until the last event before [DONE]
	TPOT time.Duration   // zero unless OutputTokens > 1

	// Token counts as the server's usage reported them; Usage is false without one.
	Usage                 bool
	PromptTokens          int
	OutputTokens          int
	OutputTokensPerSecond float64 // zero without usage

	OutputEvents int  // events carrying output
	Done         bool // the stream ended with [DONE]
	// Error says why the request does not count as completed: an error event, no
	// output, or no events at all. Empty for a completed request.
	Error string

	Events []Event // the timeline, every event in arrival order
}

// OK reports whether the request completed: output came and no error did.
func (s Sample) OK() bool { return s.Error == "" }

// End is when the last event before [DONE] arrived.
func (s Sample) End() time.Time { return s.Start.Add(s.E2E) }

// FromCapture measures a response recorded by copilot.Tap.
func FromCapture(name string, c *copilot.Capture) Sample {
	return Measure(name, c.Sent, c.Events())
}

// maxEventText bounds the text kept per timeline event: the timeline shows when, the
// body excerpt shows what.
const maxEventText = 64

// chunk is the part of a chat.completion.chunk the measurements read.
type chunk struct {
	Choices []struct {
		Delta struct {
			Role             string            `json:"role"`
			Content          string            `json:"content"`
			ReasoningContent string            `json:"reasoning_content"`
			ToolCalls        []json.RawMessage `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// Measure computes a Sample from a stream's events (copilot.Capture.Events: each event
// stamped with the arrival of the read that completed it) and the time the request was
// sent.
func Measure(name string, sent time.Time, events []copilot.Event) Sample {
	s := Sample{Name: name, Start: sent}
	var (
		first, last time.Duration
		seen        bool // an output event came
		errMsg      string
	)
	for _, e := range events {
		off := e.At.Sub(sent)
		ev := Event{Offset: off}
		if strings.TrimSpace(e.Data) == "[DONE]" {
			ev.Kind = KindDone
			s.Done = true
			s.Events = append(s.Events, ev)
			continue
		}
		s.E2E = off
		var c chunk
		if err := json.Unmarshal([]byte(e.Data), &c); err != nil {
			ev.Kind, ev.Text = KindOther, excerpt(e.Data)
			s.Events = append(s.Events, ev)
			continue
		}
		ev.Kind, ev.Text = classify(c)
		if c.Usage != nil {
			// The last usage wins: some engines repeat a running count in every chunk.
			s.Usage = true
			s.PromptTokens, s.OutputTokens = c.Usage.PromptTokens, c.Usage.CompletionTokens
		}
		switch ev.Kind {
		case KindError:
			if errMsg == "" {
				errMsg = "error event: " + ev.Text
			}
		case KindContent, KindToolCall:
			s.OutputEvents++
			if !seen {
				first, seen = off, true
			} else {
				s.ITLs = append(s.ITLs, off-last)
			}
			last = off
		}
		s.Events = append(s.Events, ev)
	}
	switch {
	case errMsg != "":
		s.Error = errMsg
	case len(events) == 0:
		s.Error = "no events"
	case !seen:
		s.Error = "no output: no event carried content or a tool call"
	}
	if seen {
		s.TTFT = first
	}
	if s.Usage && s.OutputTokens > 1 && seen {
		s.TPOT = (s.E2E - s.TTFT) / time.Duration(s.OutputTokens-1)
	}
	if s.Usage && s.E2E > 0 {
		s.OutputTokensPerSecond = float64(s.OutputTokens) / s.E2E.Seconds()
	}
	return s
}

// classify names what a chunk carried and the text the timeline shows for it.
func classify(c chunk) (Kind, string) {
	if len(c.Error) > 0 && string(c.Error) != "null" {
		var e struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(c.Error, &e) == nil && e.Message != "" {
			return KindError, excerpt(e.Message)
		}
		return KindError, excerpt(string(c.Error))
	}
	var text, tools strings.Builder
	role, finish, hasTools := false, false, false
	for _, ch := range c.Choices {
		hasTools = hasTools || len(ch.Delta.ToolCalls) > 0
		text.WriteString(ch.Delta.ReasoningContent)
		text.WriteString(ch.Delta.Content)
		for _, tc := range ch.Delta.ToolCalls {
			var call struct {
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			}
			_ = json.Unmarshal(tc, &call) // a malformed call still counts as one
			tools.WriteString(call.Function.Name + call.Function.Arguments)
		}
		role = role || ch.Delta.Role != ""
		finish = finish || (ch.FinishReason != nil && *ch.FinishReason != "")
	}
	switch {
	case text.Len() > 0:
		return KindContent, excerpt(text.String())
	case hasTools:
		return KindToolCall, excerpt(tools.String())
	case c.Usage != nil:
		return KindUsage, ""
	case finish:
		return KindFinish, ""
	case role:
		return KindRole, ""
	}
	return KindOther, ""
}

// excerpt cuts s to maxEventText runes.
func excerpt(s string) string {
	r := []rune(s)
	if len(r) <= maxEventText {
		return s
	}
	return string(r[:maxEventText]) + "…"
}

// Percentile is the p-th percentile (0 ≤ p ≤ 100) of sorted values by linear
// interpolation between closest ranks: rank h = (n−1)·p/100, value x[⌊h⌋] +
// (h−⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]). This is numpy.percentile's default ("linear", Hyndman
// and Fan's type 7), so the numbers compare with vLLM's. NaN for no values.
func Percentile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	h := float64(n-1) * p / 100
	lo := int(math.Floor(h))
	if lo >= n-1 {
		return sorted[n-1]
	}
	if lo < 0 {
		return sorted[0]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}

// Distribution summarises values: latencies in milliseconds, rates in tokens per second
// (the field names in results.json say which). Zero Count means no values; the other
// fields are then zero.
type Distribution struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean"`
	Min   float64 `json:"min"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// Describe computes a Distribution of values (in any order; not modified).
func Describe(values []float64) Distribution {
	if len(values) == 0 {
		return Distribution{}
	}
	v := append([]float64(nil), values...)
	sort.Float64s(v)
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return Distribution{
		Count: len(v), Mean: sum / float64(len(v)), Min: v[0], Max: v[len(v)-1],
		P50: Percentile(v, 50), P90: Percentile(v, 90), P99: Percentile(v, 99),
	}
}

// Stat is the named statistic of d: "mean", "min", "max" or "p<N>" of those computed.
func (d Distribution) Stat(name string) (float64, bool) {
	switch name {
	case "mean":
		return d.Mean, true
	case "min":
		return d.Min, true
	case "max":
		return d.Max, true
	case "p50":
		return d.P50, true
	case "p90":
		return d.P90, true
	case "p99":
		return d.P99, true
	}
	return 0, false
}

// ms converts durations to milliseconds.
func ms(ds ...time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

// Summary pools samples. Latency distributions are in milliseconds.
type Summary struct {
	Requests  int `json:"requests"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`

	TTFT Distribution `json:"ttft_ms"`
	ITL  Distribution `json:"itl_ms"` // every gap of every completed request
	TPOT Distribution `json:"tpot_ms"`
	E2E  Distribution `json:"e2e_ms"`
	// TPS is the per-request output tokens/s over requests that reported usage.
	TPS Distribution `json:"output_tokens_per_second"`

	OutputTokens int `json:"output_tokens"`
	PromptTokens int `json:"prompt_tokens"`
	// WindowMS is the wall window from the first request sent to the last event
	// received; the throughputs divide by it.
	WindowMS float64 `json:"window_ms"`
	// OutputThroughput is the aggregate output tokens/s over the window.
	OutputThroughput float64 `json:"output_throughput"`
	// RequestThroughput is completed requests per second over the window.
	RequestThroughput float64 `json:"request_throughput"`

	// Goodput is present when SLOs were given.
	Goodput *Goodput `json:"goodput,omitempty"`
}

// Goodput is how many requests met every SLO on their own numbers (see SLO.MetBy).
type Goodput struct {
	Requests int     `json:"requests"` // completed requests meeting every SLO
	Share    float64 `json:"share"`    // of all requests, 0..1
	Rate     float64 `json:"rate"`     // per second over the window (vLLM's goodput)
}

// Summarize pools samples; with SLOs it also counts goodput.
func Summarize(samples []Sample, slos []SLO) Summary {
	var (
		sum                       Summary
		ttft, itl, tpot, e2e, tps []float64
		first, last               time.Time
	)
	sum.Requests = len(samples)
	for _, s := range samples {
		if first.IsZero() || s.Start.Before(first) {
			first = s.Start
		}
		if s.End().After(last) {
			last = s.End()
		}
		if !s.OK() {
			sum.Failed++
			continue
		}
		sum.Completed++
		ttft = append(ttft, ms(s.TTFT)...)
		itl = append(itl, ms(s.ITLs...)...)
		e2e = append(e2e, ms(s.E2E)...)
		if s.TPOT > 0 {
			tpot = append(tpot, ms(s.TPOT)...)
		}
		if s.Usage {
			tps = append(tps, s.OutputTokensPerSecond)
			sum.OutputTokens += s.OutputTokens
			sum.PromptTokens += s.PromptTokens
		}
	}
	sum.TTFT, sum.ITL, sum.TPOT, sum.E2E, sum.TPS = Describe(ttft), Describe(itl), Describe(tpot), Describe(e2e), Describe(tps)
	window := last.Sub(first)
	sum.WindowMS = ms(window)[0]
	if window > 0 {
		sum.OutputThroughput = float64(sum.OutputTokens) / window.Seconds()
		sum.RequestThroughput = float64(sum.Completed) / window.Seconds()
	}
	if len(slos) > 0 {
		g := &Goodput{}
		for _, s := range samples {
			if meetsAll(s, slos) {
				g.Requests++
			}
		}
		if sum.Requests > 0 {
			g.Share = float64(g.Requests) / float64(sum.Requests)
		}
		if window > 0 {
			g.Rate = float64(g.Requests) / window.Seconds()
		}
		sum.Goodput = g
	}
	return sum
}

func meetsAll(s Sample, slos []SLO) bool {
	if !s.OK() {
		return false
	}
	for _, o := range slos {
		if !o.MetBy(s) {
			return false
		}
	}
	return true
}

// String is a one-line account for a terminal.
func (s Summary) String() string {
	if s.Completed == 0 {
		return fmt.Sprintf("%d streamed requests, none completed", s.Requests)
	}
	out := fmt.Sprintf("%d/%d streams · TTFT p50 %s p99 %s · ITL p99 %s", s.Completed, s.Requests,
		FormatMS(s.TTFT.P50), FormatMS(s.TTFT.P99), FormatMS(s.ITL.P99))
	if s.TPOT.Count > 0 {
		out += " · TPOT p50 " + FormatMS(s.TPOT.P50)
	}
	if s.TPS.Count > 0 {
		out += fmt.Sprintf(" · %.1f tok/s per request (mean)", s.TPS.Mean)
	}
	if s.Goodput != nil {
		out += fmt.Sprintf(" · goodput %.0f%%", 100*s.Goodput.Share)
	}
	return out
}

// FormatMS prints milliseconds the way a person reads latencies: "850 ms", "12.3 s".
func FormatMS(v float64) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case v >= 10000:
		return fmt.Sprintf("%.1f s", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.2f s", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.1f ms", v)
}
