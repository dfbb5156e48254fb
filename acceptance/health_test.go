package acceptance

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestHealthEndpoints: /readyz and /health answer 200 without credentials while the
// engine answers (monitoring and OneGate probes carry no password).
func TestHealthEndpoints(t *testing.T) {
	t.Parallel()
	client := target.HTTPClient(nil)
	for _, path := range []string{"/readyz", "/health"} {
		t.Run(routeName(http.MethodGet, path), func(t *testing.T) {
			t.Parallel()
			ex := send(t, client, newRequest(t, http.MethodGet, path, ""))
			assert.Equal(t, http.StatusOK, ex.resp.StatusCode,
				"GET %s without credentials: expected 200, got %d %s; 401 means the site puts health behind auth, 502/503/504 that the engine is down (journalctl -u the engine's unit)",
				path, ex.resp.StatusCode, snippet(ex.body))
		})
	}
}
