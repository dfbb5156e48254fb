package acceptance

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// versionPattern matches a product with a version, as nginx/1.22.1 or llama.cpp/b4000.
var versionPattern = regexp.MustCompile(`(?i)\b(nginx|apache|openresty|localai|llama[.\w-]*|openssl|debian|ubuntu)[/ ]v?\d+(\.\d+)*`)

// TestNoVersionDisclosure looks at every kind of response the front door itself writes
// (public, unauthorized, not found, malformed request, plain-HTTP redirect).
func TestNoVersionDisclosure(t *testing.T) {
	t.Parallel()
	client := target.HTTPClient(nil)
	cases := []struct {
		name string
		get  func(t *testing.T) (http.Header, []byte)
	}{
		{"health", func(t *testing.T) (http.Header, []byte) {
			ex := send(t, client, newRequest(t, http.MethodGet, "/readyz", ""))
			return ex.resp.Header, ex.body
		}},
		{"unauthorized", func(t *testing.T) (http.Header, []byte) {
			ex := send(t, client, newRequest(t, http.MethodGet, "/v1/models", ""))
			return ex.resp.Header, ex.body
		}},
		{"not_found", func(t *testing.T) (http.Header, []byte) {
			req := newRequest(t, http.MethodGet, "/no-such-page", "")
			bearerAuth(req)
			ex := send(t, client, req)
			return ex.resp.Header, ex.body
		}},
		{"malformed_request", malformedRequest},
		{"plain_http", func(t *testing.T) (http.Header, []byte) {
			req, err := http.NewRequest(http.MethodGet, target.HTTPEndpoint.String()+"/", nil)
			require.NoError(t, err)
			ex := send(t, client, req)
			return ex.resp.Header, ex.body
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			header, body := tc.get(t)
			for _, name := range []string{"Server", "X-Powered-By", "Via"} {
				for _, v := range header.Values(name) {
					assert.False(t, versionPattern.MatchString(v), "header %s: %q discloses a version; the nginx site must set server_tokens off and hide the engine's headers", name, v)
				}
			}
			m := versionPattern.FindString(string(body))
			assert.Empty(t, m, "the page discloses a version (%q) in %s; the nginx site must set server_tokens off", m, snippet(body))
		})
	}
}

// malformedRequest sends a request nginx must reject itself, to see its own error page.
func malformedRequest(t *testing.T) (http.Header, []byte) {
	t.Helper()
	conn, err := tls.DialWithDialer(&netDialer, "tcp", target.Address(), target.TLSConfig())
	require.NoError(t, err, "TLS connection to %s", target.Address())
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	_, err = fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\nBroken header line\r\n\r\n", target.Host())
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "no HTTP answer to a malformed request")
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	return resp.Header, body
}
