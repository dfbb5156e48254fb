package acceptance

import (
	"net/http"
	"testing"
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
			switch code := ex.resp.StatusCode; code {
			case http.StatusOK:
			case http.StatusUnauthorized:
				t.Errorf("GET %s without credentials: got 401 %s: the site puts health behind auth", path, snippet(ex.body))
			case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
				t.Errorf("GET %s without credentials: got %d %s: the engine is down or not ready (journalctl -u the engine's unit)", path, code, snippet(ex.body))
			default:
				t.Errorf("GET %s without credentials: expected 200, got %d %s", path, code, snippet(ex.body))
			}
		})
	}
}
