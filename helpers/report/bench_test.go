package report

import (
	"html"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/bench"
	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

// benchResult is a -bench result with two levels (the second with a failed request),
// a Cline profile whose error quotes the canary, and the front door's overhead.
func benchResult() *bench.Result {
	var one, two []metrics.Sample
	for i := range 3 {
		one = append(one, metrics.Measure("bench/concurrency_1", t0.Add(time.Duration(i)*time.Second), stream(t0.Add(time.Duration(i)*time.Second), 200*time.Millisecond, 50*time.Millisecond, 8, "x")))
		two = append(two, metrics.Measure("bench/concurrency_2", t0.Add(time.Minute), stream(t0.Add(time.Minute), 400*time.Millisecond, 90*time.Millisecond, 8, "y")))
	}
	two[2] = metrics.Sample{Name: "bench/concurrency_2/003", Start: t0.Add(time.Minute), Error: "front door: status 502"}
	slos, _ := metrics.ParseSLOs("ttft_p99=300ms")
	return &bench.Result{
		Concurrency: []int{1, 2}, PromptTokens: 256, OutputTokens: 8, Requests: 3, DurationMS: 180000,
		Sizing: &bench.Sizing{Units: 7, PerUnit: 36, Fixed: 12, Tokens: 264},
		Levels: []bench.Level{
			{Concurrency: 1, Stop: bench.StopRequests, Summary: metrics.Summarize(one, slos), Samples: one},
			{Concurrency: 2, Stop: bench.StopRequests, Summary: metrics.Summarize(two, slos), Samples: two},
		},
		ClineError: "the Cline-sized first request: front door: status 401: " + canary,
		FrontDoor:  &bench.Overhead{Pairs: 10, Stop: bench.StopRequests, OutputTokens: 16, TTFTMS: 1.5, E2EMS: 2.25, FrontDoorTTFTMS: 9, EngineTTFTMS: 7.5, FrontDoorE2EMS: 60, EngineE2EMS: 58},
	}
}

// TestBench: a -bench result goes into results.json's metrics.bench (redacted, read
// back as written), report.md and report.html, apart from the checks' samples; its
// verdicts, recorded as Bench/... checks, count in Performance.
func TestBench(t *testing.T) {
	t.Parallel()
	rec := fixture(t, canary)
	before, err := rec.Results()
	require.NoError(t, err)
	require.NoError(t, rec.SetBench(benchResult()))
	rec.Result("Bench/concurrency_2", Fail, time.Minute, "1 of 3 requests failed: front door: status 502")
	dir, res := written(t, rec)

	m := res.Metrics
	require.NotNil(t, m)
	require.NotNil(t, m.Bench)
	assert.Equal(t, before.Metrics.Summary, m.Summary, "bench requests are not the checks' samples")
	require.Len(t, m.Bench.Levels, 2)
	assert.Equal(t, 2, m.Bench.Levels[1].Summary.Completed)
	assert.NotContains(t, m.Bench.ClineError, canary, "redacted")
	assert.Equal(t, "Performance", AreaOf("Bench/concurrency_2"))

	back, err := ReadResults(filepath.Join(dir, ResultsFile))
	require.NoError(t, err)
	assert.Equal(t, m.Bench, back.Metrics.Bench, "results.json's bench reads back as written")

	md, err := os.ReadFile(filepath.Join(dir, MarkdownFile))
	require.NoError(t, err)
	for _, want := range []string{
		"### Load profile (-bench)",
		"8 output tokens per request, at most 3 requests and 180.0 s per level, prompts of ≈264 tokens",
		"| 1 | 3/3 | 200 ms | 200 ms | 200 ms | 200 ms | 50 ms | 50 ms | 57 ms | 57 ms | 600 ms | 600 ms | 13.33 | 9.23 | 1.154 | 100% | requests |",
		"| 2 | 2/3 | 400 ms |",
		"| 100% | requests |", "| 0% | requests |",
		"Cline profile not measured: the Cline-sized first request: front door: status 401: \\[REDACTED\\]",
		"Front door overhead: TTFT +1.5 ms (front door 9.0 ms, engine 7.5 ms), E2E +2.2 ms",
	} {
		assert.Contains(t, string(md), want)
	}
	page, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	require.NoError(t, err)
	for _, want := range []string{
		"<h3>Load profile (-bench)</h3>",
		`<tr><td class="n">2</td><td class="n">2/3</td><td class="n">400 ms</td>`,
		"<p>Cline profile not measured: the Cline-sized first request: front door: status 401: [REDACTED]</p>",
		"<p>Front door overhead: TTFT +1.5 ms (front door 9.0 ms, engine 7.5 ms)",
	} {
		assert.Contains(t, html.UnescapeString(string(page)), want)
	}
}

// TestBenchAlone: a run whose only metrics are a -bench result still writes them.
func TestBenchAlone(t *testing.T) {
	t.Parallel()
	rec := NewRecorder(Run{Start: t0}, nil)
	require.NoError(t, rec.SetBench(&bench.Result{LoadError: "sizing the prompt: no answer"}))
	res, err := rec.Results()
	require.NoError(t, err)
	require.NotNil(t, res.Metrics)
	require.NotNil(t, res.Metrics.Bench)
	assert.Equal(t, "sizing the prompt: no answer", res.Metrics.Bench.LoadError)
	md, err := renderMarkdown(res)
	require.NoError(t, err)
	assert.Contains(t, string(md), "Load profile not measured: sizing the prompt: no answer")
}
