// Package bench puts a measured load on an OpenAI-compatible chat completions endpoint,
// the way LLM serving benchmarks do (vLLM's bench serve, GuideLLM): fixed-size prompts
// and answers, streamed with stream_options.include_usage so that token counts are the
// server's, each event timed by copilot.Tap on arrival and measured by helpers/metrics.
//
// Run does three things, each bounded in requests and time:
//
//   - the load profile: for each concurrency level, workers send requests of about
//     PromptTokens prompt tokens asking for OutputTokens tokens, until Requests have been
//     sent or Duration has passed; a level's metrics.Summary holds TTFT, ITL, TPOT and
//     E2E percentiles, output tokens/s per request and aggregate, request throughput
//     and, with SLOs, goodput;
//   - the Cline profile: a Cline-sized first request (~10k tokens) on a cold prompt
//     cache, then a follow-up that repeats it and adds a turn, as Cline's next request
//     does: prefill tokens/s (prompt tokens / TTFT) and the prompt-cache effect (the
//     follow-up's TTFT / the first's);
//   - the front door's overhead: the same request through the front door (nginx: TLS,
//     credentials) and straight to the engine behind it, alternately: the median paired
//     differences of TTFT and E2E are what the front door adds.
//
// Prompts are sized on the instance's own tokenizer (Fit): a 24B model's tokenizer reads
// about four characters a token, the reference appliance's random-weight model about
// one, so a fixed text would not be a fixed token count. Every request of the load
// starts with its own id, so no two share a prefix beyond the chat template's opening and
// an engine's prompt cache cannot skip their prefill.
//
// The requests go through the Endpoint's own transport, not through the acceptance
// suite's counted client: the suite's model-call budget (copilot.ModelCalls) sizes the
// -timeout of the checks, while the bench has its own explicit bounds (Budget).
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

// Endpoint is a chat completions route and how to reach it.
type Endpoint struct {
	Name string // for messages: "front door", "engine"
	URL  string // the chat completions URL: https://host/v1/chat/completions
	// Transport carries the requests (a copilot.Tap is put in front of it for each one);
	// nil means http.DefaultTransport.
	Transport http.RoundTripper
	Header    http.Header // sent with every request: the credentials
	Model     string
	// RequestTimeout bounds each request; zero leaves only the caller's context.
	RequestTimeout time.Duration
}

// Request is one chat completion to stream.
type Request struct {
	Messages  []any // chat messages, as the JSON body carries them
	MaxTokens int
	Extra     map[string]any // further body fields, over the defaults
}

// Body is the request's JSON body: streamed with usage, temperature 0, and ignore_eos so
// that a real model writes MaxTokens tokens, as benchmarks with fixed output lengths ask
// (llama-server and LocalAI honour it; an engine that does not still reports what it
// wrote in usage, which the numbers use).
func (r Request) Body(model string) map[string]any {
	body := map[string]any{
		"model":          model,
		"messages":       r.Messages,
		"max_tokens":     r.MaxTokens,
		"stream":         true,
		"stream_options": map[string]any{"include_usage": true},
		"temperature":    0,
		"ignore_eos":     true,
	}
	for k, v := range r.Extra {
		body[k] = v
	}
	return body
}

// Timings are the engine's own account of a request, as llama-server reports it in the
// stream's last chunk before [DONE] (the usage chunk when include_usage is set, else the
// finish_reason chunk). In llama.cpp's server, prompt_ms runs from the start of the
// prompt's processing to the sampling of the first token, and predicted_ms from that
// first token to the last, so predicted_per_second is (predicted_n − 1) / predicted_ms.
type Timings struct {
	CacheN             int     `json:"cache_n"`
	PromptN            int     `json:"prompt_n"`
	PromptMS           float64 `json:"prompt_ms"`
	PromptPerSecond    float64 `json:"prompt_per_second"`
	PredictedN         int     `json:"predicted_n"`
	PredictedMS        float64 `json:"predicted_ms"`
	PredictedPerSecond float64 `json:"predicted_per_second"`
}

// Response is one streamed request as measured.
type Response struct {
	Sample  metrics.Sample
	Status  int      // 0 without an answer
	Timings *Timings // the engine's own, nil when it reports none (LocalAI)
	// CachedTokens is usage.prompt_tokens_details.cached_tokens: prompt tokens the
	// engine took from its cache (0 when not reported).
	CachedTokens int
	Content      string // the answer's text
}

// maxBody bounds what one response may bring.
const maxBody = 16 << 20

// Stream sends r and reads its stream to the end. The Response is never nil: a request
// that got no answer, a status other than 200, an error event or a stream cut before
// [DONE] has its Sample.Error set, and the error says the same.
func (e *Endpoint) Stream(ctx context.Context, name string, r Request) (*Response, error) {
	out := &Response{}
	b, err := json.Marshal(r.Body(e.Model))
	if err != nil {
		return out.fail(name, time.Now(), fmt.Errorf("%s: encode the request: %w", e.Name, err))
	}
	if e.RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.RequestTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(b))
	if err != nil {
		return out.fail(name, time.Now(), fmt.Errorf("%s: %w", e.Name, err))
	}
	req.Header = e.Header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	base := e.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	tap := &copilot.Tap{Base: base}
	client := &http.Client{Transport: tap, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	sent := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return out.fail(name, sent, fmt.Errorf("%s: no answer: %w", e.Name, err))
	}
	defer resp.Body.Close()
	out.Status = resp.StatusCode
	c := tap.Last()
	_, readErr := io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode != http.StatusOK {
		return out.fail(name, c.Sent, fmt.Errorf("%s: status %d: %s", e.Name, resp.StatusCode, excerpt(string(c.Body()), 200)))
	}
	out.Sample = metrics.FromCapture(name, c)
	events := c.Events()
	out.read(events)
	switch {
	case out.Sample.Error != "":
	case readErr != nil:
		out.Sample.Error = "reading the stream: " + readErr.Error()
	case !out.Sample.Done:
		out.Sample.Error = "the stream ended without data: [DONE]"
	case !out.Sample.Usage:
		out.Sample.Error = "no usage chunk although the request asked for one (stream_options.include_usage): output tokens unknown"
	}
	if out.Sample.Error != "" {
		return out, fmt.Errorf("%s: %s", e.Name, out.Sample.Error)
	}
	return out, nil
}

// fail makes out a failed request: sent at sent, failed now.
func (out *Response) fail(name string, sent time.Time, err error) (*Response, error) {
	out.Sample = metrics.Sample{Name: name, Start: sent, E2E: time.Since(sent), Error: err.Error()}
	return out, err
}

// read takes the answer's text, the engine's timings and the cached prompt tokens from
// the stream's events.
func (out *Response) read(events []copilot.Event) {
	var text strings.Builder
	for _, ev := range events {
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *struct {
				Details *struct {
					CachedTokens int `json:"cached_tokens"`
				} `json:"prompt_tokens_details"`
			} `json:"usage"`
			Timings *Timings `json:"timings"`
		}
		if json.Unmarshal([]byte(ev.Data), &c) != nil {
			continue
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
		}
		if c.Usage != nil && c.Usage.Details != nil {
			out.CachedTokens = c.Usage.Details.CachedTokens
		}
		if c.Timings != nil {
			out.Timings = c.Timings // the last one is the request's whole account
		}
	}
	out.Content = text.String()
}

func excerpt(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// cause is why ctx ended, for a level's or a phase's stop reason.
func cause(ctx context.Context) string {
	err := context.Cause(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return "deadline"
	}
	return err.Error()
}
