package deploy

import (
	"fmt"
	"os"
	"regexp"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/fixtures/oned/simulator"
	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

// The checks used around a reconfiguration: the run is about the reboot, not the checks.
const reconfigureChecks = "-test.run=TestHealthEndpoints|TestModelListed"

// -one.reconfigure rotates the password through the VM's context and a reboot; the
// simulated guest boots again through the appliance's configure stage with the new context.
func TestReconfigure(t *testing.T) {
	t.Parallel()
	s := startSim(t, simulator.Options{})
	r := runSuite(t, deployArgs(t, s, "-one.reconfigure", reconfigureChecks)...)
	require.Equal(t, 0, r.code, "deploy, checks, reconfigure and teardown must pass:\n%s", r.output)
	for _, line := range []string{
		"reconfigure: CONTEXT updated with a new ONEAPP_COPILOT_PASSWORD",
		"reconfigure: endpoint unchanged: https://",
		"reconfigure: certificate unchanged: SHA-256 ",
		"reconfigure: new password accepted (GET /v1/models, Bearer: 200)",
		"reconfigure: old password refused (GET /v1/models, Bearer: 401, Basic: 401)",
		"teardown complete",
	} {
		assert.Contains(t, r.output, line)
	}
	assert.NotContains(t, r.output, "reconfigure: FAIL")
	s.mu.Lock()
	passwords := append([]string(nil), s.passwords...)
	s.mu.Unlock()
	require.Len(t, passwords, 2, "the guest booted twice: deploy and reboot")
	assert.NotEqual(t, passwords[0], passwords[1], "the reboot brought a new password in the CONTEXT")
	assertNothingLeft(t, s)
	assertNoPassword(t, s, r.output)
}

// A guest whose configure stage does not apply the new password (it keeps the credentials
// of its first boot) fails the run, naming where to look, and is still torn down.
func TestReconfigureNotApplied(t *testing.T) {
	t.Parallel()
	s := startTamperedSim(t, simulator.Options{}, keepFirstCredentials(t))
	r := runSuite(t, deployArgs(t, s, "-one.reconfigure", reconfigureChecks)...)
	assert.Equal(t, 1, r.code, "a reconfiguration not applied fails the run:\n%s", r.output)
	assert.Equal(t, "PASS", r.results()["TestModelListed"], "the checks before the reboot pass")
	for _, line := range []string{
		"reconfigure: endpoint unchanged",
		"reconfigure: certificate unchanged",
		"reconfigure: FAIL: the new password is refused (GET /v1/models, Bearer: 401)",
		"reconfigure: FAIL: the old password still answers (GET /v1/models, Bearer: 200, Basic: 200; want 401 for both)",
		"/var/log/one-appliance/",
		"teardown complete",
	} {
		assert.Contains(t, r.output, line)
	}
	assertNothingLeft(t, s)
	assertNoPassword(t, s, r.output)
}

// A guest that does not come back from the reboot (its configure stage fails) fails the
// run at -one.ready-timeout, naming the wait and where to look, and is still torn down.
func TestReconfigureNeverReady(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	boots := 0
	failSecondBoot := func(*reference.Files) error {
		mu.Lock()
		defer mu.Unlock()
		if boots++; boots > 1 {
			return fmt.Errorf("configure failed on reboot (injected)")
		}
		return nil
	}
	s := startTamperedSim(t, simulator.Options{}, failSecondBoot)
	r := runSuite(t, deployArgs(t, s, "-one.reconfigure", "-one.ready-timeout=30s", reconfigureChecks)...)
	assert.Equal(t, 1, r.code, "a VM not READY after the reboot fails the run:\n%s", r.output)
	for _, line := range []string{
		"reconfigure: FAIL: reconfigure: after the reboot: VM 0 is RUNNING but did not report READY=YES within 30s",
		"reconfigure: the appliance did not apply its changed context; on the VM look at /var/log/one-appliance/",
		"teardown complete",
	} {
		assert.Contains(t, r.output, line)
	}
	assert.NotContains(t, r.output, "new password accepted", "no assertion runs against a VM that is not READY")
	assertNothingLeft(t, s)
	assertNoPassword(t, s, r.output)
}

// keepFirstCredentials makes a guest's later boots serve the credentials of its first:
// configure renders the new password into htpasswd and secrets.conf's Bearer map, and
// this puts the first boot's back, as an appliance whose configure stage skipped the
// credentials on reboot would. The engine key in secrets.conf is left as configure wrote it.
func keepFirstCredentials(t *testing.T) func(*reference.Files) error {
	t.Helper()
	bearerMap := regexp.MustCompile(`(?s)map \$http_authorization \$slm_copilot_bearer_ok \{.*?\n\}\n`)
	var mu sync.Mutex
	var htpasswd, bearer []byte
	return func(f *reference.Files) error {
		mu.Lock()
		defer mu.Unlock()
		secrets, err := os.ReadFile(f.Secrets)
		if err != nil {
			return err
		}
		if n := len(bearerMap.FindAllIndex(secrets, -1)); n != 1 {
			return fmt.Errorf("%s: Bearer map found %d times, want 1", f.Secrets, n)
		}
		if htpasswd == nil { // first boot: remember
			if htpasswd, err = os.ReadFile(f.Htpasswd); err != nil {
				return err
			}
			bearer = bearerMap.Find(secrets)
			return nil
		}
		if err := os.WriteFile(f.Htpasswd, htpasswd, 0o640); err != nil {
			return err
		}
		return os.WriteFile(f.Secrets, bearerMap.ReplaceAllLiteral(secrets, bearer), 0o600)
	}
}
