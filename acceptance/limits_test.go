package acceptance

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
)

// bodyLimit is the request size the front door must accept (Cline sends whole files).
const bodyLimit = 50 * 1000 * 1000

// TestRequestBodyLimit: a 50 MB request reaches the engine instead of a 413 from nginx.
// It runs alone, before the parallel checks: its upload would disturb the stream timing.
func TestRequestBodyLimit(t *testing.T) {
	head := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hi"}],"max_tokens":1,"x_padding":"`, target.Model)
	tail := `"}`
	body := make([]byte, 0, bodyLimit)
	body = append(body, head...)
	body = append(body, bytes.Repeat([]byte("a"), bodyLimit-len(head)-len(tail))...)
	body = append(body, tail...)
	req := newRequest(t, http.MethodPost, "/v1/chat/completions", string(body))
	bearerAuth(req)
	ex := send(t, target.HTTPClient(nil), req)
	if ex.resp.StatusCode == http.StatusUnauthorized {
		t.Fatalf("the password was refused (401 %s), so the body limit cannot be judged; see TestAuthentication", snippet(ex.body))
	}
	assert.NotEqual(t, http.StatusRequestEntityTooLarge, ex.resp.StatusCode, "a %d-byte request was refused with 413; the site must set client_max_body_size 50m", len(body))
	assert.NotContains(t, []int{http.StatusBadGateway, http.StatusGatewayTimeout}, ex.resp.StatusCode, "a %d-byte request got %d: the front door could not pass it to the engine", len(body), ex.resp.StatusCode)
}
