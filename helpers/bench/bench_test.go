package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

// fakeEngine answers chat completions as llama-server streams them: a role chunk, one
// chunk per output token, a finish chunk, the usage chunk with timings, [DONE]. Its
// prompt count is one token per character of the messages' text; hold, when set, is
// waited on before answering.
type fakeEngine struct {
	mu       sync.Mutex
	requests []map[string]any
	hold     chan struct{}
	arrived  chan struct{}    // a send per request, when set
	status   int              // answer with this status instead of a stream
	fail     func(n int) bool // answer request n (from 1) with a 502
	cut      bool             // end the stream before [DONE]
	cached   int              // usage.prompt_tokens_details.cached_tokens
}

func (f *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.requests = append(f.requests, body)
	n := len(f.requests)
	f.mu.Unlock()
	if f.arrived != nil {
		f.arrived <- struct{}{}
	}
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-r.Context().Done():
			return
		}
	}
	if f.status != 0 {
		http.Error(w, `{"error":{"message":"overloaded"}}`, f.status)
		return
	}
	if f.fail != nil && f.fail(n) {
		http.Error(w, "Bad Gateway", http.StatusBadGateway)
		return
	}
	b, _ := json.Marshal(body["messages"])
	prompt := len(b)
	n = int(body["max_tokens"].(float64))
	w.Header().Set("Content-Type", "text/event-stream")
	write := func(v string) {
		_, _ = io.WriteString(w, "data: "+v+"\n\n")
		_ = http.NewResponseController(w).Flush()
	}
	write(`{"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}`)
	for i := range n {
		write(fmt.Sprintf(`{"choices":[{"index":0,"delta":{"content":"t%d "}}]}`, i))
	}
	write(`{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}`)
	if f.cut {
		return
	}
	write(fmt.Sprintf(`{"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":%d}},"timings":{"cache_n":%d,"prompt_n":%d,"prompt_ms":12.5,"prompt_per_second":800,"predicted_n":%d,"predicted_ms":40,"predicted_per_second":75}}`,
		prompt, n, prompt+n, f.cached, f.cached, prompt-f.cached, n))
	write("[DONE]")
}

func (f *fakeEngine) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

func serve(t *testing.T, f *fakeEngine) *Endpoint {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return &Endpoint{Name: "fake", URL: srv.URL + "/v1/chat/completions", Transport: srv.Client().Transport,
		Header: http.Header{"Authorization": {"Bearer k"}}, Model: "m", RequestTimeout: 10 * time.Second}
}

func TestStream(t *testing.T) {
	t.Parallel()
	f := &fakeEngine{cached: 3}
	e := serve(t, f)
	resp, err := e.Stream(context.Background(), "one", LoadPrompt(5)(2, "00c0ffee"))
	require.NoError(t, err)
	s := resp.Sample
	require.True(t, s.OK(), s.Error)
	assert.Equal(t, http.StatusOK, resp.Status)
	assert.Equal(t, 5, s.OutputTokens)
	assert.Equal(t, "t0 t1 t2 t3 t4 ", resp.Content)
	assert.Equal(t, 3, resp.CachedTokens)
	require.NotNil(t, resp.Timings)
	assert.Equal(t, Timings{CacheN: 3, PromptN: s.PromptTokens - 3, PromptMS: 12.5, PromptPerSecond: 800, PredictedN: 5, PredictedMS: 40, PredictedPerSecond: 75}, *resp.Timings)

	body := f.requests[0]
	assert.Equal(t, true, body["stream"])
	assert.Equal(t, map[string]any{"include_usage": true}, body["stream_options"], "tokens come from the server's usage")
	assert.Equal(t, true, body["ignore_eos"], "the answer's length is fixed")
	assert.EqualValues(t, 0, body["temperature"])
	assert.Equal(t, "m", body["model"])
	text := body["messages"].([]any)[0].(map[string]any)["content"].(string)
	assert.True(t, strings.HasPrefix(text, "Request 00c0ffee."), "the id comes first, so that no two prompts share a prefix: %q", text)
}

func TestStreamFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		f    *fakeEngine
		want string
	}{
		{"status", &fakeEngine{status: http.StatusServiceUnavailable}, "status 503: {\"error\":{\"message\":\"overloaded\"}}"},
		{"cut", &fakeEngine{cut: true}, "without data: [DONE]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, err := serve(t, tc.f).Stream(context.Background(), "x", LoadPrompt(2)(1, NewID()))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.False(t, resp.Sample.OK())
			assert.Contains(t, resp.Sample.Error, tc.want)
		})
	}
	t.Run("no_answer", func(t *testing.T) {
		t.Parallel()
		e := serve(t, &fakeEngine{})
		e.URL = "http://127.0.0.1:1/v1/chat/completions"
		resp, err := e.Stream(context.Background(), "x", LoadPrompt(2)(1, NewID()))
		require.Error(t, err)
		assert.Contains(t, resp.Sample.Error, "fake: no answer")
		assert.False(t, resp.Sample.Start.IsZero(), "a failed request keeps its start, for the level's window")
	})
}

