package bench

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

// Defaults for a CPU appliance: a 24B model there prefills tens of tokens a second and
// writes 2-4, so a request of 256 prompt and 64 output tokens takes about half a minute.
const (
	DefaultPromptTokens  = 256
	DefaultOutputTokens  = 64
	DefaultRequests      = 8
	DefaultDuration      = 3 * time.Minute
	DefaultOverheadPairs = 10
	// OverheadOutputTokens is the answer's length in the front door's measurement: enough
	// chunks to show a per-chunk cost, short enough for a CPU appliance.
	OverheadOutputTokens = 16
	// ClineTokens is the size of Cline's first request: its system prompt (the tools in
	// XML) and a short history.
	ClineTokens = 10000
)

// DefaultConcurrency are the load profile's levels.
var DefaultConcurrency = []int{1, 2, 4}

// Plan is what Run does.
type Plan struct {
	Front *Endpoint // the instance's API, through its front door
	// Engine is the engine behind the front door, reached directly (on the reference
	// appliance, or on the VM itself); nil: the front door's overhead is not measured.
	Engine       *Endpoint
	Concurrency  []int
	PromptTokens int // of each load request, on the instance's tokenizer
	OutputTokens int // max_tokens of each load request (and of Cline's)
	Requests     int // per level at most (at least the level's concurrency)
	// Duration bounds each level and the overhead's measurement: no request starts
	// after it.
	Duration      time.Duration
	SLOs          []metrics.SLO // goodput per level; none: no goodput
	Cline         *Cline        // nil: no Cline profile
	OverheadPairs int           // 0: DefaultOverheadPairs
	Progress      io.Writer     // a line as each part ends; nil: none
}

// Cline describes the Cline profile's requests.
type Cline struct {
	Tokens int // the first request's size (ClineTokens)
	// Build is the first request with units units of its repeated part (sections of
	// tool descriptions), id first in it so that it starts on a cold prompt cache.
	Build func(units int, id string) Request
	// FollowUp is the next request of the task: first's messages, the answer, a new turn.
	FollowUp func(first Request, answer string) Request
	// ThinkTime is the pause before the first request and between its answer and the
	// follow-up: Cline's own work between two requests (the user's task typed, the tool
	// run, its view updated), never a millisecond. 0: DefaultThinkTime.
	ThinkTime time.Duration
}

// DefaultThinkTime is Cline's pause between two requests of a task. The load profile has
// none (its workers send back to back, as serving benchmarks do), so a server that closes
// a connection after a stream while announcing keep-alive (llama-server b11669 does)
// shows there as failed requests, not here.
const DefaultThinkTime = 500 * time.Millisecond

// Result is what Run measured. A part that could not be measured has its error
// instead.
type Result struct {
	Concurrency    []int        `json:"concurrency"`
	PromptTokens   int          `json:"prompt_tokens"` // asked for
	OutputTokens   int          `json:"output_tokens"`
	Requests       int          `json:"requests"` // per level, at most
	DurationMS     float64      `json:"duration_ms"`
	Sizing         *Sizing      `json:"sizing,omitempty"`
	Levels         []Level      `json:"levels,omitempty"`
	LoadError      string       `json:"load_error,omitempty"`
	Cline          *PrefixCache `json:"cline,omitempty"`
	ClineError     string       `json:"cline_error,omitempty"`
	FrontDoor      *Overhead    `json:"front_door,omitempty"`
	FrontDoorError string       `json:"front_door_error,omitempty"`
	WallMS         float64      `json:"wall_ms"` // the whole run
}

// Budget is the longest Run of p can take: the sizing's two requests; per level its
// Duration and one request timeout for the requests in flight; the Cline profile's two
// sizing requests and its two requests; the overhead's two warm-ups, its Duration and a
// pair in flight. Add it to go test's -timeout.
func Budget(p Plan) time.Duration {
	rt := p.Front.RequestTimeout
	d := 2*rt + time.Duration(len(p.Concurrency))*(p.Duration+rt)
	if p.Cline != nil {
		think := p.Cline.ThinkTime
		if think == 0 {
			think = DefaultThinkTime
		}
		d += 4*rt + 2*think
	}
	if p.Engine != nil {
		d += 4*rt + p.Duration
	}
	return d
}

