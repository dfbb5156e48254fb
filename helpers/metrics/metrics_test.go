package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
)

// t0 is an arbitrary send time; the synthetic events are offsets from it.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func content(s string) string {
	return fmt.Sprintf(`{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}]}`, s)
}

// synthetic is a stream with known arrival times: a role chunk, four content chunks
// (two completed by the same read), a finish chunk, a usage chunk and [DONE].
func synthetic() []copilot.Event {
	return []copilot.Event{
		{At: at(100), Data: `{"choices":[{"index":0,"delta":{"role":"assistant"}}]}`},
		{At: at(250), Data: content("Hel")},
		{At: at(400), Data: content("lo")},
		{At: at(400), Data: content(" wor")},
		{At: at(700), Data: content("ld")},
		{At: at(800), Data: `{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`},
		{At: at(850), Data: `{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`},
		{At: at(900), Data: `[DONE]`},
	}
}

func TestMeasureDefinitions(t *testing.T) {
	t.Parallel()
	s := Measure("stream", t0, synthetic())
	require.True(t, s.OK(), s.Error)
	assert.Equal(t, 250*time.Millisecond, s.TTFT, "TTFT: the first content, not the role chunk")
	assert.Equal(t, []time.Duration{150 * time.Millisecond, 0, 300 * time.Millisecond}, s.ITLs, "ITL: gaps between content events, coalesced ones zero")
	assert.Equal(t, 850*time.Millisecond, s.E2E, "E2E: the last event before [DONE]")
	assert.Equal(t, 150*time.Millisecond, s.TPOT, "TPOT = (850-250)/(5-1)")
	assert.True(t, s.Usage)
	assert.Equal(t, 12, s.PromptTokens)
	assert.Equal(t, 5, s.OutputTokens, "tokens from usage, not the 4 content chunks")
	assert.InDelta(t, 5/0.85, s.OutputTokensPerSecond, 1e-9)
	assert.Equal(t, 4, s.OutputEvents)
	assert.True(t, s.Done)
	kinds := []Kind{}
	for _, e := range s.Events {
		kinds = append(kinds, e.Kind)
	}
	assert.Equal(t, []Kind{KindRole, KindContent, KindContent, KindContent, KindContent, KindFinish, KindUsage, KindDone}, kinds)
	assert.Equal(t, "Hel", s.Events[1].Text)
	assert.Equal(t, 250*time.Millisecond, s.Events[1].Offset)
}

func TestMeasureEdges(t *testing.T) {
	t.Parallel()
	tool := `{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"read_file","arguments":"{\"path\""}}]}}]}`
	for _, tc := range []struct {
		name   string
		events []copilot.Event
		check  func(t *testing.T, s Sample)
	}{
		{"tool call is the first token", []copilot.Event{
			{At: at(50), Data: `{"choices":[{"delta":{"role":"assistant","content":""}}]}`},
			{At: at(300), Data: tool},
			{At: at(420), Data: tool},
			{At: at(500), Data: `[DONE]`},
		}, func(t *testing.T, s Sample) {
			assert.True(t, s.OK())
			assert.Equal(t, 300*time.Millisecond, s.TTFT)
			assert.Equal(t, []time.Duration{120 * time.Millisecond}, s.ITLs)
			assert.Equal(t, KindToolCall, s.Events[1].Kind)
			assert.Equal(t, `read_file{"path"`, s.Events[1].Text)
		}},
		{"reasoning content is output", []copilot.Event{
			{At: at(80), Data: `{"choices":[{"delta":{"reasoning_content":"think"}}]}`},
		}, func(t *testing.T, s Sample) {
			assert.Equal(t, 80*time.Millisecond, s.TTFT)
		}},
		{"without usage no tokens are guessed", []copilot.Event{
			{At: at(100), Data: content("a")},
			{At: at(200), Data: content("b")},
			{At: at(210), Data: `[DONE]`},
		}, func(t *testing.T, s Sample) {
			assert.True(t, s.OK())
			assert.False(t, s.Usage)
			assert.Zero(t, s.OutputTokens)
			assert.Zero(t, s.TPOT)
			assert.Zero(t, s.OutputTokensPerSecond)
			assert.Equal(t, 200*time.Millisecond, s.E2E)
		}},
		{"one output token has no TPOT", []copilot.Event{
			{At: at(100), Data: content("a")},
			{At: at(150), Data: `{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}`},
		}, func(t *testing.T, s Sample) {
			assert.Zero(t, s.TPOT)
			assert.InDelta(t, 1/0.15, s.OutputTokensPerSecond, 1e-9)
			assert.False(t, s.Done)
		}},
		{"error event fails the request", []copilot.Event{
			{At: at(100), Data: content("partial")},
			{At: at(150), Data: `{"error":{"code":500,"message":"the request exceeds the available context size"}}`},
		}, func(t *testing.T, s Sample) {
			assert.False(t, s.OK())
			assert.Contains(t, s.Error, "exceeds the available context size")
			assert.Equal(t, KindError, s.Events[1].Kind)
		}},
		{"no output", []copilot.Event{
			{At: at(100), Data: `{"choices":[{"delta":{"role":"assistant"}}]}`},
			{At: at(110), Data: `[DONE]`},
		}, func(t *testing.T, s Sample) {
			assert.False(t, s.OK())
			assert.Contains(t, s.Error, "no output")
		}},
		{"no events", nil, func(t *testing.T, s Sample) {
			assert.Equal(t, "no events", s.Error)
		}},
		{"unparsable data is other", []copilot.Event{
			{At: at(10), Data: `not json`},
			{At: at(20), Data: content("x")},
		}, func(t *testing.T, s Sample) {
			assert.True(t, s.OK())
			assert.Equal(t, KindOther, s.Events[0].Kind)
			assert.Equal(t, 20*time.Millisecond, s.TTFT)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.check(t, Measure(tc.name, t0, tc.events))
		})
	}
}

