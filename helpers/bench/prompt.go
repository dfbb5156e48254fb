package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
)

// NewID is a random request id of fixed length (8 hex digits), put first in a prompt so
// that it shares no prefix with any other.
func NewID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Filler is deterministic text of units lines of Go-like code, each of the same shape
// and length, so that a prompt's token count grows in proportion to units on any
// tokenizer.
func Filler(units int) string {
	var b strings.Builder
	for i := range units {
		fmt.Fprintf(&b, "\tacc[%04d] = acc[%04d]*31 + %04d\n", i, (i*7919)%10000, (i*104729)%10000)
	}
	return b.String()
}

// LoadPrompt builds the load profile's requests: a user asking to continue units lines
// of code, its id first, for maxTokens tokens.
func LoadPrompt(maxTokens int) func(units int, id string) Request {
	return func(units int, id string) Request {
		text := "Request " + id + ". Continue this function with more lines of the same kind:\n\nfunc mix(acc []int) {\n" + Filler(units)
		return Request{
			Messages:  []any{map[string]any{"role": "user", "content": text}},
			MaxTokens: maxTokens,
		}
	}
}

// Sizing is how prompts of a builder were sized on the instance's tokenizer: the prompt
// tokens of u units are Fixed + PerUnit·u.
type Sizing struct {
	Units   int     `json:"units"`
	PerUnit float64 `json:"tokens_per_unit"`
	Fixed   float64 `json:"fixed_tokens"`
	Tokens  int     `json:"tokens"` // the prompt tokens Units make, by the fit
}

// Fit finds how many units of build make a prompt of about tokens tokens on the
// endpoint's own tokenizer: it asks for lo and hi units (max_tokens 1, one id for both,
// so that an engine's prompt cache spares the second request most of its prefill) and
// draws the line through the two usage.prompt_tokens counts. A probe that fails is sent
// once more: sizing measures nothing, and one lost connection should not cost the load
// profile (each failed probe is in the error when the second attempt fails too).
func (e *Endpoint) Fit(ctx context.Context, build func(units int, id string) Request, tokens, lo, hi int) (Sizing, error) {
	if lo < 1 || hi <= lo {
		return Sizing{}, fmt.Errorf("fit: probe sizes %d and %d: want 1 ≤ lo < hi", lo, hi)
	}
	id := NewID()
	count := func(units int) (int, error) {
		r := build(units, id)
		r.MaxTokens = 1
		resp, err := e.Stream(ctx, fmt.Sprintf("fit/%d", units), r)
		if err != nil && ctx.Err() == nil {
			var again error
			resp, again = e.Stream(ctx, fmt.Sprintf("fit/%d", units), r)
			if again != nil {
				err = fmt.Errorf("%w; asked again: %w", err, again)
			} else {
				err = nil
			}
		}
		if err != nil {
			return 0, fmt.Errorf("fit: a prompt of %d units: %w", units, err)
		}
		if resp.Sample.PromptTokens <= 0 {
			return 0, fmt.Errorf("fit: a prompt of %d units: usage.prompt_tokens is %d", units, resp.Sample.PromptTokens)
		}
		return resp.Sample.PromptTokens, nil
	}
	a, err := count(lo)
	if err != nil {
		return Sizing{}, err
	}
	b, err := count(hi)
	if err != nil {
		return Sizing{}, err
	}
	if b <= a {
		return Sizing{}, fmt.Errorf("fit: usage.prompt_tokens did not grow with the prompt (%d for %d units, %d for %d): the engine does not count the prompt it got", a, lo, b, hi)
	}
	s := Sizing{PerUnit: float64(b-a) / float64(hi-lo)}
	s.Fixed = float64(a) - s.PerUnit*float64(lo)
	s.Units = max(1, int(math.Round((float64(tokens)-s.Fixed)/s.PerUnit)))
	s.Tokens = int(math.Round(s.Fixed + s.PerUnit*float64(s.Units)))
	return s, nil
}
