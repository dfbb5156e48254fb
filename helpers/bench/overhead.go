package bench

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

// Overhead is what the front door adds to a streamed request: the same request through
// it and straight to the engine, in alternating order so that a drift of the machine's
// load falls on both paths alike. Latencies in milliseconds; the differences are front
// door minus engine, per pair, and their medians.
type Overhead struct {
	Pairs int `json:"pairs"` // measured
	// Failed counts pairs left out because a request of theirs failed; FirstError is
	// the first such failure.
	Failed       int    `json:"failed,omitempty"`
	FirstError   string `json:"first_error,omitempty"`
	Stop         string `json:"stop"` // StopRequests, StopDuration or why the context ended
	PromptTokens int    `json:"prompt_tokens"`
	OutputTokens int    `json:"output_tokens"`
	// Medians of each path.
	FrontDoorTTFTMS float64 `json:"front_door_ttft_ms"`
	EngineTTFTMS    float64 `json:"engine_ttft_ms"`
	FrontDoorE2EMS  float64 `json:"front_door_e2e_ms"`
	EngineE2EMS     float64 `json:"engine_e2e_ms"`
	// TTFTMS and E2EMS are the medians of the paired differences: the added latency.
	TTFTMS      float64   `json:"ttft_ms"`
	E2EMS       float64   `json:"e2e_ms"`
	TTFTDiffsMS []float64 `json:"ttft_diffs_ms"`
	E2EDiffsMS  []float64 `json:"e2e_diffs_ms"`
}

// FrontDoorOverhead sends r through front and straight to engine, pairs times in
// alternating order (a pair's first request is the front door's on even pairs), within
// duration: no pair starts after it. Each path is warmed first by one request, not
// counted: its keep-alive connections open (the client's TLS session to the front door,
// the front door's to the engine) and the engine's prompt cache holds r's prompt, so
// both paths measure the same engine work and the difference is the front door's own
// (proxying, TLS records, the credentials check), as a client with a warm connection
// sees it. Loopback adds little, but it is in both paths alike. A pair with a failed
// request is left out and counted: the measurement fails only when no pair is left.
func FrontDoorOverhead(ctx context.Context, front, engine *Endpoint, r Request, pairs int, duration time.Duration) (*Overhead, error) {
	if pairs < 1 {
		return nil, fmt.Errorf("front door overhead: %d pairs: want at least one", pairs)
	}
	stopAt := time.Now().Add(duration)
	for _, e := range []*Endpoint{front, engine} {
		// A warm-up measures nothing: one that fails is sent once more.
		_, err := e.Stream(ctx, "bench/front_door/warm_up/"+e.Name, r)
		if err != nil && ctx.Err() == nil {
			_, err = e.Stream(ctx, "bench/front_door/warm_up/"+e.Name, r)
		}
		if err != nil {
			return nil, fmt.Errorf("front door overhead: warm-up: %w", err)
		}
	}
	o := &Overhead{Stop: StopRequests}
	var fronts, engines []metrics.Sample
	for i := range pairs {
		if ctx.Err() != nil {
			o.Stop = cause(ctx)
			break
		}
		if !time.Now().Before(stopAt) {
			o.Stop = StopDuration
			break
		}
		order := []*Endpoint{front, engine}
		if i%2 == 1 {
			order[0], order[1] = engine, front
		}
		got := map[*Endpoint]metrics.Sample{}
		var failed error
		for _, e := range order {
			resp, err := e.Stream(ctx, fmt.Sprintf("bench/front_door/%s/%02d", e.Name, i), r)
			if err != nil && failed == nil {
				failed = fmt.Errorf("pair %d: %w", i, err)
			}
			got[e] = resp.Sample
		}
		if failed != nil {
			if ctx.Err() != nil {
				o.Stop = cause(ctx)
				break
			}
			o.Failed++
			if o.FirstError == "" {
				o.FirstError = failed.Error()
			}
			continue
		}
		f, g := got[front], got[engine]
		fronts, engines = append(fronts, f), append(engines, g)
		o.TTFTDiffsMS = append(o.TTFTDiffsMS, msOf(f.TTFT-g.TTFT))
		o.E2EDiffsMS = append(o.E2EDiffsMS, msOf(f.E2E-g.E2E))
		o.PromptTokens, o.OutputTokens = f.PromptTokens, f.OutputTokens
	}
	o.Pairs = len(fronts)
	if o.Pairs == 0 {
		if o.FirstError != "" {
			return nil, fmt.Errorf("front door overhead: no pair measured: %s", o.FirstError)
		}
		return nil, fmt.Errorf("front door overhead: no pair measured (%s)", o.Stop)
	}
	o.TTFTMS, o.E2EMS = median(o.TTFTDiffsMS), median(o.E2EDiffsMS)
	o.FrontDoorTTFTMS, o.EngineTTFTMS = medianOf(fronts, ttftOf), medianOf(engines, ttftOf)
	o.FrontDoorE2EMS, o.EngineE2EMS = medianOf(fronts, e2eOf), medianOf(engines, e2eOf)
	return o, nil
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ttftOf(s metrics.Sample) float64 { return msOf(s.TTFT) }
func e2eOf(s metrics.Sample) float64  { return msOf(s.E2E) }

func medianOf(samples []metrics.Sample, f func(metrics.Sample) float64) float64 {
	v := make([]float64, len(samples))
	for i, s := range samples {
		v[i] = f(s)
	}
	return median(v)
}

// median is metrics.Percentile's 50th of values (in any order; not modified).
func median(values []float64) float64 {
	v := append([]float64(nil), values...)
	sort.Float64s(v)
	return metrics.Percentile(v, 50)
}
