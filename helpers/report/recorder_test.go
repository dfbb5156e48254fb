package report

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

func TestBaselineComparison(t *testing.T) {
	t.Parallel()
	dir, _ := written(t, fixture(t, canary))
	base := filepath.Join(dir, ResultsFile)

	same := fixture(t, canary)
	require.NoError(t, same.SetBaseline(base, 0.2))
	res, err := same.Results()
	require.NoError(t, err)
	ids := map[string]Check{}
	for _, c := range res.Checks {
		ids[c.ID] = c
	}
	require.Contains(t, ids, "Baseline/no_regression")
	assert.Equal(t, Pass, ids["Baseline/no_regression"].Verdict)
	assert.Equal(t, "Performance", ids["Baseline/no_regression"].Area)

	// Twice as slow to the first token.
	slow := NewRecorder(Run{Endpoint: "https://10.0.0.5"}, nil)
	for i := range 3 {
		sent := t0.Add(time.Duration(i) * 10 * time.Second)
		slow.Sample(metrics.Measure("TestChatStream", sent, stream(sent, 900*time.Millisecond, 80*time.Millisecond, 24, "x")))
	}
	require.NoError(t, slow.SetBaseline(base, 0.2))
	res, err = slow.Results()
	require.NoError(t, err)
	failed := map[string]string{}
	for _, c := range res.Checks {
		if c.Verdict == Fail {
			failed[c.ID] = c.Message
		}
	}
	assert.Contains(t, failed, "Baseline/ttft_p99")
	assert.Contains(t, failed, "Baseline/ttft_p50")
	assert.Contains(t, failed["Baseline/ttft_p99"], "tolerance 20%")
	require.NotNil(t, res.Metrics.Baseline)
	assert.Equal(t, base, res.Metrics.Baseline.Path)
	assert.Equal(t, "https://10.0.0.5", res.Metrics.Baseline.Run.Endpoint)

	assert.ErrorContains(t, slow.SetBaseline(filepath.Join(t.TempDir(), "missing.json"), 0.2), "baseline")
	empty := filepath.Join(t.TempDir(), "r")
	require.NoError(t, NewRecorder(Run{}, nil).WriteDir(empty))
	assert.ErrorContains(t, slow.SetBaseline(filepath.Join(empty, ResultsFile), 0.2), "holds no metrics")
}

func TestSLOsNotMeasured(t *testing.T) {
	t.Parallel()
	rec := NewRecorder(Run{Endpoint: "https://x"}, nil)
	require.NoError(t, rec.SetSLOs("cpu"))
	require.Error(t, rec.SetSLOs("ttft=1s"))
	rec.Result("TestChatStream", Pass, time.Second, "")
	res, err := rec.Results()
	require.NoError(t, err)
	assert.Equal(t, Fail, res.Verdict, "a gate asked for and not measured fails")
	n := 0
	for _, c := range res.Checks {
		if c.Area == "Performance" {
			n++
			assert.Equal(t, Fail, c.Verdict, c.ID)
			assert.Contains(t, c.Message, "not measured", c.ID)
		}
	}
	assert.Equal(t, 4, n, "cpu has four objectives")
	dir := filepath.Join(t.TempDir(), "r")
	require.NoError(t, rec.WriteDir(dir))
}

// TestConcurrentRecording: checks run in parallel; run with -race.
func TestConcurrentRecording(t *testing.T) {
	t.Parallel()
	rec := NewRecorder(Run{Endpoint: "https://x"}, NewRedactor([]string{"copilot"}, canary))
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("TestX/%d", i)
			for j := range 20 {
				rec.Evidence(name, Evidence{Request: "GET /", BodyExcerpt: canary})
				rec.Log(name, "line")
				if j%5 == 0 {
					rec.Sample(metrics.Measure(name, t0, stream(t0, 100*time.Millisecond, 10*time.Millisecond, 3, canary)))
					_, err := rec.Results()
					assert.NoError(t, err)
				}
			}
			rec.Result(name, Pass, time.Millisecond, "")
		}()
	}
	wg.Wait()
	res, err := rec.Results()
	require.NoError(t, err)
	assert.Len(t, res.Checks, 16)
	assert.Len(t, res.Metrics.Samples, 64)
}

func TestTrackRecordsTheVerdict(t *testing.T) {
	t.Parallel()
	rec := NewRecorder(Run{Endpoint: "https://x"}, nil)
	t.Run("group", func(t *testing.T) {
		rec.Track(t)
		t.Run("passes", func(t *testing.T) {
			rec.Track(t)
			t.Parallel()
			time.Sleep(20 * time.Millisecond) // a duration to measure, not a wait for readiness
		})
		t.Run("skips", func(t *testing.T) {
			rec.Track(t)
			t.Parallel()
			t.Skip("nothing to do")
		})
	})
	res, err := rec.Results()
	require.NoError(t, err)
	got := map[string]Check{}
	for _, c := range res.Checks {
		got[regexp.MustCompile(`^TestTrackRecordsTheVerdict/`).ReplaceAllString(c.ID, "")] = c
	}
	assert.Equal(t, Pass, got["group/passes"].Verdict)
	assert.GreaterOrEqual(t, got["group/passes"].Duration, 20*time.Millisecond)
	assert.Equal(t, Skip, got["group/skips"].Verdict)
	assert.NotContains(t, got, "group", "the parent's verdict is its subtests'")
}

func TestSuiteBuild(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("SKIP: no git: the commit cannot be read outside a stamped binary")
	}
	_, commit := SuiteBuild()
	// go test runs in the repository: git knows the commit.
	assert.Regexp(t, `^[0-9a-f]{40}(\+dirty)?$`, commit)
}
