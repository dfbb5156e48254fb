package acceptance

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
)

var preflightFlag = flag.Bool("preflight", true, "end the run with one message (exit 2) when the endpoint does not answer, is not TLS or refuses the password; false runs every check anyway")

// preflightTimeout bounds each preflight step: the connection, the handshake, one
// authenticated request that reaches no model.
const preflightTimeout = 15 * time.Second

// errPreflight marks a run ended before the checks: every check would fail for this one
// reason, so it is said once (exit code 2).
var errPreflight = errors.New("preflight")

// preflight proves that the endpoint answers, speaks TLS and takes the password (Bearer
// or Basic), so that a mistyped endpoint or password ends the run with one message that
// says what to check, instead of a dozen failures that all mean the same. It judges
// nothing else: the certificate, the auth rows and the rest are the checks' business.
func preflight(ctx context.Context, t *copilot.Target) error {
	if !*preflightFlag {
		return nil
	}
	addr := t.Address()
	dialer := &net.Dialer{Timeout: preflightTimeout}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("%w: %s", errPreflight, dialAdvice(addr, err))
	}
	conn.SetDeadline(time.Now().Add(preflightTimeout))
	// Any certificate and version: judging them is the TLS checks' business.
	cfg := t.TLSConfig()
	cfg.InsecureSkipVerify, cfg.MinVersion = true, tls.VersionTLS10 //nolint:gosec // reachability only
	tc := tls.Client(conn, cfg)
	err = tc.HandshakeContext(ctx)
	tc.Close()
	if err != nil {
		return fmt.Errorf("%w: %s", errPreflight, handshakeAdvice(addr, err))
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: preflightTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer hc.CloseIdleConnections()
	for _, scheme := range []string{"Bearer", "Basic"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL("/v1/models"), nil)
		if err != nil {
			return err
		}
		if scheme == "Bearer" {
			req.Header.Set("Authorization", "Bearer "+t.Password)
		} else {
			req.SetBasicAuth(t.Username, t.Password)
		}
		resp, err := hc.Do(req)
		if err != nil {
			// The front door let it through to an engine that did not answer in time (or
			// HTTP broke): the password is not the problem, and the checks say what is.
			return nil
		}
		resp.Body.Close()
		// Only the front door's refusal carries its Basic challenge; an engine's own 401
		// (a front door forwarding the wrong key) is for the checks to diagnose.
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
			return nil
		}
	}
	return fmt.Errorf("%w: the front door at %s refuses the password with both Bearer and Basic (user %q): 401 with its Basic challenge on GET /v1/models; "+
		"check -password or $%s (the instance's ONEAPP_COPILOT_PASSWORD, or the password in its report, /etc/one-appliance/config on the VM) and -username",
		errPreflight, t.Endpoint, t.Username, PasswordEnv)
}

// dialAdvice names the dial failure's class and what to look at.
func dialAdvice(addr string, err error) string {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot resolve %q (%v): check the host in -endpoint", dnsErr.Name, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing listens on %s (connection refused): is -endpoint's host and port right, is the VM up and nginx running (systemctl status nginx)?", addr)
	case errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return fmt.Sprintf("no answer from %s within %s: wrong address, or a firewall or security group dropping the port?", addr, preflightTimeout)
	default:
		return fmt.Sprintf("cannot connect to %s: %v", addr, err)
	}
}

// handshakeAdvice names the handshake failure's class and what to look at.
func handshakeAdvice(addr string, err error) string {
	var rec tls.RecordHeaderError
	switch {
	case errors.As(err, &rec):
		return fmt.Sprintf("%s does not speak TLS (its first bytes are not a TLS record): plain HTTP? -endpoint must be the https:// listener (port 443 on the appliance)", addr)
	case errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return fmt.Sprintf("%s accepted the connection but sent no TLS handshake within %s: is it the appliance's TLS port?", addr, preflightTimeout)
	default:
		return fmt.Sprintf("TLS handshake with %s failed: %v", addr, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
