package acceptance

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
)

var oneReconfigure = flag.Bool("one.reconfigure", false, "deploy mode: after the checks pass, give the VM a new password in its context, reboot it, and prove the appliance applied it: endpoint and certificate kept, new password accepted, old one refused")

// reconfigureLookAt is where an operator finds why the appliance did not apply its new
// context: one-apps re-runs the configure stage at boot for a RECONFIGURABLE appliance.
const reconfigureLookAt = "on the VM look at /var/log/one-appliance/ (configure.log: the appliance's configure stage runs again at every boot, ONE_SERVICE_RECONFIGURABLE=true) and /etc/one-appliance/status"

// reconfigureOne is -one.reconfigure, run after the checks passed against the deployed
// VM: it rotates the appliance's password through the VM's context and a reboot
// (one.Client.Reconfigure) and proves what a user relies on when changing a setting: the
// same address and certificate (Cline and NODE_EXTRA_CA_CERTS keep working), the new
// password in force and the old one refused. It returns the run's exit code (0 or 1).
func reconfigureOne(r *oneRun) (code int) {
	ctx, cancel := context.WithDeadline(context.Background(), r.stopAt)
	defer cancel()
	_, _, vmID := r.d.IDs()
	oldPassword, endpoint := r.d.Password, r.d.Endpoint()
	fail := func(format string, args ...any) int {
		logOne("reconfigure: FAIL: %s", fmt.Sprintf(format, args...))
		return 1
	}
	contextChanged := false
	defer func() {
		if code != 0 && contextChanged {
			logOne("reconfigure: the appliance did not apply its changed context; %s, and onevm show %d", reconfigureLookAt, vmID)
		}
	}()
	before, err := fingerprint(ctx, target)
	if err != nil {
		return fail("the certificate before the reboot: %v", err)
	}
	logOne("reconfigure: rotating the appliance password of VM %d through its context and a reboot (-one.reconfigure)", vmID)
	err = r.c.Reconfigure(ctx, r.d, *oneBootTimeout, *oneReadyTimeout)
	contextChanged = r.d.Password != oldPassword // oned took the new context
	if err != nil {
		// The errors of helpers/one never hold a password; redact both anyway.
		return fail("%s", redactAll(err.Error(), oldPassword, r.d.Password))
	}

	after, err := copilot.NewTarget(r.d.Endpoint(), *httpEndpointFlag, *usernameFlag, r.d.Password, *modelFlag, *caCertFlag)
	if err != nil {
		return fail("the endpoint published after the reboot: %s", redactAll(err.Error(), oldPassword, r.d.Password))
	}
	check := func(ok bool, pass string, failure string) {
		if ok {
			logOne("reconfigure: %s", pass)
			return
		}
		code = fail("%s", redactAll(failure, oldPassword, r.d.Password))
	}

	check(r.d.Endpoint() == endpoint, "endpoint unchanged: "+endpoint,
		fmt.Sprintf("the VM publishes %s after the reboot, %s before: a client configured with the old address lost the appliance", r.d.Endpoint(), endpoint))

	if now, err := fingerprint(ctx, after); err != nil {
		check(false, "", fmt.Sprintf("the certificate after the reboot: %v", err))
	} else {
		check(now == before, "certificate unchanged: SHA-256 "+before,
			fmt.Sprintf("the certificate changed across the reboot (SHA-256 %s, was %s): the configure stage must keep the TLS key and certificate it made, or every client that trusted it breaks", now, before))
	}

	hc := after.HTTPClient(nil)
	models := after.URL("/v1/models")
	bearer := func(pw string) func(*http.Request) {
		return func(req *http.Request) { req.Header.Set("Authorization", "Bearer "+pw) }
	}
	basic := func(pw string) func(*http.Request) {
		return func(req *http.Request) { req.SetBasicAuth(after.Username, pw) }
	}
	got := func(auth func(*http.Request)) string {
		got, err := status(ctx, hc, models, auth)
		if err != nil {
			return redactAll(err.Error(), oldPassword, r.d.Password)
		}
		return fmt.Sprint(got)
	}

	newBearer := got(bearer(r.d.Password))
	check(newBearer == "200", "new password accepted (GET /v1/models, Bearer: 200)",
		fmt.Sprintf("the new password is refused (GET /v1/models, Bearer: %s): the appliance did not apply the password of its new context", newBearer))

	oldBearer, oldBasic := got(bearer(oldPassword)), got(basic(oldPassword))
	check(oldBearer == "401" && oldBasic == "401", "old password refused (GET /v1/models, Bearer: 401, Basic: 401)",
		fmt.Sprintf("the old password still answers (GET /v1/models, Bearer: %s, Basic: %s; want 401 for both): the appliance kept the credentials of its first boot", oldBearer, oldBasic))
	return code
}

// fingerprint is the SHA-256 of the leaf certificate t's TLS listener presents.
func fingerprint(ctx context.Context, t *copilot.Target) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: t.TLSConfig()}
	conn, err := d.DialContext(ctx, "tcp", t.Address())
	if err != nil {
		return "", fmt.Errorf("TLS handshake with %s: %w", t.Address(), err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", fmt.Errorf("%s presented no certificate", t.Address())
	}
	sum := sha256.Sum256(certs[0].Raw)
	return hex.EncodeToString(sum[:]), nil
}

// status sends GET url with auth applied and returns the status code.
func status(ctx context.Context, hc *http.Client, url string, auth func(*http.Request)) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, *requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	auth(req)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("no response: %w", err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// redactAll removes every form of each password from s (copilot.Target.Redact's forms).
func redactAll(s string, passwords ...string) string {
	for _, pw := range passwords {
		if pw == "" {
			continue
		}
		t := copilot.Target{Username: *usernameFlag, Password: pw}
		s = t.Redact(s)
	}
	return strings.TrimSpace(s)
}
