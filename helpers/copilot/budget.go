package copilot

import (
	"net/http"
	pathpkg "path"
	"slices"
	"sync/atomic"
	"time"
)

// ModelCalls is the most requests one run of the acceptance suite sends that make the model
// work (chat, completion and embedding requests the front door lets through). The suite
// counts them as it runs and fails when it sends more, so the timeout below stays true.
const ModelCalls = 30

// SuiteOverhead covers everything in a run that is not a model call: TLS handshakes,
// refusals, health probes, the 50 MB upload.
const SuiteOverhead = 5 * time.Minute

// SuiteTimeout is the go test -timeout a certification needs when each request may take
// requestTimeout: an appliance with one engine slot answers the model calls one after
// another, so they add up. A shorter -timeout risks go test's panic in the middle of a
// certification, which reports nothing and skips every cleanup.
func SuiteTimeout(requestTimeout time.Duration) time.Duration {
	return ModelCalls*requestTimeout + SuiteOverhead
}

// modelPaths are the API routes that make the model work.
var modelPaths = []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings"}

// IsModelCall tells whether a request to path that ended with status (0: no answer) made
// the model work, or may have: a refusal (4xx) did not.
func IsModelCall(method, path string, status int) bool {
	if method != http.MethodPost || (status >= 400 && status < 500) {
		return false
	}
	// Spellings the front door normalises (/v1//chat/completions) reach the same route.
	return slices.Contains(modelPaths, pathpkg.Clean("/"+path))
}

// callCounter counts the model calls that pass through it.
type callCounter struct {
	base  http.RoundTripper
	calls *atomic.Int64
}

func (c callCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	if IsModelCall(req.Method, req.URL.Path, status) {
		c.calls.Add(1)
	}
	return resp, err
}
