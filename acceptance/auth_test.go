package acceptance

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// apiRoute is one route the engine exposes, with a minimal valid request.
type apiRoute struct {
	method, path, body string
}

func apiRoutes() []apiRoute {
	m := target.Model
	return []apiRoute{
		{http.MethodGet, "/", ""},
		{http.MethodGet, "/v1/models", ""},
		{http.MethodPost, "/v1/chat/completions", fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"max_tokens":1}`, m)},
		{http.MethodPost, "/v1/completions", fmt.Sprintf(`{"model":%q,"prompt":"hi","max_tokens":1}`, m)},
		{http.MethodPost, "/v1/embeddings", fmt.Sprintf(`{"model":%q,"input":"hi"}`, m)},
	}
}

// TestAuthentication runs every credential variant against every API route: only the
// right password, as HTTP Basic or as a Bearer token, gets through; everything else gets
// a JSON 401 from the front door, near misses included.
func TestAuthentication(t *testing.T) {
	t.Parallel()
	client := target.HTTPClient(nil)
	for _, route := range apiRoutes() {
		for _, cred := range credentialMatrix() {
			t.Run(routeName(route.method, route.path)+"/"+cred.name, func(t *testing.T) {
				t.Parallel()
				if cred.unjudgeable != "" {
					t.Skip(cred.unjudgeable)
				}
				req := newRequest(t, route.method, route.path, route.body)
				cred.apply(req)
				ex := send(t, client, req)
				code := ex.resp.StatusCode
				if !cred.valid {
					assert.Equal(t, http.StatusUnauthorized, code,
						"%s %s with %s credentials: expected 401, got %d %s; the front door lets requests through without the password (look at auth_basic and the Bearer map in the nginx site)",
						route.method, route.path, cred.name, code, snippet(ex.body))
					assert.True(t, isJSONError(ex.resp, ex.body),
						"%s %s with %s credentials: expected a JSON error body, got Content-Type %q %s; look at the site's 401 error_page",
						route.method, route.path, cred.name, ex.resp.Header.Get("Content-Type"), snippet(ex.body))
					return
				}
				switch challenge := ex.resp.Header.Get("WWW-Authenticate"); {
				case code == http.StatusUnauthorized && strings.HasPrefix(challenge, "Basic"):
					// Only the front door asks for HTTP Basic; the engine knows no password.
					t.Errorf("%s %s with %s credentials: got %d with the front door's challenge %q %s: the front door refuses the password (look at the htpasswd file and the Bearer map)",
						route.method, route.path, cred.name, code, challenge, snippet(ex.body))
				case code == http.StatusUnauthorized || code == http.StatusForbidden:
					t.Errorf("%s %s with %s credentials: got %d without the front door's Basic challenge %s: the engine refused the request, so the front door forwards the client's credentials instead of the engine's own key (look at proxy_set_header Authorization)",
						route.method, route.path, cred.name, code, snippet(ex.body))
				case code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout:
					t.Errorf("%s %s with %s credentials: got %d from the front door: the engine did not answer (look at the engine's service and the upstream address)",
						route.method, route.path, cred.name, code)
				}
			})
		}
	}
}
