package faults

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
)

// TestSuiteTimeoutSized: certifying a real instance with go test's default -timeout (10m)
// is refused before any check with the -timeout it needs, as make certify computes it
// (go test would otherwise panic in the middle of a slow CPU appliance's certification);
// a sized -timeout is accepted (the run goes on to its preflight).
func TestSuiteTimeoutSized(t *testing.T) {
	t.Parallel()
	password := canaryPassword(t)
	suite := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", append([]string{"test", "./acceptance", "-count=1", "-v",
			"-endpoint", "https://" + closedAddress(t), "-password", password}, args...)...)
		cmd.Dir = moduleRoot(t)
		out, err := cmd.CombinedOutput()
		assert.NotContains(t, string(out), password, "the suite printed the password")
		return string(out), err
	}
	out, err := suite()
	require.Error(t, err, "a 10m -timeout was accepted for up to %d model calls of 5m:\n%s", copilot.ModelCalls, out)
	assert.Contains(t, out, "rerun with -timeout "+copilot.SuiteTimeout(5*time.Minute).String())
	assert.NotContains(t, out, "=== RUN", "checks ran before the -timeout was judged")

	// A sized -timeout passes on to the preflight (which finds nothing listening).
	out, _ = suite("-request-timeout", "1s", "-timeout", copilot.SuiteTimeout(time.Second).String())
	assert.NotContains(t, out, "rerun with -timeout", "a sized -timeout was refused")
	assert.Contains(t, out, "preflight: nothing listens on")
}