func TestFit(t *testing.T) {
	t.Parallel()
	f := &fakeEngine{}
	e := serve(t, f)
	build := LoadPrompt(64)
	s, err := e.Fit(context.Background(), build, 1000, 1, 16)
	require.NoError(t, err)
	require.Equal(t, 2, f.count(), "two probes")
	for _, r := range f.requests {
		assert.EqualValues(t, 1, r["max_tokens"], "a probe needs the prompt's count, not an answer")
	}
	// The fake counts characters: the fit must land on the prompt closest to 1000.
	size := func(units int) int {
		b, _ := json.Marshal(build(units, "00000000").Messages)
		return len(b)
	}
	assert.InDelta(t, 1000, size(s.Units), s.PerUnit/2+1, "fitted %+v", s)
	assert.InDelta(t, size(s.Units), s.Tokens, 2)

	_, err = e.Fit(context.Background(), build, 1000, 2, 2)
	assert.Error(t, err, "probe sizes must differ")
}

func TestLevelStopsAtRequests(t *testing.T) {
	t.Parallel()
	f := &fakeEngine{}
	e := serve(t, f)
	lv := e.Level(context.Background(), 3, 7, time.Minute, []metrics.SLO{{Name: "ttft_p99", Metric: "ttft", Stat: "p99", Limit: 60000}},
		func(id string) Request { return LoadPrompt(4)(2, id) })
	assert.Equal(t, StopRequests, lv.Stop)
	assert.Equal(t, 7, f.count())
	assert.Equal(t, 7, lv.Summary.Completed)
	assert.Equal(t, 28, lv.Summary.OutputTokens)
	require.NotNil(t, lv.Summary.Goodput, "SLOs given: goodput counted")
	assert.Equal(t, 7, lv.Summary.Goodput.Requests)
	assert.Empty(t, lv.FirstError())
	ids := map[string]bool{}
	for _, r := range f.requests {
		ids[r["messages"].([]any)[0].(map[string]any)["content"].(string)[:16]] = true
	}
	assert.Len(t, ids, 7, "every request has its own id")

	// Fewer requests than workers: each worker still sends one.
	g := &fakeEngine{}
	lv = serve(t, g).Level(context.Background(), 4, 1, time.Minute, nil, func(id string) Request { return LoadPrompt(2)(1, id) })
	assert.Equal(t, 4, g.count())
	assert.Nil(t, lv.Summary.Goodput, "no SLOs: no goodput")
}

// TestLevelStopsAtDuration: the engine holds the first requests until the level's time
// is up; then no worker sends another.
func TestLevelStopsAtDuration(t *testing.T) {
	t.Parallel()
	f := &fakeEngine{hold: make(chan struct{}), arrived: make(chan struct{}, 100)}
	e := serve(t, f)
	const duration = 50 * time.Millisecond
	began := time.Now()
	done := make(chan Level)
	go func() {
		done <- e.Level(context.Background(), 2, 100, duration, nil, func(id string) Request { return LoadPrompt(2)(1, id) })
	}()
	<-f.arrived
	<-f.arrived
	for time.Since(began) < 2*duration { // the level's clock started after began
		select {
		case <-f.arrived:
			t.Fatal("a third request started while two were held")
		case <-time.After(time.Millisecond):
		}
	}
	close(f.hold)
	lv := <-done
	assert.Equal(t, StopDuration, lv.Stop)
	assert.Equal(t, 2, f.count(), "no request starts once the level's time is up")
	assert.Equal(t, 2, lv.Summary.Completed, "the requests in flight are answered")
}

// TestLevelCutByContext: requests in flight when the run's context ends measured the
// bench's deadline, not the instance: they are counted apart, not as failures.
func TestLevelCutByContext(t *testing.T) {
	t.Parallel()
	f := &fakeEngine{hold: make(chan struct{}), arrived: make(chan struct{}, 100)}
	t.Cleanup(func() { close(f.hold) })
	e := serve(t, f)
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan Level)
	go func() {
		done <- e.Level(ctx, 2, 10, time.Minute, nil, func(id string) Request { return LoadPrompt(2)(1, id) })
	}()
	<-f.arrived
	<-f.arrived
	cancel(errors.New("the suite's end is near"))
	lv := <-done
	assert.Equal(t, "the suite's end is near", lv.Stop)
	assert.Equal(t, 2, lv.Cut)
	assert.Zero(t, lv.Summary.Requests)
}

