package acceptance

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestCORS: browser-based clients can call the API: preflight answers 204 without
// credentials, and every response (errors included) carries the CORS headers once.
func TestCORS(t *testing.T) {
	t.Parallel()
	client := target.HTTPClient(nil)
	const origin = "vscode-webview://slm-copilot-acceptance"
	t.Run("preflight", func(t *testing.T) {
		t.Parallel()
		req := newRequest(t, http.MethodOptions, "/v1/chat/completions", "")
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		ex := send(t, client, req)
		assert.Equal(t, http.StatusNoContent, ex.resp.StatusCode, "OPTIONS preflight without credentials: expected 204, got %d %s; the site must answer OPTIONS before auth", ex.resp.StatusCode, snippet(ex.body))
		assertAllowOrigin(t, ex.resp, origin)
		methods := strings.ToUpper(ex.resp.Header.Get("Access-Control-Allow-Methods"))
		assert.Contains(t, methods, "POST", "Access-Control-Allow-Methods %q lacks POST", methods)
		headers := strings.ToLower(ex.resp.Header.Get("Access-Control-Allow-Headers"))
		for _, h := range []string{"authorization", "content-type"} {
			assert.True(t, headers == "*" || strings.Contains(headers, h), "Access-Control-Allow-Headers %q lacks %s", headers, h)
		}
	})
	responses := []struct {
		name string
		req  func(t *testing.T) *http.Request
	}{
		{"health", func(t *testing.T) *http.Request { return newRequest(t, http.MethodGet, "/readyz", "") }},
		{"unauthorized", func(t *testing.T) *http.Request { return newRequest(t, http.MethodGet, "/v1/models", "") }},
		{"authorized", func(t *testing.T) *http.Request {
			r := newRequest(t, http.MethodGet, "/v1/models", "")
			bearerAuth(r)
			return r
		}},
	}
	for _, tc := range responses {
		t.Run("headers_"+tc.name, func(t *testing.T) {
			t.Parallel()
			req := tc.req(t)
			req.Header.Set("Origin", origin)
			ex := send(t, client, req)
			assertAllowOrigin(t, ex.resp, origin)
		})
	}
}

func assertAllowOrigin(t *testing.T, resp *http.Response, origin string) {
	t.Helper()
	values := resp.Header.Values("Access-Control-Allow-Origin")
	if !assert.Len(t, values, 1, "expected one Access-Control-Allow-Origin header on %s %s (status %d), got %q; the site must add it with 'always' and hide the engine's own",
		resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, values) {
		return
	}
	assert.Contains(t, []string{"*", origin}, values[0], "Access-Control-Allow-Origin %q admits neither * nor %s", values[0], origin)
}
