package one

import (
	"testing"
	"time"

	"github.com/OpenNebula/one/src/oca/go/src/goca/schemas/vm"
	"github.com/stretchr/testify/assert"
)

func status(state vm.State, lcm vm.LCMState) vmStatus {
	return vmStatus{state: int(state), lcm: int(lcm), name: stateName(int(state), int(lcm))}
}

// The states oned takes terminate-hard in (DispatchManager::terminate, OpenNebula 6.10/7.0).
func TestTerminable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    vmStatus
		want bool
	}{
		{status(vm.Pending, vm.LcmInit), true},
		{status(vm.Hold, vm.LcmInit), true},
		{status(vm.Poweroff, vm.LcmInit), true},
		{status(vm.CloningFailure, vm.LcmInit), true},
		{status(vm.Done, vm.LcmInit), false},
		{status(vm.Active, vm.Prolog), false},
		{status(vm.Active, vm.Boot), false},
		{status(vm.Active, vm.Epilog), false},
		{status(vm.Active, vm.Running), true},
		{status(vm.Active, vm.Unknown), true},
		{status(vm.Active, vm.Shutdown), true},
		{status(vm.Active, vm.BootFailure), true},
		{status(vm.Active, vm.PrologFailure), true},
		{status(vm.Active, vm.EpilogFailure), true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, terminable(tt.s), tt.s.name)
	}
}

// terminate-hard is sent once per state that takes it, and again only after resendAfter.
func TestTerminateSendDue(t *testing.T) {
	t.Parallel()
	now := time.Now()
	running, failed := status(vm.Active, vm.Running), status(vm.Active, vm.EpilogFailure)
	shutdown, prolog := status(vm.Active, vm.Shutdown), status(vm.Active, vm.Prolog)
	sentRunning := terminateSend{state: running.name, at: now}
	tests := []struct {
		name string
		last terminateSend
		s    vmStatus
		at   time.Time
		want bool
	}{
		{"first_in_running", terminateSend{}, running, now, true},
		{"never_in_prolog", terminateSend{}, prolog, now, false},
		{"not_again_in_running", sentRunning, running, now.Add(time.Second), false},
		{"again_after_epilog_failure", sentRunning, failed, now.Add(time.Second), true},
		{"not_into_its_own_shutdown", sentRunning, shutdown, now.Add(time.Second), false},
		{"again_in_a_frozen_shutdown", sentRunning, shutdown, now.Add(resendAfter + time.Second), true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.last.due(tt.s, tt.at), tt.name)
	}
}

// USER_TEMPLATE/ERROR alone is progress (7.0's scheduler retries); HOLD and failures end the wait.
func TestFailed(t *testing.T) {
	t.Parallel()
	pendingWithError := status(vm.Pending, vm.LcmInit)
	pendingWithError.err = "Cannot dispatch VM to any Host"
	bootFailure := status(vm.Active, vm.BootFailure)
	bootFailure.err = "Error deploying virtual machine"
	tests := []struct {
		s    vmStatus
		want string
	}{
		{pendingWithError, ""},
		{status(vm.Active, vm.Prolog), ""},
		{status(vm.Hold, vm.LcmInit), "HOLD"},
		{status(vm.CloningFailure, vm.LcmInit), "VM entered CLONING_FAILURE"},
		{bootFailure, "VM is ACTIVE/BOOT_FAILURE with USER_TEMPLATE/ERROR: Error deploying"},
		{status(vm.Poweroff, vm.LcmInit), "left the boot path"},
	}
	for _, tt := range tests {
		got := tt.s.failed()
		if tt.want == "" {
			assert.Empty(t, got, tt.s.name)
		} else {
			assert.Contains(t, got, tt.want, tt.s.name)
		}
	}
	assert.Contains(t, pendingWithError.detail(), "not fatal by itself")
}

func TestPublishedEndpoint(t *testing.T) {
	t.Parallel()
	tests := []struct{ published, want, err string }{
		{published: "https://10.0.0.5", want: "https://10.0.0.5"},
		{published: "https://copilot.example.com:8443/", want: "https://copilot.example.com:8443"},
		{published: "https://%5B2001:db8::5%5D", want: "https://[2001:db8::5]"},
		{published: "https://%5b2001:db8::5%5d:8443", want: "https://[2001:db8::5]:8443"},
		{published: "", err: "published no"},
		{published: `https://"[2001:db8::5"]`, err: "not an https://HOST[:PORT] URL"},
		{published: "http://10.0.0.5", err: "not an https://HOST[:PORT] URL"},
	}
	for _, tt := range tests {
		got, err := PublishedEndpoint(tt.published)
		if tt.err != "" {
			assert.ErrorContains(t, err, tt.err, tt.published)
			continue
		}
		assert.NoError(t, err, tt.published)
		assert.Equal(t, tt.want, got, tt.published)
	}
}