func TestPercentileIsNumpyLinear(t *testing.T) {
	t.Parallel()
	// Expected values are numpy.percentile(x, p) with its default method.
	x := []float64{15, 20, 35, 40, 50}
	for _, tc := range []struct{ p, want float64 }{
		{0, 15}, {40, 29}, {50, 35}, {90, 46}, {99, 49.6}, {100, 50},
	} {
		assert.InDelta(t, tc.want, Percentile(x, tc.p), 1e-9, "p%v", tc.p)
	}
	assert.InDelta(t, 2.5, Percentile([]float64{1, 2, 3, 4}, 50), 1e-12)
	assert.InDelta(t, 3.97, Percentile([]float64{1, 2, 3, 4}, 99), 1e-12)
	assert.Equal(t, 7.0, Percentile([]float64{7}, 99))
	assert.True(t, math.IsNaN(Percentile(nil, 50)))

	d := Describe([]float64{4, 1, 3, 2})
	assert.Equal(t, Distribution{Count: 4, Mean: 2.5, Min: 1, P50: 2.5, P90: 3.7, P99: 3.97, Max: 4}, roundDist(d))
}

func roundDist(d Distribution) Distribution {
	r := func(v float64) float64 { return math.Round(v*1e9) / 1e9 }
	return Distribution{Count: d.Count, Mean: r(d.Mean), Min: r(d.Min), P50: r(d.P50), P90: r(d.P90), P99: r(d.P99), Max: r(d.Max)}
}

// twoSamples: the synthetic stream at t0, and a second one sent 1 s later with TTFT
// 450 ms, one gap of 100 ms, E2E 650 ms, 3 output tokens; and a failed third.
func twoSamples() []Sample {
	a := Measure("a", t0, synthetic())
	sent := t0.Add(time.Second)
	b := Measure("b", sent, []copilot.Event{
		{At: sent.Add(450 * time.Millisecond), Data: content("x")},
		{At: sent.Add(550 * time.Millisecond), Data: content("y")},
		{At: sent.Add(650 * time.Millisecond), Data: `{"choices":[],"usage":{"prompt_tokens":8,"completion_tokens":3}}`},
		{At: sent.Add(660 * time.Millisecond), Data: `[DONE]`},
	})
	c := Measure("c", t0.Add(500*time.Millisecond), []copilot.Event{{At: t0.Add(600 * time.Millisecond), Data: `{"error":{"message":"boom"}}`}})
	return []Sample{a, b, c}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	slos, err := ParseSLOs("ttft_p99=300ms")
	require.NoError(t, err)
	s := Summarize(twoSamples(), slos)
	assert.Equal(t, 3, s.Requests)
	assert.Equal(t, 2, s.Completed)
	assert.Equal(t, 1, s.Failed)
	// TTFT 250, 450; ITL 150, 0, 300, 100; E2E 850, 650; TPOT 150, (650-450)/2 = 100.
	assert.Equal(t, Distribution{Count: 2, Mean: 350, Min: 250, P50: 350, P90: 430, P99: 448, Max: 450}, roundDist(s.TTFT))
	assert.Equal(t, Distribution{Count: 4, Mean: 137.5, Min: 0, P50: 125, P90: 255, P99: 295.5, Max: 300}, roundDist(s.ITL))
	assert.Equal(t, Distribution{Count: 2, Mean: 750, Min: 650, P50: 750, P90: 830, P99: 848, Max: 850}, roundDist(s.E2E))
	assert.Equal(t, Distribution{Count: 2, Mean: 125, Min: 100, P50: 125, P90: 145, P99: 149.5, Max: 150}, roundDist(s.TPOT))
	assert.Equal(t, 8, s.OutputTokens)
	assert.Equal(t, 20, s.PromptTokens)
	// Window: t0 (first sent) to t0+1650 ms (b's last event).
	assert.InDelta(t, 1650, s.WindowMS, 1e-9)
	assert.InDelta(t, 8/1.65, s.OutputThroughput, 1e-9)
	assert.InDelta(t, 2/1.65, s.RequestThroughput, 1e-9)
	assert.InDelta(t, (5/0.85+3/0.65)/2, s.TPS.Mean, 1e-9)
	require.NotNil(t, s.Goodput)
	assert.Equal(t, 1, s.Goodput.Requests, "only a (TTFT 250 ms) meets ttft ≤ 300 ms; c failed")
	assert.InDelta(t, 1.0/3, s.Goodput.Share, 1e-9)
	assert.InDelta(t, 1/1.65, s.Goodput.Rate, 1e-9)

	assert.Nil(t, Summarize(twoSamples(), nil).Goodput)
	assert.Contains(t, s.String(), "2/3 streams")
}

