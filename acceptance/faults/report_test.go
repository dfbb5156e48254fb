package faults

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
	"github.com/slm-copilot/slm-copilot/helpers/reference"
	"github.com/slm-copilot/slm-copilot/helpers/report"
)

// reportChecks are the checks a report run runs: every area that records evidence, and
// every kind of stream (TestChatStream, Cline's task, its two at once and its idle one,
// the tool call and its follow-up), without Cline's minute of context-window prefill.
var reportChecks = []string{"-run", "^(TestTLSVersions|TestCertificate|TestAuthentication|TestHealthEndpoints|TestModelListed|TestChatStream|TestClineRequest|TestClineToolCall)$",
	"-skip", clineContextWindow}

// TestReport runs the suite with -report against a correct appliance whose password is a
// canary, as go test -json runs it, and reads the four files: the run's metadata as the
// instance presents itself, a check for every leaf go test printed with the same verdict,
// JUnit with a test case per check, event timelines and TTFT samples for the streams, and
// no form of the password anywhere.
func TestReport(t *testing.T) {
	t.Parallel()
	in := startInstance(t, reference.Options{})
	dir := filepath.Join(t.TempDir(), "report")
	run := runSuite(t, in, append([]string{"-report", dir}, reportChecks...)...)
	require.Zero(t, run.exitCode, "a correct appliance passes:\n%s", run.all)
	assert.Contains(t, run.all, "SLM-Copilot certification: PASS", "the terminal summary")
	assert.Contains(t, run.all, "Report: "+filepath.Join(dir, report.HTMLFile), "the summary says where the report is")

	for _, name := range []string{report.ResultsFile, report.JUnitFile, report.MarkdownFile, report.HTMLFile} {
		require.FileExists(t, filepath.Join(dir, name))
	}
	assertNoSecretInDir(t, dir, in.Username, in.Password)

	res, err := report.ReadResults(filepath.Join(dir, report.ResultsFile))
	require.NoError(t, err)
	assert.Equal(t, report.SchemaVersion, res.SchemaVersion)
	assert.Equal(t, report.Pass, res.Verdict)
	r := res.Run
	assert.Equal(t, report.ModeEndpoint, r.Mode)
	assert.Equal(t, in.Endpoint, r.Endpoint)
	assert.Equal(t, in.Model, r.Model)
	assert.NotEmpty(t, r.SuiteCommit, "the suite's commit")
	assert.False(t, r.End.Before(r.Start), "start %s, end %s", r.Start, r.End)
	assert.Equal(t, []string{"TLS 1.2", "TLS 1.3"}, r.TLSVersions, "the versions the reference accepts")
	if assert.NotNil(t, r.Certificate, "the certificate") {
		assert.Equal(t, certFingerprint(t, in.CACert), r.Certificate.SHA256)
		assert.True(t, r.Certificate.SelfSigned)
		assert.Contains(t, r.Certificate.SANs, "127.0.0.1")
	}
	assert.Equal(t, "llama-server", r.Engine, "llama-server names its build in GET /props, behind the front door's authentication")
	assert.NotEmpty(t, r.EngineVersion)
	for _, s := range r.Settings {
		assert.NotEqual(t, "-password", s.Name, "the password is no setting to show")
	}

	checks := map[string]report.Check{}
	for _, c := range res.Checks {
		checks[c.ID] = c
	}
	verdicts := map[string]report.Verdict{"pass": report.Pass, "fail": report.Fail, "skip": report.Skip}
	leaves := 0
	for name, actions := range run.results {
		if isParent(run, name) {
			continue
		}
		leaves++
		c, ok := checks[name]
		if assert.True(t, ok, "go test printed %s, the report has no check for it", name) {
			assert.Equal(t, verdicts[actions[0]], c.Verdict, "%s: go test said %s", name, actions[0])
			assert.Equal(t, report.AreaOf(name), c.Area)
		}
	}
	for _, id := range []string{"Suite/preflight", "Suite/model_calls"} {
		assert.Equal(t, report.Pass, checks[id].Verdict, "%s: %s", id, checks[id].Message)
	}
	assert.Len(t, res.Checks, leaves+2, "one check per leaf go test printed, and the suite's own two")
	assert.Contains(t, checks["TestCertificate/chain"].Message, "self-signed", "a skip says why")
	assert.NotEmpty(t, checks["TestAuthentication/GET_v1_models/right_bearer"].Evidence, "send records the exchange")
	for _, ev := range checks["TestAuthentication/GET_v1_models/right_bearer"].Evidence {
		assert.Equal(t, "Bearer "+report.Withheld, ev.RequestHeaders["Authorization"])
	}

	assertJUnit(t, filepath.Join(dir, report.JUnitFile), len(res.Checks))

	// Streams: a timeline in the evidence, a sample with its TTFT in the metrics.
	for _, id := range []string{"TestChatStream/done_terminator", "TestClineRequest/task", "TestClineToolCall/tool_call_streamed"} {
		assert.True(t, hasTimeline(checks[id]), "%s: no event timeline in its evidence", id)
	}
	require.NotNil(t, res.Metrics, "the streams were measured")
	sampled := map[string]int{}
	for _, s := range res.Metrics.Samples {
		sampled[s.Name]++
		if assert.True(t, s.OK(), "%s: %s", s.Name, s.Error) {
			assert.Positive(t, s.TTFT, "%s: TTFT", s.Name)
			assert.NotEmpty(t, s.Events, "%s: timeline", s.Name)
		}
	}
	for _, name := range []string{"TestChatStream", "TestClineRequest", "TestClineRequest/concurrency/two_streams_at_once",
		"TestClineRequest/concurrency/abandoned_stream_frees_engine", "TestClineToolCall", "TestClineToolCall/tool_result_accepted"} {
		assert.Positive(t, sampled[name], "%s: no metric sample (samples: %v)", name, sampled)
	}
	assert.Equal(t, 2, sampled["TestClineRequest/concurrency/two_streams_at_once"], "both streams at once")
	assert.Equal(t, 1, sampled["TestClineRequest/concurrency/abandoned_stream_frees_engine"], "the idle stream only: the abandoned ones are evidence")
	assert.Equal(t, len(res.Metrics.Samples), res.Metrics.Summary.TTFT.Count, "every sample's TTFT is in the summary")
}

