package faults

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

// silentAddress accepts connections and never sends a byte: a TLS handshake there waits.
func silentAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return l.Addr().String()
}

// buildSuite compiles the acceptance suite, to run as make certify runs it: go test itself
// would turn its exit codes (2, 130) into 1.
func buildSuite(t *testing.T) string {
	t.Helper()
	suite := filepath.Join(t.TempDir(), "acceptance.test")
	build := exec.Command("go", "test", "-c", "-o", suite, "./acceptance")
	build.Dir = moduleRoot(t)
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build the suite: %s", out)
	return suite
}

// TestPreflight: an endpoint that does not answer, is not TLS, or refuses the password
// with both Bearer and Basic ends the run before any check with one message naming what
// to check, and exit code 2 (as a new user hits with `make certify ENDPOINT=... PASSWORD=...`).
func TestPreflight(t *testing.T) {
	t.Parallel()
	in := startInstance(t, reference.Options{})
	password := canaryPassword(t)
	suite := buildSuite(t)
	tests := []struct {
		name, endpoint, password, want string
	}{
		{"refused", "https://" + closedAddress(t), password, "nothing listens on"},
		{"dns", "https://slm-copilot-preflight.invalid", password, `cannot resolve "slm-copilot-preflight.invalid"`},
		{"not_tls", "https://" + strings.TrimPrefix(in.HTTPEndpoint, "http://"), password, "does not speak TLS"},
		{"silent", "https://" + silentAddress(t), password, "sent no TLS handshake within"},
		{"wrong_password", in.Endpoint, password, "refuses the password with both Bearer and Basic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, suite, "-test.v",
				"-test.timeout", copilot.SuiteTimeout(suiteRequestTimeout).String(), "-request-timeout", suiteRequestTimeout.String(),
				"-endpoint", tt.endpoint, "-password", tt.password)
			cmd.Dir = filepath.Join(moduleRoot(t), "acceptance")
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "the run must fail:\n%s", out)
			assert.Equal(t, 2, exit.ExitCode(), "preflight failures exit 2:\n%s", out)
			assert.Contains(t, string(out), "acceptance: preflight: ")
			assert.Contains(t, string(out), tt.want)
			assert.NotContains(t, string(out), "=== RUN", "no check runs after a failed preflight")
			assert.Equal(t, 1, strings.Count(string(out), "preflight:"), "one message:\n%s", out)
			assert.NotContains(t, string(out), tt.password, "the password is never printed")
			assert.NotContains(t, string(out), in.Password)
		})
	}
}