// TestFrontDoorOverhead: the pairs alternate which path goes first, after one warm-up
// each; the overhead is the median of the paired differences.
func TestFrontDoorOverhead(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		order []string
	)
	path := func(name string) *Endpoint {
		f := &fakeEngine{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			f.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		return &Endpoint{Name: name, URL: srv.URL, Transport: srv.Client().Transport, Model: "m"}
	}
	front, engine := path("front"), path("engine")
	o, err := FrontDoorOverhead(context.Background(), front, engine, LoadPrompt(3)(1, NewID()), 4, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, []string{"front", "engine", "front", "engine", "engine", "front", "front", "engine", "engine", "front"}, order)
	assert.Equal(t, 4, o.Pairs)
	assert.Equal(t, StopRequests, o.Stop)
	assert.Equal(t, 3, o.OutputTokens)
	require.Len(t, o.TTFTDiffsMS, 4)
	assert.Equal(t, median(o.TTFTDiffsMS), o.TTFTMS)
	assert.Equal(t, median(o.E2EDiffsMS), o.E2EMS)

	_, err = FrontDoorOverhead(context.Background(), front, engine, LoadPrompt(3)(1, NewID()), 0, time.Minute)
	assert.Error(t, err)
}

// TestFrontDoorOverheadLeavesOutFailedPairs: a pair with a failed request is counted
// and left out; a failed warm-up is sent again; no pair left is an error.
func TestFrontDoorOverheadLeavesOutFailedPairs(t *testing.T) {
	t.Parallel()
	front := serve(t, &fakeEngine{fail: func(n int) bool { return n == 3 }}) // the warm-up, then pairs 0 and 1
	o, err := FrontDoorOverhead(context.Background(), front, serve(t, &fakeEngine{}), LoadPrompt(3)(1, NewID()), 4, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, 3, o.Pairs)
	assert.Equal(t, 1, o.Failed)
	assert.Contains(t, o.FirstError, "pair 1: fake: status 502")
	assert.Contains(t, o.String(), "1 pairs left out, a request failed (first: pair 1: fake: status 502")

	warm := &fakeEngine{fail: func(n int) bool { return n == 1 }}
	o, err = FrontDoorOverhead(context.Background(), serve(t, warm), serve(t, &fakeEngine{}), LoadPrompt(3)(1, NewID()), 2, time.Minute)
	require.NoError(t, err, "a failed warm-up is sent once more")
	assert.Equal(t, 2, o.Pairs)
	assert.Equal(t, 1+1+2, warm.count())

	front = serve(t, &fakeEngine{fail: func(n int) bool { return n > 1 }})
	_, err = FrontDoorOverhead(context.Background(), front, serve(t, &fakeEngine{}), LoadPrompt(3)(1, NewID()), 2, time.Minute)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no pair measured: pair 0: fake: status 502")
}

// TestFitAsksAgain: a failed probe is sent once more; two failures fail the sizing.
func TestFitAsksAgain(t *testing.T) {
	t.Parallel()
	f := &fakeEngine{fail: func(n int) bool { return n == 2 }}
	_, err := serve(t, f).Fit(context.Background(), LoadPrompt(8), 100, 1, 4)
	require.NoError(t, err)
	assert.Equal(t, 3, f.count())

	g := &fakeEngine{fail: func(n int) bool { return n <= 2 }}
	_, err = serve(t, g).Fit(context.Background(), LoadPrompt(8), 100, 1, 4)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "fit: a prompt of 1 units: fake: status 502: Bad Gateway; asked again: fake: status 502")
}

func TestMedian(t *testing.T) {
	t.Parallel()
	assert.Equal(t, 2.0, median([]float64{3, 1, 2}))
	assert.Equal(t, 2.5, median([]float64{4, 1, 3, 2}))
	v := []float64{3, 1}
	median(v)
	assert.Equal(t, []float64{3, 1}, v, "not modified")
}

func TestBudget(t *testing.T) {
	t.Parallel()
	p := Plan{Front: &Endpoint{RequestTimeout: 5 * time.Minute}, Concurrency: []int{1, 2, 4}, Duration: 3 * time.Minute}
	assert.Equal(t, 2*5*time.Minute+3*(3+5)*time.Minute, Budget(p))
	p.Cline = &Cline{}
	p.Engine = &Endpoint{}
	assert.Equal(t, 2*5*time.Minute+3*(3+5)*time.Minute+4*5*time.Minute+2*DefaultThinkTime+4*5*time.Minute+3*time.Minute, Budget(p))
	assert.Equal(t, Budget(p), DefaultBudget(5*time.Minute), "the defaults are those of the suite's -bench")
}