// DefaultBudget is Budget of the default plan (DefaultConcurrency, DefaultDuration, the
// Cline profile and the front door's overhead) at requestTimeout: what go test's
// -timeout needs beyond the checks for a -bench run with its default bounds.
func DefaultBudget(requestTimeout time.Duration) time.Duration {
	return Budget(Plan{Front: &Endpoint{RequestTimeout: requestTimeout}, Engine: &Endpoint{},
		Concurrency: DefaultConcurrency, Duration: DefaultDuration, Cline: &Cline{}})
}

// Run sizes the load's prompt, runs each concurrency level, the Cline profile and the
// front door's overhead, in that order, and stops where ctx ends.
func Run(ctx context.Context, p Plan) *Result {
	began := time.Now()
	res := &Result{Concurrency: p.Concurrency, PromptTokens: p.PromptTokens, OutputTokens: p.OutputTokens,
		Requests: p.Requests, DurationMS: msOf(p.Duration)}
	progress := func(format string, a ...any) {
		if p.Progress != nil {
			fmt.Fprintf(p.Progress, "bench: "+format+"\n", a...)
		}
	}
	load := LoadPrompt(p.OutputTokens)
	sizing, err := p.Front.Fit(ctx, load, p.PromptTokens, 1, 16)
	if err != nil {
		res.LoadError = "sizing the prompt: " + err.Error()
		progress("load profile: %s", res.LoadError)
	} else {
		res.Sizing = &sizing
		progress("load profile: prompts of %d lines (≈%d tokens on the instance's tokenizer, %.1f a line), %d output tokens, at most %d requests and %s per level",
			sizing.Units, sizing.Tokens, sizing.PerUnit, p.OutputTokens, p.Requests, p.Duration)
		for _, c := range p.Concurrency {
			if ctx.Err() != nil {
				break
			}
			lv := p.Front.Level(ctx, c, p.Requests, p.Duration, p.SLOs, func(id string) Request { return load(sizing.Units, id) })
			res.Levels = append(res.Levels, lv)
			progress("concurrency %d: %s (stopped by %s)", c, lv.Summary, lv.Stop)
		}
	}
	if p.Cline != nil && ctx.Err() == nil {
		pc, err := runCline(ctx, p.Front, p.Cline, p.OutputTokens)
		if err != nil {
			res.ClineError = err.Error()
			progress("Cline profile: %s", res.ClineError)
		} else {
			res.Cline = pc
			progress("Cline profile: %s", pc)
		}
	}
	if p.Engine != nil && ctx.Err() == nil {
		pairs := p.OverheadPairs
		if pairs == 0 {
			pairs = DefaultOverheadPairs
		}
		units := 16
		if res.Sizing != nil {
			units = res.Sizing.Units
		}
		o, err := FrontDoorOverhead(ctx, p.Front, p.Engine, load(units, NewID()).withMaxTokens(min(p.OutputTokens, OverheadOutputTokens)), pairs, p.Duration)
		if err != nil {
			res.FrontDoorError = err.Error()
			progress("front door overhead: %s", res.FrontDoorError)
		} else {
			res.FrontDoor = o
			progress("front door overhead: %s", o)
		}
	}
	res.WallMS = msOf(time.Since(began))
	return res
}

func (r Request) withMaxTokens(n int) Request {
	r.MaxTokens = n
	return r
}

// runCline sizes the Cline request (one and two units, sharing one id) and runs the
// profile on a fresh id.
func runCline(ctx context.Context, e *Endpoint, c *Cline, outputTokens int) (*PrefixCache, error) {
	build := func(units int, id string) Request { return c.Build(units, id).withMaxTokens(outputTokens) }
	sizing, err := e.Fit(ctx, build, c.Tokens, 1, 2)
	if err != nil {
		return nil, fmt.Errorf("sizing the Cline request: %w", err)
	}
	think := c.ThinkTime
	if think == 0 {
		think = DefaultThinkTime
	}
	if err := pause(ctx, think); err != nil {
		return nil, err
	}
	pc, err := e.PromptCache(ctx, build(sizing.Units, NewID()), c.FollowUp, think)
	if err != nil {
		return nil, err
	}
	pc.Sizing = sizing
	return pc, nil
}

