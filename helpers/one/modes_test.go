package one_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/OpenNebula/one/src/oca/go/src/goca"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/fixtures/oned/simulator"
	"github.com/slm-copilot/slm-copilot/helpers/one"
)

// waitVMState waits until the simulator's VM is in state (e.g. ACTIVE/PROLOG).
func waitVMState(t *testing.T, sim *simulator.Oned, state string) {
	t.Helper()
	require.Eventually(t, func() bool { return sim.HasVM(state) },
		time.Minute, 20*time.Millisecond, "the VM never reached %s: %+v", state, sim.Inventory())
}

// deployUntil deploys in the background and cancels the deploy once the VM is in state,
// as a Ctrl-C or a test timeout does; it returns the deploy's error.
func deployUntil(t *testing.T, sim *simulator.Oned, c *one.Client, d *one.Deployment, state string) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Deploy(ctx, config(t), d) }()
	waitVMState(t, sim, state)
	cancel()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("the deploy did not stop within a minute of its cancellation")
		return nil
	}
}

// oned refuses terminate-hard in PROLOG (DispatchManager::terminate): a teardown that
// starts there re-sends it once the VM is in a state that takes it, and leaves nothing.
func TestTeardownDuringProlog(t *testing.T) {
	t.Parallel()
	sim, c, logs := setup(t, simulator.Options{PrologTime: 3 * time.Second})
	d := one.NewDeployment()
	require.Error(t, deployUntil(t, sim, c, d, "ACTIVE/PROLOG"), "the deploy was cancelled")
	began := time.Now()
	require.NoError(t, c.Teardown(deadline(t), d))
	assert.Empty(t, sim.Inventory(), "teardown during PROLOG leaves nothing")
	assert.NotContains(t, logs.String(), "terminate-hard VM 0 (ACTIVE/PROLOG)", "oned refuses terminate-hard in PROLOG: it is not sent there")
	assert.Regexp(t, `terminate-hard VM 0 \(ACTIVE/(RUNNING|BOOT_FAILURE)\)`, logs.String(), "sent once the VM took it")
	t.Logf("teardown from PROLOG took %s", time.Since(began).Round(time.Millisecond))
}