// TestRunAndTable: Run on a fake engine, then its terminal table and its JSON.
func TestRunAndTable(t *testing.T) {
	t.Parallel()
	front, engine := serve(t, &fakeEngine{cached: 40}), serve(t, &fakeEngine{})
	cline := &Cline{
		Tokens: 3000,
		Build: func(units int, id string) Request {
			return Request{Messages: []any{map[string]any{"role": "system", "content": "Session " + id + "\n" + strings.Repeat("## tool\nUsage: <tool/>\n", units*10)}}}
		},
		FollowUp: func(first Request, answer string) Request {
			first.Messages = append(first.Messages, map[string]any{"role": "assistant", "content": answer}, map[string]any{"role": "user", "content": "go on"})
			return first
		},
		ThinkTime: time.Millisecond,
	}
	var progress bytes.Buffer
	res := Run(context.Background(), Plan{Front: front, Engine: engine, Concurrency: []int{1, 2}, PromptTokens: 300, OutputTokens: 8,
		Requests: 3, Duration: time.Minute, Cline: cline, OverheadPairs: 2, Progress: &progress})
	require.Empty(t, res.LoadError)
	require.Empty(t, res.ClineError)
	require.Empty(t, res.FrontDoorError)
	require.Len(t, res.Levels, 2)
	assert.Equal(t, 3, res.Levels[0].Summary.Completed)
	assert.Equal(t, 3, res.Levels[1].Summary.Completed)
	require.NotNil(t, res.Cline)
	assert.InDelta(t, 3000, res.Cline.PromptTokens, res.Cline.Sizing.PerUnit)
	assert.Greater(t, res.Cline.FollowUpPromptTokens, res.Cline.PromptTokens)
	assert.Equal(t, 40, res.Cline.FollowUpCachedTokens)
	assert.Positive(t, res.Cline.PrefillTokensPerSecond)
	assert.Positive(t, res.Cline.CacheEffect)
	assert.Equal(t, 800.0, res.Cline.EnginePrefillTokensPerSecond)
	require.NotNil(t, res.FrontDoor)
	assert.Equal(t, 2, res.FrontDoor.Pairs)
	assert.Equal(t, min(8, OverheadOutputTokens), res.FrontDoor.OutputTokens, "the overhead's answers are no longer than the load's, and short")
	for _, want := range []string{"bench: load profile: prompts of", "concurrency 1: 3/3 streams", "concurrency 2: 3/3 streams", "Cline profile: first request", "front door overhead: TTFT"} {
		assert.Contains(t, progress.String(), want)
	}

	var table bytes.Buffer
	res.WriteTable(&table)
	t.Log(table.String())
	lines := strings.Split(table.String(), "\n")
	require.GreaterOrEqual(t, len(lines), 7, table.String())
	assert.Contains(t, lines[1], "bench: 8 output tokens, at most 3 requests and 1m0s per level, prompts of ≈")
	assert.Regexp(t, `^\s*conc\s+ok/sent\s+TTFT p50`, lines[2])
	assert.Regexp(t, `^\s*1\s+3/3\s`, lines[3])
	assert.Regexp(t, `^\s*2\s+3/3\s.*requests\s*$`, lines[4])
	assert.Contains(t, lines[5], "Cline profile: first request")
	assert.Contains(t, lines[6], "front door overhead: TTFT")

	b, err := json.Marshal(res)
	require.NoError(t, err)
	var back Result
	require.NoError(t, json.Unmarshal(b, &back))
	again, err := json.Marshal(back)
	require.NoError(t, err)
	assert.JSONEq(t, string(b), string(again), "results.json's bench section reads back as written")
}

// TestRunReportsWhatItCouldNotMeasure: a part that fails leaves its error and the
// others still run.
func TestRunReportsWhatItCouldNotMeasure(t *testing.T) {
	t.Parallel()
	front := serve(t, &fakeEngine{status: http.StatusServiceUnavailable})
	res := Run(context.Background(), Plan{Front: front, Engine: serve(t, &fakeEngine{}), Concurrency: []int{1}, PromptTokens: 100, OutputTokens: 4, Requests: 1, Duration: time.Minute})
	assert.Contains(t, res.LoadError, "sizing the prompt: fit: a prompt of 1 units: fake: status 503")
	assert.Empty(t, res.Levels)
	assert.Contains(t, res.FrontDoorError, "warm-up")
	var table bytes.Buffer
	res.WriteTable(&table)
	assert.Contains(t, table.String(), "load profile not measured: sizing the prompt")
	assert.Contains(t, table.String(), "front door overhead not measured")
}
