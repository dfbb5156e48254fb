package acceptance

import (
	"cmp"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHTTPRedirect: plain HTTP answers every path, with or without credentials, with a
// redirect to the same path over HTTPS, and never serves the API itself.
func TestHTTPRedirect(t *testing.T) {
	t.Parallel()
	client := target.HTTPClient(nil)
	cases := []struct{ method, path string }{
		{http.MethodGet, "/"},
		{http.MethodGet, "/v1/models"},
		{http.MethodPost, "/v1/chat/completions"},
		{http.MethodGet, "/readyz?probe=1"},
	}
	for _, tc := range cases {
		t.Run(routeName(tc.method, tc.path), func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tc.method, target.HTTPEndpoint.String()+tc.path, nil)
			require.NoError(t, err)
			bearerAuth(req)
			ex := send(t, client, req)
			require.Contains(t, []int{301, 302, 307, 308}, ex.resp.StatusCode,
				"plain HTTP %s %s: expected a redirect to HTTPS, got %d %s; the nginx site's port-80 server must only redirect",
				tc.method, tc.path, ex.resp.StatusCode, snippet(ex.body))
			loc, err := url.Parse(ex.resp.Header.Get("Location"))
			require.NoError(t, err, "unparseable Location header")
			assert.Equal(t, "https", loc.Scheme, "redirect goes to %q: scheme %q, not HTTPS", loc, loc.Scheme)
			wantHost, wantPort, _ := net.SplitHostPort(hostPort(target.Endpoint))
			gotHost, gotPort, _ := net.SplitHostPort(hostPort(loc))
			assert.Equal(t, wantHost, gotHost, "redirect goes to %q: host %q, not the HTTPS endpoint's %q", loc, gotHost, wantHost)
			assert.Equal(t, wantPort, gotPort, "redirect goes to %q: port %s, not the HTTPS endpoint's %s", loc, gotPort, wantPort)
			wantPath, wantQuery, _ := strings.Cut(tc.path, "?")
			assert.Equal(t, wantPath, cmp.Or(loc.EscapedPath(), "/"), "redirect of %s loses the path: it goes to %q", tc.path, loc)
			assert.Equal(t, wantQuery, loc.RawQuery, "redirect of %s loses the query: it goes to %q", tc.path, loc)
		})
	}
}

// hostPort spells a URL's authority with an explicit port.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	return net.JoinHostPort(u.Hostname(), port)
}
