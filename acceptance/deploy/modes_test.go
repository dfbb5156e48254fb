package deploy

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/fixtures/oned/simulator"
)

// waitForVM waits until the simulator's VM is in state.
func waitForVM(t *testing.T, s *sim, r *suite, state string) {
	t.Helper()
	require.Eventually(t, func() bool { return s.HasVM(state) },
		2*time.Minute, 50*time.Millisecond, "the VM never reached %s:\n%s", state, r.out.String())
}

// Ctrl-C during a long PROLOG (a large image copy): oned refuses terminate-hard there, so
// teardown waits for a state that takes it, then removes everything.
func TestInterruptDuringProlog(t *testing.T) {
	t.Parallel()
	s := startSim(t, simulator.Options{PrologTime: 15 * time.Second})
	began := time.Now()
	r := startSuite(t, deployArgs(t, s)...)
	waitForVM(t, s, r, "ACTIVE/PROLOG")
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGINT))
	r.wait(t)
	assert.Equal(t, 130, r.code, r.output)
	assert.Contains(t, r.output, "interrupted; tearing down")
	assert.NotContains(t, r.output, "terminate-hard VM 0 (ACTIVE/PROLOG)", "not sent where oned refuses it")
	assert.Contains(t, r.output, "teardown complete")
	assertNothingLeft(t, s)
	t.Logf("slow PROLOG interrupted: nothing left after %s", time.Since(began).Round(time.Second))
}

// The test -timeout arriving during a long PROLOG tears down before go test kills the binary.
func TestTimeoutDuringProlog(t *testing.T) {
	t.Parallel()
	s := startSim(t, simulator.Options{PrologTime: 25 * time.Second})
	began := time.Now()
	r := runSuite(t, deployArgs(t, s, "-test.timeout=60s")...)
	assert.Equal(t, 2, r.code, r.output)
	assert.Contains(t, r.output, "the test -timeout is near")
	assert.Contains(t, r.output, "teardown complete")
	assert.NotContains(t, r.output, "panic: test timed out")
	assertNothingLeft(t, s)
	t.Logf("timeout during PROLOG: nothing left after %s", time.Since(began).Round(time.Second))
}

// A VM kept PENDING for capacity, and OpenNebula 7.0's scheduler writing ERROR on a PENDING
// VM before placing it, are ridden out: the run certifies and leaves nothing.
func TestSchedulerModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		faults simulator.Faults
		line   string
	}{
		{"capacity", simulator.Faults{NoCapacity: 5 * time.Second}, "scheduler: "},
		{"scheduler_error", simulator.Faults{SchedulerError: true}, "ERROR (oned retries; not fatal by itself)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startSim(t, simulator.Options{Faults: tt.faults})
			began := time.Now()
			r := runSuite(t, deployArgs(t, s, "-test.run=TestHealthEndpoints")...)
			require.Equal(t, 0, r.code, r.output)
			assert.Equal(t, "PASS", r.results()["TestHealthEndpoints"])
			assert.Contains(t, r.output, tt.line)
			assert.Contains(t, r.output, "teardown complete")
			assertNothingLeft(t, s)
			assertNoPassword(t, s, r.output)
			t.Logf("%s: deploy, check, teardown in %s", tt.name, time.Since(began).Round(time.Second))
		})
	}
}
