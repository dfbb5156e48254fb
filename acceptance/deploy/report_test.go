package deploy

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/fixtures/oned/simulator"
	"github.com/slm-copilot/slm-copilot/helpers/report"
)

// TestReport: a deploy-mode run with -report names oned and the objects it created (and
// what became of them), records the deploy, the teardown and -one.reconfigure as checks,
// and no file holds a password the run generated: neither the first boot's nor, after
// -one.reconfigure, the new one. A deploy that fails still writes its report.
func TestReport(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		opts   simulator.Options
		args   []string
		code   int
		checks map[string]report.Verdict
		boots  int
	}{
		{name: "certified", args: []string{"-test.run=TestHealthEndpoints|TestChatStream", "-one.context=ONEAPP_COPILOT_CONTEXT_SIZE=16384"},
			checks: map[string]report.Verdict{"Deploy/deploy": report.Pass, "Deploy/teardown": report.Pass, "TestChatStream/incremental": report.Pass, "TestHealthEndpoints/GET_readyz": report.Pass},
			boots:  1},
		{name: "reconfigured", args: []string{"-test.run=TestModelListed", "-one.reconfigure"},
			checks: map[string]report.Verdict{"Deploy/deploy": report.Pass, "Deploy/reconfigure": report.Pass, "Deploy/teardown": report.Pass, "TestModelListed": report.Pass},
			boots:  2},
		{name: "never_ready", opts: simulator.Options{Faults: simulator.Faults{NeverReady: true}}, args: []string{"-one.ready-timeout=3s"}, code: 2,
			checks: map[string]report.Verdict{"Deploy/deploy": report.Fail, "Deploy/teardown": report.Pass},
			boots:  1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startSim(t, tt.opts)
			dir := filepath.Join(t.TempDir(), "report")
			r := runSuite(t, deployArgs(t, s, append(tt.args, "-report="+dir)...)...)
			require.Equal(t, tt.code, r.code, r.output)
			assertNothingLeft(t, s)
			assertNoPassword(t, s, r.output)
			s.mu.Lock()
			passwords := append([]string(nil), s.passwords...)
			s.mu.Unlock()
			require.Len(t, passwords, tt.boots, "the guest's boots, each with its password")
			for _, pw := range passwords {
				assertNotInReport(t, dir, pw)
			}

			res, err := report.ReadResults(filepath.Join(dir, report.ResultsFile))
			require.NoError(t, err, r.output)
			assert.Equal(t, report.ModeDeploy, res.Run.Mode)
			got := map[string]report.Verdict{}
			for _, c := range res.Checks {
				got[c.ID] = c.Verdict
			}
			for id, v := range tt.checks {
				assert.Equal(t, v, got[id], "%s", id)
			}
			require.NotNil(t, res.Run.OpenNebula, "deploy mode names oned and its objects")
			assert.Equal(t, s.Endpoint(), res.Run.OpenNebula.Endpoint)
			kinds := map[string]report.Object{}
			for _, o := range res.Run.OpenNebula.Objects {
				kinds[o.Kind] = o
				assert.Contains(t, o.Note, "removed at teardown", "%s %d", o.Kind, o.ID)
			}
			for _, kind := range []string{"image", "template", "vm"} {
				if assert.Contains(t, kinds, kind) {
					assert.GreaterOrEqual(t, kinds[kind].ID, 0, kind)
					assert.Contains(t, kinds[kind].Name, "slm-copilot-acc-", kind)
				}
			}
		})
	}
}

// assertNotInReport fails if a report file holds password, plain or base64 (alone, or
// with the appliance's user as HTTP Basic sends it).
func assertNotInReport(t *testing.T, dir, password string) {
	t.Helper()
	forms := map[string]string{
		"plain":          password,
		"base64":         base64.StdEncoding.EncodeToString([]byte(password)),
		"base64 (Basic)": base64.StdEncoding.EncodeToString([]byte("copilot:" + password)),
	}
	for _, name := range []string{report.ResultsFile, report.JUnitFile, report.MarkdownFile, report.HTMLFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		for what, form := range forms {
			assert.False(t, bytes.Contains(b, []byte(form)), "%s holds a generated password (%s)", name, what)
		}
	}
}