func TestSampleJSONRoundTrip(t *testing.T) {
	t.Parallel()
	in := Measure("a", t0, synthetic())
	b, err := json.Marshal(in)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"ttft_ms":250`)
	assert.Contains(t, string(b), `"itl_ms":[150,0,300]`)
	var out Sample
	require.NoError(t, json.Unmarshal(b, &out))
	assert.Equal(t, in.TTFT, out.TTFT)
	assert.Equal(t, in.ITLs, out.ITLs)
	assert.Equal(t, in.Events, out.Events)
	assert.True(t, in.Start.Equal(out.Start))
	out.Start = in.Start
	assert.Equal(t, in, out)
}

// TestPacedStream measures a real stream through net/http and copilot.Tap. The server
// is a signal generator with known pacing (not a stand-in for the appliance): content
// 300 ms after the request, then every 120 ms. It notes when it flushed each piece (the
// same process, the same monotonic clock), and the measurements must match those times
// within max(40 ms, 25 %), loose enough for a busy 2-core machine; they can never be
// shorter than the pacing.
func TestPacedStream(t *testing.T) {
	t.Parallel()
	const (
		first  = 300 * time.Millisecond
		gap    = 120 * time.Millisecond
		chunks = 5
	)
	var flushed []time.Time // when each content chunk left the server; read after the body ends
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		f := w.(http.Flusher)
		fmt.Fprintf(w, "data: %s\n\n", `{"choices":[{"delta":{"role":"assistant"}}]}`)
		f.Flush()
		time.Sleep(first)
		for i := range chunks {
			if i > 0 {
				time.Sleep(gap)
			}
			fmt.Fprintf(w, "data: %s\n\n", content(fmt.Sprint("tok", i)))
			f.Flush()
			flushed = append(flushed, time.Now())
		}
		fmt.Fprintf(w, "data: %s\n\ndata: [DONE]\n\n", `{"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":5}}`)
	})}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })

	tap := &copilot.Tap{Base: &http.Transport{}}
	client := &http.Client{Transport: tap, Timeout: 30 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/v1/chat/completions")
	require.NoError(t, err)
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	require.NoError(t, err)

	c := tap.Last()
	s := FromCapture("paced", c)
	require.True(t, s.OK(), s.Error)
	require.Len(t, flushed, chunks)
	near := func(what string, got, want, paced time.Duration) {
		tol := max(40*time.Millisecond, want/4)
		assert.InDelta(t, float64(want), float64(got), float64(tol), "%s: measured %s, sent after %s (±%s)", what, got, want, tol)
		assert.GreaterOrEqual(t, got, paced-5*time.Millisecond, "%s: measured %s, shorter than the pacing %s", what, got, paced)
	}
	near("TTFT", s.TTFT, flushed[0].Sub(c.Sent), first)
	require.Len(t, s.ITLs, chunks-1)
	for i, d := range s.ITLs {
		near(fmt.Sprintf("ITL %d", i), d, flushed[i+1].Sub(flushed[i]), gap-20*time.Millisecond)
	}
	near("E2E", s.E2E, flushed[chunks-1].Sub(c.Sent), first+(chunks-1)*gap)
	assert.Equal(t, 5, s.OutputTokens)
	near("TPOT", s.TPOT, flushed[chunks-1].Sub(flushed[0])/4, gap-20*time.Millisecond)
}