// TestReportRuns: a plain go test run (no -v) still reports its passing checks, since a
// report turns -v on; a run ended by the preflight still writes a report, with the
// preflight's failure as its one check. Neither holds the password, given or real.
func TestReportRuns(t *testing.T) {
	t.Parallel()
	in := startInstance(t, reference.Options{})
	wrong := canaryPassword(t)
	tests := []struct {
		name     string
		password string
		args     []string
		verdict  report.Verdict
		checks   map[string]report.Verdict
		message  map[string]string
	}{
		{name: "plain", password: in.Password, args: []string{"-run", "^(TestHealthEndpoints|TestTLSVersions)$"}, verdict: report.Pass,
			checks: map[string]report.Verdict{
				"TestHealthEndpoints/GET_readyz": report.Pass, "TestHealthEndpoints/GET_health": report.Pass,
				"TestTLSVersions/TLS1.0_refused": report.Pass, "TestTLSVersions/TLS1.1_refused": report.Pass,
				"TestTLSVersions/TLS1.2_accepted": report.Pass, "TestTLSVersions/TLS1.3_accepted": report.Pass,
				"Suite/preflight": report.Pass, "Suite/model_calls": report.Pass,
			}},
		{name: "preflight_failure", password: wrong, verdict: report.Fail,
			checks:  map[string]report.Verdict{"Suite/preflight": report.Fail},
			message: map[string]string{"Suite/preflight": "refuses the password with both Bearer and Basic"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "report")
			out, code := goTestPlain(t, in, tt.password, append([]string{"-report", dir}, tt.args...)...)
			assertNoSecret(t, out, in)
			assert.NotContains(t, out, wrong, "the suite printed the password it was given")
			assert.Equal(t, tt.verdict == report.Fail, code != 0, "exit code %d:\n%s", code, out)
			require.FileExists(t, filepath.Join(dir, report.ResultsFile), out)
			assertNoSecretInDir(t, dir, in.Username, in.Password)
			assertNoSecretInDir(t, dir, in.Username, wrong)
			res, err := report.ReadResults(filepath.Join(dir, report.ResultsFile))
			require.NoError(t, err)
			assert.Equal(t, tt.verdict, res.Verdict)
			got := map[string]report.Verdict{}
			for _, c := range res.Checks {
				got[c.ID] = c.Verdict
				assert.NotContains(t, c.Message, "no verdict recorded", c.ID)
				if want, ok := tt.message[c.ID]; ok {
					assert.Contains(t, c.Message, want, c.ID)
				}
			}
			assert.Equal(t, tt.checks, got)
			if code != 0 { // go test shows a package's output only when it fails (or under -v)
				assert.Contains(t, out, "SLM-Copilot certification: "+string(tt.verdict), "the terminal summary")
			}
		})
	}
}

