package metrics

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSLOs(t *testing.T) {
	t.Parallel()
	got, err := ParseSLOs("ttft_p99=500ms, itl_p99=150ms,tps_min=5")
	require.NoError(t, err)
	assert.Equal(t, []SLO{
		{Name: "itl_p99", Metric: "itl", Stat: "p99", Limit: 150},
		{Name: "tps_min", Metric: "tps", Stat: "min", Limit: 5},
		{Name: "ttft_p99", Metric: "ttft", Stat: "p99", Limit: 500},
	}, got)

	gpu, err := ParseSLOs("opennebula-gpu")
	require.NoError(t, err)
	assert.Equal(t, []SLO{
		{Name: "itl_p99", Metric: "itl", Stat: "p99", Limit: 150},
		{Name: "ttft_p99", Metric: "ttft", Stat: "p99", Limit: 500},
	}, gpu, "OpenNebula's code-generation targets")

	cpu, err := ParseSLOs("cpu,ttft_p99=20s")
	require.NoError(t, err)
	names := map[string]float64{}
	for _, o := range cpu {
		names[o.Name] = o.Limit
	}
	assert.Equal(t, map[string]float64{"ttft_p99": 20000, "itl_p99": 2000, "tpot_p99": 1000, "tps_min": 1}, names, "a later pair overrides the preset")

	none, err := ParseSLOs("")
	require.NoError(t, err)
	assert.Empty(t, none)

	for _, bad := range []string{"ttft", "ttft_p99=500", "ttft_p99=-1s", "ttft_p42=1s", "tps_p99=3", "tps_min=fast", "tps_min=0", "speed_p50=1s", "gpu"} {
		_, err := ParseSLOs(bad)
		assert.Error(t, err, bad)
	}
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	slos, err := ParseSLOs("ttft_p99=449ms,itl_p99=300ms,tps_min=4,e2e_max=1s")
	require.NoError(t, err)
	sum := Summarize(twoSamples(), slos)
	got := map[string]Verdict{}
	for _, v := range Evaluate(sum, slos) {
		got[v.SLO] = v
	}
	// TTFT p99 448 ms ≤ 449; ITL p99 295.5 ≤ 300; tps min 3/0.65 = 4.6 ≥ 4; E2E max 850 ≤ 1000.
	for _, name := range []string{"ttft_p99", "itl_p99", "tps_min", "e2e_max"} {
		assert.True(t, got[name].Pass, got[name].Message)
		assert.True(t, got[name].Measured)
	}
	assert.InDelta(t, 448, got["ttft_p99"].Observed, 1e-9)
	assert.Equal(t, "ttft_p99 = 448 ms, target ≤ 449 ms (2 values): met", got["ttft_p99"].Message)

	strict, err := ParseSLOs("opennebula-gpu,tps_mean=6")
	require.NoError(t, err)
	for _, v := range Evaluate(sum, strict) {
		switch v.SLO {
		case "itl_p99":
			assert.False(t, v.Pass, "ITL p99 295.5 ms > 150 ms")
		case "ttft_p99":
			assert.True(t, v.Pass, "448 ms ≤ 500 ms")
		case "tps_mean":
			assert.False(t, v.Pass, "mean 5.25 tok/s < 6")
			assert.Contains(t, v.Message, "5.25 tok/s, target ≥ 6.0 tok/s")
		}
	}

	// Nothing measured: the gate fails and says why.
	noUsage := Summarize([]Sample{Measure("x", t0, synthetic()[:5])}, nil)
	vs := Evaluate(noUsage, []SLO{{Name: "tps_min", Metric: "tps", Stat: "min", Limit: 1}})
	require.Len(t, vs, 1)
	assert.False(t, vs[0].Pass)
	assert.False(t, vs[0].Measured)
	assert.Contains(t, vs[0].Message, "include_usage")
}

