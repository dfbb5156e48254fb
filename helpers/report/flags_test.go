package report

import (
	"flag"
	"io"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFlags(t *testing.T) {
	t.Parallel()
	dir, _ := written(t, fixture(t, canary))
	fs := flag.NewFlagSet("suite", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"-slo", "cpu,ttft_p99=20s", "-baseline", filepath.Join(dir, ResultsFile), "-baseline-tolerance", "10%"}))
	require.NoError(t, f.Check())
	rec := NewRecorder(Run{}, nil)
	require.NoError(t, f.Apply(rec))
	res, err := rec.Results()
	require.NoError(t, err)
	assert.Equal(t, "cpu,ttft_p99=20s", res.Metrics.SLOSpec)
	assert.InDelta(t, 0.1, res.Metrics.Baseline.Tolerance, 1e-12)
	assert.Equal(t, filepath.Join("certification", "20250601T120000Z"), f.ReportDir(t0))

	for _, args := range [][]string{{"-slo", "ttft_p99=fast"}, {"-baseline-tolerance", "much"}, {"-baseline", filepath.Join(dir, "nope.json")}} {
		fs := flag.NewFlagSet("suite", flag.ContinueOnError)
		f := RegisterFlags(fs)
		require.NoError(t, fs.Parse(args))
		assert.Error(t, f.Check(), "%v", args)
	}
	fs = flag.NewFlagSet("suite", flag.ContinueOnError)
	f = RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"-report", "/tmp/x"}))
	assert.Equal(t, "/tmp/x", f.ReportDir(t0))
}