// String is a one-line account.
func (pc *PrefixCache) String() string {
	s := fmt.Sprintf("first request %d prompt tokens, TTFT %s: prefill %.0f tokens/s", pc.PromptTokens, metrics.FormatMS(msOf(pc.First.TTFT)), pc.PrefillTokensPerSecond)
	if pc.EnginePrefillTokensPerSecond > 0 {
		s += fmt.Sprintf(" (the engine's own count: %.0f)", pc.EnginePrefillTokensPerSecond)
	}
	s += fmt.Sprintf("; follow-up %d prompt tokens", pc.FollowUpPromptTokens)
	if pc.FollowUpCachedTokens > 0 {
		s += fmt.Sprintf(" (%d from the cache)", pc.FollowUpCachedTokens)
	}
	return s + fmt.Sprintf(", TTFT %s: prompt-cache effect %.3f (follow-up TTFT / first TTFT)", metrics.FormatMS(msOf(pc.FollowUp.TTFT)), pc.CacheEffect)
}

// String is a one-line account.
func (o *Overhead) String() string {
	failed := ""
	if o.Failed > 0 {
		failed = fmt.Sprintf("; %d pairs left out, a request failed (first: %s)", o.Failed, o.FirstError)
	}
	return fmt.Sprintf("TTFT %+.1f ms (front door %s, engine %s), E2E %+.1f ms (%s, %s); medians of %d alternating pairs, %d prompt and %d output tokens%s",
		o.TTFTMS, metrics.FormatMS(o.FrontDoorTTFTMS), metrics.FormatMS(o.EngineTTFTMS),
		o.E2EMS, metrics.FormatMS(o.FrontDoorE2EMS), metrics.FormatMS(o.EngineE2EMS), o.Pairs, o.PromptTokens, o.OutputTokens, failed)
}

// WriteTable prints the result for a terminal: a row per level, then the Cline profile
// and the front door's overhead.
func (res *Result) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "\nbench: %d output tokens, at most %d requests and %s per level", res.OutputTokens, res.Requests, time.Duration(res.DurationMS*float64(time.Millisecond)))
	if s := res.Sizing; s != nil {
		fmt.Fprintf(w, ", prompts of ≈%d tokens", s.Tokens)
	}
	fmt.Fprintln(w)
	if res.LoadError != "" {
		fmt.Fprintf(w, "  load profile not measured: %s\n", res.LoadError)
	}
	if len(res.Levels) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "conc\tok/sent\tTTFT p50\tp90\tp99\tmean\tITL p50\tp99\tTPOT p50\tp99\tE2E p50\tp99\ttok/s/req\ttok/s\treq/s\tgoodput\tstop\t")
		for _, lv := range res.Levels {
			s := lv.Summary
			fm := metrics.FormatMS
			goodput := "–"
			if g := s.Goodput; g != nil {
				goodput = fmt.Sprintf("%.0f%%", 100*g.Share)
			}
			fmt.Fprintf(tw, "%d\t%d/%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%.3f\t%s\t%s\t\n",
				lv.Concurrency, s.Completed, s.Requests,
				fm(s.TTFT.P50), fm(s.TTFT.P90), fm(s.TTFT.P99), fm(s.TTFT.Mean),
				fm(s.ITL.P50), fm(s.ITL.P99), fm(s.TPOT.P50), fm(s.TPOT.P99), fm(s.E2E.P50), fm(s.E2E.P99),
				s.TPS.Mean, s.OutputThroughput, s.RequestThroughput, goodput, lv.Stop)
		}
		_ = tw.Flush()
	}
	switch {
	case res.Cline != nil:
		fmt.Fprintf(w, "  Cline profile: %s\n", res.Cline)
	case res.ClineError != "":
		fmt.Fprintf(w, "  Cline profile not measured: %s\n", res.ClineError)
	}
	switch {
	case res.FrontDoor != nil:
		fmt.Fprintf(w, "  front door overhead: %s\n", res.FrontDoor)
	case res.FrontDoorError != "":
		fmt.Fprintf(w, "  front door overhead not measured: %s\n", res.FrontDoorError)
	}
}