// goTestPlain runs go test ./acceptance against in without -v or -json, as a user might,
// with password; it returns everything printed and the exit code.
func goTestPlain(t *testing.T, in *reference.Instance, password string, extra ...string) (string, int) {
	t.Helper()
	args := append([]string{"test", "./acceptance", "-count=1",
		"-timeout", copilot.SuiteTimeout(suiteRequestTimeout).String(), "-request-timeout", suiteRequestTimeout.String(),
		"-endpoint", in.Endpoint, "-http-endpoint", in.HTTPEndpoint, "-password", password}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = moduleRoot(t)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("go test ./acceptance did not run: %v\n%s", err, out.String())
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// isParent tells whether the run printed a subtest of name.
func isParent(run *suiteRun, name string) bool {
	for other := range run.results {
		if isAncestor(name, other) {
			return true
		}
	}
	return false
}

func hasTimeline(c report.Check) bool {
	for _, ev := range c.Evidence {
		if len(ev.Timeline) > 0 {
			return true
		}
	}
	return false
}

// certFingerprint is the SHA-256 of the PEM certificate at path, as the report spells it.
func certFingerprint(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	block, _ := pem.Decode(b)
	require.NotNil(t, block, "no PEM in %s", path)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	sum := sha256.Sum256(cert.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02x", b)
	}
	return strings.Join(parts, ":")
}

// assertJUnit parses junit.xml as a CI reporter would: one test case per check.
func assertJUnit(t *testing.T, path string, checks int) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc struct {
		Tests  int `xml:"tests,attr"`
		Suites []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name string `xml:"name,attr"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	require.NoError(t, xml.Unmarshal(raw, &doc), "junit.xml does not parse")
	cases := 0
	for _, s := range doc.Suites {
		assert.NotEmpty(t, s.Name)
		cases += len(s.Cases)
	}
	assert.Equal(t, checks, cases, "test cases in junit.xml")
	assert.Equal(t, checks, doc.Tests, "junit.xml's tests attribute")
}

// assertNoSecretInDir fails if any file under dir holds password in any form a report
// could carry it: plain, base64, base64 with its user (HTTP Basic).
func assertNoSecretInDir(t *testing.T, dir, user, password string) {
	t.Helper()
	forms := map[string]string{"plain": password}
	for name, enc := range map[string]*base64.Encoding{"base64": base64.StdEncoding, "base64 unpadded": base64.RawStdEncoding, "base64url": base64.URLEncoding} {
		forms[name] = enc.EncodeToString([]byte(password))
		forms[name+" of user:password"] = enc.EncodeToString([]byte(user + ":" + password))
	}
	files := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for what, form := range forms {
			assert.False(t, bytes.Contains(b, []byte(form)), "%s holds the password (%s)", filepath.Base(path), what)
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 4, files, "the report's four files")
}

// TestStoppedRunLeavesReport: a run ended early, by Ctrl-C or by go test's -timeout
// coming near, still writes its report: the checks that ended keep their verdicts, and no
// file holds the password. Ctrl-C: the checks cut short say so and a failed
// Suite/interrupted says why. The -timeout: requests stop before it, so the check running
// then fails saying so, and go test never panics. That run uses the embedded reference,
// started with a canary password.
func TestStoppedRunLeavesReport(t *testing.T) {
	t.Parallel()
	suite := buildSuite(t)
	// TestClineRequest's context-window check prefills for most of a minute: the run is
	// stopped inside it.
	checks := []string{"-test.v", "-test.run", "^TestClineRequest$", "-request-timeout", suiteRequestTimeout.String()}
	t.Run("interrupt", func(t *testing.T) {
		t.Parallel()
		in := startInstance(t, reference.Options{})
		dir := filepath.Join(t.TempDir(), "report")
		out, code := runUntil(t, exec.Command(suite, append(checks, "-test.timeout", copilot.SuiteTimeout(suiteRequestTimeout).String(),
			"-endpoint", in.Endpoint, "-http-endpoint", in.HTTPEndpoint, "-password", in.Password, "-report", dir)...),
			"=== RUN   TestClineRequest/context_window")
		assert.Equal(t, 130, code, "a run stopped by Ctrl-C exits 130:\n%s", out)
		res := assertStoppedReport(t, dir, out, in.Username, in.Password)
		assert.Equal(t, report.ModeEndpoint, res.Run.Mode)
		why := "interrupt: the run was stopped before its end"
		var cut []string
		for _, c := range res.Checks {
			if strings.Contains(c.Message, "not finished: "+why) {
				assert.Equal(t, report.Skip, c.Verdict, c.ID)
				cut = append(cut, c.ID)
			}
			if c.ID == report.InterruptedID {
				assert.Equal(t, report.Fail, c.Verdict)
				assert.Contains(t, c.Message, why)
			}
		}
		assert.NotEmpty(t, cut, "no check says it was cut short (the context-window check was running)")
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		password := canaryPassword(t)
		dir := filepath.Join(t.TempDir(), "report")
		const timeout = 45 * time.Second
		out, code := runUntil(t, exec.Command(suite, append(checks, "-test.timeout", timeout.String(), "-password", password, "-report", dir)...), "")
		assert.Equal(t, 1, code, "a run stopped before its -timeout exits 1:\n%s", out)
		assert.NotContains(t, out, "panic: test timed out", "the run must end before go test's own timeout panics")
		res := assertStoppedReport(t, dir, out, reference.Username, password)
		assert.Equal(t, report.ModeEmbedded, res.Run.Mode)
		var said []string
		for _, c := range res.Checks {
			if c.Verdict != report.Pass && strings.Contains(c.Message, "-timeout") {
				said = append(said, c.ID)
			}
		}
		assert.NotEmpty(t, said, "no check says the -timeout stopped it")
	})
}

// runUntil runs the compiled suite cmd until it ends; once its output has a line starting
// with signalAt (when not empty), it sends it SIGINT, as Ctrl-C does. It returns the output
// and the exit code.
func runUntil(t *testing.T, cmd *exec.Cmd, signalAt string) (string, int) {
	t.Helper()
	cmd.Dir = filepath.Join(moduleRoot(t), "acceptance")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	require.NoError(t, cmd.Start())
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait(); pw.Close() }()
	var out strings.Builder
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	signalled := false
	deadline := time.AfterFunc(5*time.Minute, func() { _ = cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if signalAt != "" && !signalled && strings.HasPrefix(sc.Text(), signalAt) {
			require.NoError(t, cmd.Process.Signal(os.Interrupt))
			signalled = true
		}
	}
	err := <-waited
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("the suite did not run: %v\n%s", err, out.String())
	}
	if signalAt != "" {
		require.True(t, signalled, "the run never printed %q:\n%s", signalAt, out.String())
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// assertStoppedReport checks what the report of any run stopped early holds: the checks
// that ended before the stop keep their verdicts, the run fails, and neither the output
// nor any file holds the password.
func assertStoppedReport(t *testing.T, dir, out, user, password string) *report.Results {
	t.Helper()
	assert.NotContains(t, out, password, "the suite printed the password")
	require.FileExists(t, filepath.Join(dir, report.ResultsFile), out)
	assertNoSecretInDir(t, dir, user, password)
	res, err := report.ReadResults(filepath.Join(dir, report.ResultsFile))
	require.NoError(t, err)
	assert.Equal(t, report.Fail, res.Verdict)
	for _, c := range res.Checks {
		if c.ID == "TestClineRequest/model_list_refresh" {
			assert.Equal(t, report.Pass, c.Verdict, "a check that ended before the stop keeps its verdict: %s\n%s", c.Message, out)
		}
	}
	assert.Contains(t, out, "SLM-Copilot certification: FAIL", "the terminal summary")
	return res
}
