package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

// Why a level (or the overhead's measurement) stopped.
const (
	StopRequests = "requests" // every request it was allowed was sent and answered
	StopDuration = "duration" // its time was up before it sent them all
)

// Level is one concurrency level of the load profile.
type Level struct {
	Concurrency int `json:"concurrency"`
	// Stop is the bound that ended it: StopRequests, StopDuration, or why the run's
	// context ended ("deadline": the suite's end is near).
	Stop string `json:"stop"`
	// Cut counts requests in flight when the run's context ended: they measured the
	// bench's own deadline, not the instance, and are left out of the samples.
	Cut     int              `json:"cut,omitempty"`
	Summary metrics.Summary  `json:"summary"`
	Samples []metrics.Sample `json:"samples"`
}

// Level runs one concurrency level: concurrency workers send build's requests (each
// with a fresh id) one after another until requests have been sent (at least one per
// worker) or duration has passed since the level began, whichever comes first. A request
// in flight when duration passes is answered, within the endpoint's RequestTimeout: the
// level lasts at most duration + RequestTimeout. slos, when given, count goodput.
func (e *Endpoint) Level(ctx context.Context, concurrency, requests int, duration time.Duration, slos []metrics.SLO, build func(id string) Request) Level {
	lv := Level{Concurrency: concurrency}
	limit := max(requests, concurrency)
	stopAt := time.Now().Add(duration)
	var (
		mu     sync.Mutex
		issued int
		wg     sync.WaitGroup
	)
	// next hands out the next request's number, or ends the worker and says why.
	next := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case ctx.Err() != nil:
			lv.Stop = cause(ctx)
		case issued >= limit:
			if lv.Stop == "" {
				lv.Stop = StopRequests
			}
		case !time.Now().Before(stopAt):
			if lv.Stop == "" {
				lv.Stop = StopDuration
			}
		default:
			issued++
			return issued, true
		}
		return 0, false
	}
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i, ok := next()
				if !ok {
					return
				}
				resp, _ := e.Stream(ctx, fmt.Sprintf("bench/concurrency_%d/%03d", concurrency, i), build(NewID()))
				mu.Lock()
				if ctx.Err() != nil && !resp.Sample.OK() {
					lv.Cut++
				} else {
					lv.Samples = append(lv.Samples, resp.Sample)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		lv.Stop = cause(ctx)
	}
	lv.Summary = metrics.Summarize(lv.Samples, slos)
	return lv
}

// FirstError is the first failed request's error, or "".
func (lv Level) FirstError() string {
	for _, s := range lv.Samples {
		if !s.OK() {
			return s.Name + ": " + s.Error
		}
	}
	return ""
}
