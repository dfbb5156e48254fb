package faults

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

// moduleRoot is where `go test ./acceptance` is run from.
func moduleRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	require.True(t, ok, "cannot locate the module root")
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// canaryPassword is recognisable in any output, so a leak cannot go unnoticed.
func canaryPassword(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "canary-" + hex.EncodeToString(b)
}

// startInstance starts a reference appliance that is stopped when the test ends.
func startInstance(t *testing.T, opts reference.Options) *reference.Instance {
	t.Helper()
	if opts.Password == "" {
		opts.Password = canaryPassword(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in, err := reference.Start(ctx, opts)
	require.NoError(t, err, "start the reference appliance")
	t.Cleanup(func() { in.Close() })
	return in
}

// suiteRequestTimeout bounds each request of a suite run against a reference instance,
// which answers in seconds.
const suiteRequestTimeout = time.Minute

// suiteRun is the outcome of one acceptance suite run, per test name.
type suiteRun struct {
	results  map[string][]string // test name -> actions (pass/fail/skip), one per run
	output   map[string]string   // test name -> its output
	all      string              // everything the run printed
	exitCode int                 // go test's: non-zero after passing checks when TestMain failed the run
}

// runSuite runs the acceptance suite against in, as a user would.
func runSuite(t *testing.T, in *reference.Instance, extra ...string) *suiteRun {
	t.Helper()
	args := append([]string{"test", "./acceptance", "-count=1", "-json",
		"-timeout", copilot.SuiteTimeout(suiteRequestTimeout).String(), "-request-timeout", suiteRequestTimeout.String(),
		"-endpoint", in.Endpoint, "-http-endpoint", in.HTTPEndpoint, "-password", in.Password}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = moduleRoot(t)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("go test ./acceptance did not run: %v\n%s", err, stderr.String())
	}
	run := &suiteRun{results: map[string][]string{}, output: map[string]string{}, all: stdout.String() + stderr.String(), exitCode: cmd.ProcessState.ExitCode()}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev struct{ Action, Test, Output string }
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Test == "" {
			continue
		}
		switch ev.Action {
		case "pass", "fail", "skip":
			run.results[ev.Test] = append(run.results[ev.Test], ev.Action)
		case "output":
			run.output[ev.Test] += ev.Output
		}
	}
	require.NotEmpty(t, run.results, "the acceptance suite reported no test results:\n%s", run.all)
	assertNoSecret(t, run.all, in)
	return run
}

// assertNoSecret fails if any form of the password appears in the suite's output.
func assertNoSecret(t *testing.T, output string, in *reference.Instance) {
	t.Helper()
	for _, form := range []string{
		in.Password,
		base64.StdEncoding.EncodeToString([]byte(in.Username + ":" + in.Password)),
		base64.StdEncoding.EncodeToString([]byte(in.Password)),
	} {
		assert.NotContains(t, output, form, "the acceptance suite printed the password (or an encoding of it)")
	}
}

// passedEveryTime asserts every test in run passed each time it ran.
func passedEveryTime(t *testing.T, run *suiteRun, times int) {
	t.Helper()
	for name, actions := range run.results {
		assert.Len(t, actions, times, "%s ran %d times, want %d", name, len(actions), times)
		for _, a := range actions {
			if !assert.Equal(t, "pass", a, "%s: %s against a correct appliance\n%s", name, a, run.output[name]) {
				break
			}
		}
	}
}

// isWithin tells whether test is name or one of its subtests.
func isWithin(test, name string) bool {
	return test == name || strings.HasPrefix(test, name+"/")
}

// isAncestor tells whether test is a parent of name.
func isAncestor(test, name string) bool {
	return strings.HasPrefix(name, test+"/")
}