// A teardown whose budget ends while the VM is still in PROLOG says what is left and the
// command that removes it in that state.
func TestTeardownBudgetNamesTheCommand(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t, simulator.Options{PrologTime: time.Minute})
	d := one.NewDeployment()
	require.Error(t, deployUntil(t, sim, c, d, "ACTIVE/PROLOG"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := c.Teardown(ctx, d)
	require.Error(t, err, "the VM cannot be terminated within a second of PROLOG")
	for _, phrase := range []string{"teardown left objects", "VM 0", "still ACTIVE/PROLOG", "onevm recover --delete 0"} {
		assert.Contains(t, err.Error(), phrase)
	}
	// What the message says works: recover --delete is taken in PROLOG.
	ctrl := goca.NewController(goca.NewClient(goca.OneConfig{Token: simulator.DefaultAuth, Endpoint: sim.Endpoint()}, nil))
	if !assert.NoError(t, ctrl.VM(0).RecoverDelete(), "onevm recover --delete in PROLOG") {
		return
	}
	require.NoError(t, c.Teardown(deadline(t), d), "a second teardown removes the rest")
	assert.Empty(t, sim.Inventory())
}

// A datastore driver failing the epilog leaves the VM in EPILOG_FAILURE: terminate-hard is
// sent again there (oned then deletes it).
func TestTeardownRecoversEpilogFailure(t *testing.T) {
	t.Parallel()
	sim, c, logs := setup(t, simulator.Options{Faults: simulator.Faults{EpilogFailure: true}})
	d := one.NewDeployment()
	require.NoError(t, c.Deploy(deadline(t), config(t), d))
	require.NoError(t, c.Teardown(deadline(t), d))
	assert.Contains(t, logs.String(), "terminate-hard VM 0 (ACTIVE/RUNNING)")
	assert.Contains(t, logs.String(), "terminate-hard VM 0 (ACTIVE/EPILOG_FAILURE)")
	assert.Empty(t, sim.Inventory())
}

// Clean removes only the caller's objects, and only those older than its age guard.
func TestCleanOnlyMineAndOld(t *testing.T) {
	t.Parallel()
	sim, c, logs := setup(t, simulator.Options{Users: []string{"alice:pw"}})
	alice := goca.NewController(goca.NewClient(goca.OneConfig{Token: "alice:pw", Endpoint: sim.Endpoint()}, nil))
	_, err := alice.Templates().Create(`NAME = "` + one.NamePrefix + `alice-template"` + "\nCPU = 1\nMEMORY = 128")
	require.NoError(t, err)
	d := one.NewDeployment()
	require.NoError(t, c.Deploy(deadline(t), config(t), d))

	require.NoError(t, c.Clean(deadline(t), one.DefaultCleanAge))
	assert.Len(t, sim.Inventory(), 4, "nothing younger than %s is removed: %+v", one.DefaultCleanAge, sim.Inventory())
	assert.Contains(t, logs.String(), "younger than 6h0m0s (a run in progress?)")

	sim.Backdate(7 * time.Hour)
	require.NoError(t, c.Clean(deadline(t), one.DefaultCleanAge))
	left := sim.Inventory()
	require.Len(t, left, 1, "only alice's object is left: %+v", left)
	assert.Equal(t, "alice", left[0].Owner, "another user's object, though named %s*, is never touched", one.NamePrefix)
}

// The deploy rides out a VM kept PENDING for capacity and OpenNebula 7.0's scheduler
// ERROR on a PENDING VM, showing both as progress; an oned without OneGate is explained.
func TestDeploySchedulerModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		faults simulator.Faults
		logs   []string // progress lines the deploy shows
		err    []string // the deploy fails with these phrases
	}{
		{name: "no_capacity", faults: simulator.Faults{NoCapacity: 2 * time.Second},
			logs: []string{"vm 0: PENDING", "scheduler: ", "vm 0: ACTIVE/RUNNING", "READY at"}},
		{name: "scheduler_error", faults: simulator.Faults{SchedulerError: true},
			logs: []string{"ERROR (oned retries; not fatal by itself): ", "vm 0: ACTIVE/RUNNING", "READY at"}},
		{name: "no_onegate", faults: simulator.Faults{NoOneGate: true},
			err: []string{"onegate endpoint was not defined in oned.conf", "set ONEGATE_ENDPOINT", "/etc/one/oned.conf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, c, logs := setup(t, simulator.Options{Faults: tt.faults})
			d := one.NewDeployment()
			err := c.Deploy(deadline(t), config(t), d)
			if tt.err != nil {
				require.Error(t, err)
				for _, phrase := range tt.err {
					assert.Contains(t, err.Error(), phrase)
				}
			} else {
				require.NoError(t, err)
			}
			for _, line := range tt.logs {
				assert.Contains(t, logs.String(), line)
			}
			require.NoError(t, c.Teardown(deadline(t), d))
			assert.Empty(t, sim.Inventory())
			assert.NotContains(t, logs.String()+fmt.Sprint(err), d.Password)
		})
	}
}

// A run whose READY never comes names OneGate first.
func TestReadyTimeoutNamesOneGate(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t, simulator.Options{Faults: simulator.Faults{NeverReady: true}})
	cfg := config(t)
	cfg.ReadyTimeout = 2 * time.Second
	d := one.NewDeployment()
	err := c.Deploy(deadline(t), cfg, d)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "OneGate (CONTEXT/ONEGATE_ENDPOINT http://")
	assert.True(t, strings.Contains(err.Error(), "onegate vm show"), err.Error())
	require.NoError(t, c.Teardown(deadline(t), d))
	assert.Empty(t, sim.Inventory())
}
