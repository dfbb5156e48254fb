package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

// PrefixCache is the Cline profile: a long first request on a cold prompt cache, then a
// follow-up that repeats it whole and adds the answer and a new turn, as each next
// request of a Cline task does.
type PrefixCache struct {
	Sizing               Sizing         `json:"sizing"`
	First                metrics.Sample `json:"first"`
	FollowUp             metrics.Sample `json:"follow_up"`
	PromptTokens         int            `json:"prompt_tokens"`           // the first request's usage.prompt_tokens
	FollowUpPromptTokens int            `json:"follow_up_prompt_tokens"` // the follow-up's
	// FollowUpCachedTokens is usage.prompt_tokens_details.cached_tokens of the
	// follow-up, when the engine reports it (llama-server does).
	FollowUpCachedTokens int `json:"follow_up_cached_tokens,omitempty"`
	// PrefillTokensPerSecond is the first request's prompt tokens / its TTFT: what a
	// user waits per prompt token before the answer starts (the TTFT also holds the
	// first output token and the trip through the front door, both small beside a long
	// prefill).
	PrefillTokensPerSecond float64 `json:"prefill_tokens_per_second"`
	// CacheEffect is the follow-up's TTFT / the first's: well below 1 when the engine
	// keeps the shared prefix, about the follow-up's length / the first's when not.
	CacheEffect float64 `json:"cache_effect"`
	// EnginePrefillTokensPerSecond is the engine's own prefill rate for the first
	// request (llama-server's timings.prompt_per_second), when it reports one.
	EnginePrefillTokensPerSecond float64 `json:"engine_prefill_tokens_per_second,omitempty"`
}

// PromptCache runs the Cline profile: first, then, think after its answer,
// followUp(first, its answer).
func (e *Endpoint) PromptCache(ctx context.Context, first Request, followUp func(first Request, answer string) Request, think time.Duration) (*PrefixCache, error) {
	a, err := e.Stream(ctx, "bench/cline/first", first)
	if err != nil {
		return nil, fmt.Errorf("the Cline-sized first request: %w", err)
	}
	if err := pause(ctx, think); err != nil {
		return nil, err
	}
	b, err := e.Stream(ctx, "bench/cline/follow_up", followUp(first, a.Content))
	if err != nil {
		return nil, fmt.Errorf("the follow-up request: %w", err)
	}
	pc := &PrefixCache{
		First: a.Sample, FollowUp: b.Sample,
		PromptTokens: a.Sample.PromptTokens, FollowUpPromptTokens: b.Sample.PromptTokens,
		FollowUpCachedTokens: b.CachedTokens,
	}
	if a.Sample.TTFT > 0 {
		pc.PrefillTokensPerSecond = float64(a.Sample.PromptTokens) / a.Sample.TTFT.Seconds()
		pc.CacheEffect = b.Sample.TTFT.Seconds() / a.Sample.TTFT.Seconds()
	}
	if t := a.Timings; t != nil {
		pc.EnginePrefillTokensPerSecond = t.PromptPerSecond
	}
	return pc, nil
}

// pause waits d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopped: %s", cause(ctx))
	}
}
