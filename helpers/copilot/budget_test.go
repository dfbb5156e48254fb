package copilot

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestIsModelCall(t *testing.T) {
	t.Parallel()
	cases := []struct {
		method, path string
		status       int
		want         bool
	}{
		{http.MethodPost, "/v1/chat/completions", 200, true},
		{http.MethodPost, "/v1//chat/completions", 200, true},
		{http.MethodPost, "/v1/completions", 502, true},
		{http.MethodPost, "/v1/embeddings", 0, true}, // no answer: it may have run to the deadline
		{http.MethodPost, "/v1/chat/completions", 401, false},
		{http.MethodPost, "/v1/chat/completions", 413, false},
		{http.MethodGet, "/v1/chat/completions", 200, false},
		{http.MethodPost, "/v1/models", 200, false},
		{http.MethodPost, "/completion", 200, false},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, IsModelCall(tc.method, tc.path, tc.status), "%s %s -> %d", tc.method, tc.path, tc.status)
	}
}

func TestSuiteTimeoutCoversEveryCall(t *testing.T) {
	t.Parallel()
	assert.Equal(t, ModelCalls*5*time.Minute+SuiteOverhead, SuiteTimeout(5*time.Minute))
	assert.Greater(t, SuiteTimeout(time.Second), SuiteOverhead)
}