func TestSLOMetBy(t *testing.T) {
	t.Parallel()
	s := Measure("a", t0, synthetic()) // TTFT 250, ITL 150/0/300, TPOT 150, E2E 850, 5.88 tok/s
	for _, tc := range []struct {
		spec string
		met  bool
	}{
		{"ttft_p99=250ms", true}, {"ttft_p99=249ms", false},
		{"itl_max=300ms", true}, {"itl_max=299ms", false}, {"itl_mean=150ms", true},
		{"tpot_p99=150ms", true}, {"tpot_p50=149ms", false},
		{"e2e_p99=850ms", true}, {"tps_min=5.8", true}, {"tps_min=6", false},
	} {
		slos, err := ParseSLOs(tc.spec)
		require.NoError(t, err)
		assert.Equal(t, tc.met, slos[0].MetBy(s), tc.spec)
	}
	noUsage := Measure("b", t0, synthetic()[:5])
	tpot, _ := ParseSLOs("tpot_p99=1s,tps_min=0.1")
	for _, o := range tpot {
		assert.False(t, o.MetBy(noUsage), "%s cannot be shown without usage", o.Name)
	}
}

func TestCompare(t *testing.T) {
	t.Parallel()
	base := Summarize(twoSamples(), nil)
	assert.Empty(t, Compare(base, base, 0.2), "a run against itself")

	// Slower by 30 %: every latency and rate regresses beyond 20 %, not beyond 40 %.
	slow := twoSamples()
	for i := range slow {
		slow[i] = scale(slow[i], 1.3)
	}
	cur := Summarize(slow, nil)
	regs := Compare(base, cur, 0.2)
	metrics := map[string]Regression{}
	for _, r := range regs {
		metrics[r.Metric] = r
	}
	assert.Contains(t, metrics, "ttft_p99")
	assert.Contains(t, metrics, "e2e_mean")
	assert.Contains(t, metrics, "tps_mean")
	assert.InDelta(t, 0.3, metrics["ttft_p99"].Change, 1e-6)
	assert.Contains(t, metrics["ttft_p99"].Message, "ttft_p99: 582 ms, baseline 448 ms (+30% worse, tolerance 20%)")
	floor := Summary{ITL: Distribution{Count: 3, Mean: 2, P50: 2, P90: 2, P99: 2}}
	worse := Summary{ITL: Distribution{Count: 3, Mean: 3, P50: 3, P90: 3, P99: 3}}
	assert.Empty(t, Compare(floor, worse, 0.2), "2 ms to 3 ms is +50 %% and under the noise floor")
	assert.Empty(t, Compare(base, cur, 0.4))

	// A metric that disappeared, and more failures.
	lost := Summarize(twoSamples()[2:], nil)
	regs = Compare(base, lost, 0.2)
	names := []string{}
	for _, r := range regs {
		names = append(names, r.Metric)
	}
	assert.Contains(t, names, "ttft_p50")
	assert.NotContains(t, names, "failed_requests", "same failures as the baseline")

	tol, err := ParseTolerance("20%")
	require.NoError(t, err)
	assert.InDelta(t, 0.2, tol, 1e-12)
	tol, err = ParseTolerance("0.15")
	require.NoError(t, err)
	assert.InDelta(t, 0.15, tol, 1e-12)
	_, err = ParseTolerance("lots")
	assert.Error(t, err)
}

// scale stretches a sample's times by f (tokens unchanged).
func scale(s Sample, f float64) Sample {
	st := func(d time.Duration) time.Duration { return time.Duration(float64(d) * f) }
	s.TTFT, s.E2E, s.TPOT = st(s.TTFT), st(s.E2E), st(s.TPOT)
	itls := make([]time.Duration, len(s.ITLs))
	for i, d := range s.ITLs {
		itls[i] = st(d)
	}
	s.ITLs = itls
	if s.E2E > 0 {
		s.OutputTokensPerSecond = float64(s.OutputTokens) / s.E2E.Seconds()
	}
	return s
}
