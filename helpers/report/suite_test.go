package report

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSuiteEndToEnd runs testdata/suite, a suite using this package as the acceptance
// suite does, with go test in its three output shapes, and reads the report it wrote:
// the verdicts come from Track and go test's own lines, the messages from the captured
// output, in every shape alike; no form of the canary reaches a file.
func TestSuiteEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs a test binary")
	}
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the go command runs the fixture suite")
	for _, mode := range []struct {
		name string
		args []string
	}{{"plain", nil}, {"verbose", []string{"-v"}}, {"json", []string{"-json"}}} {
		dir := filepath.Join(t.TempDir(), "report")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, goBin, append([]string{"test", "./testdata/suite", "-count=1"}, mode.args...)...)
		cmd.Env = append(os.Environ(), "REPORT_SUITE_DIR="+dir, "REPORT_SUITE_CANARY="+canary)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		cancel()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "%s: the fixture suite fails on purpose:\n%s", mode.name, out.String())
		require.FileExists(t, filepath.Join(dir, ResultsFile), "%s:\n%s", mode.name, out.String())

		res, err := ReadResults(filepath.Join(dir, ResultsFile))
		require.NoError(t, err)
		got := map[string]Check{}
		for _, c := range res.Checks {
			got[c.ID] = c
		}
		assert.ElementsMatch(t, []string{
			"TestAuthentication/none", "TestAuthentication/wrong_basic", "TestAuthentication/right_basic",
			"TestCertificate/chain", "TestCertificate/validity", "TestOwnFailure", "TestOwnFailure/fine",
			"TestChatStream", "SLO/ttft_p99", "Suite/model_calls",
		}, keys(got), mode.name)
		for id, v := range map[string]Verdict{
			"TestAuthentication/none": Pass, "TestAuthentication/wrong_basic": Fail, "TestCertificate/chain": Skip,
			"TestCertificate/validity": Pass, "TestOwnFailure": Fail, "TestOwnFailure/fine": Pass, "TestChatStream": Pass,
			"SLO/ttft_p99": Pass,
		} {
			assert.Equal(t, v, got[id].Verdict, "%s: %s", mode.name, id)
		}
		wrong := got["TestAuthentication/wrong_basic"]
		assert.Contains(t, wrong.Message, "suite_test.go:70: admitted with the wrong password "+Redacted+"\nsecond line of the message", mode.name)
		assert.Contains(t, got["TestOwnFailure"].Message, "the parent's own check failed", mode.name)
		assert.NotContains(t, got["TestOwnFailure"].Message, "parent log line", mode.name)
		require.NotEmpty(t, wrong.Evidence, mode.name)
		assert.Equal(t, "Basic "+Withheld, wrong.Evidence[0].RequestHeaders["Authorization"])
		if mode.name != "plain" {
			// Plain go test prints nothing of passing and skipped tests.
			assert.Contains(t, got["TestCertificate/chain"].Message, "self-signed and no -ca-cert", mode.name)
			assert.Contains(t, got["TestChatStream"].Message, "output events", mode.name)
		}
		require.NotNil(t, res.Metrics, mode.name)
		require.Len(t, res.Metrics.Samples, 1)
		s := res.Metrics.Samples[0]
		assert.Equal(t, 5, s.OutputTokens)
		assert.InDelta(t, 200, ms(s.TTFT), 150, "%s: TTFT %s, paced 200 ms", mode.name, s.TTFT)
		assert.Len(t, got["TestChatStream"].Evidence[0].Timeline, 7)
		assert.Contains(t, out.String(), "SLM-Copilot certification: FAIL", "%s: the terminal summary", mode.name)

		for _, name := range []string{ResultsFile, JUnitFile, MarkdownFile, HTMLFile} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			require.NoError(t, err)
			for what, f := range forms(canary, "copilot") {
				assert.False(t, strings.Contains(string(b), f), "%s: %s holds the canary %s", mode.name, name, what)
			}
		}
	}
}
