package copilot

import (
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewTarget(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, endpoint, httpEndpoint, password string
		wantErr, wantHTTP                      string
	}{
		{name: "default_http", endpoint: "https://10.0.0.5", password: "pw", wantHTTP: "http://10.0.0.5"},
		{name: "port_dropped_for_http", endpoint: "https://10.0.0.5:8443/", password: "pw", wantHTTP: "http://10.0.0.5"},
		{name: "ipv6", endpoint: "https://[fd00::5]", password: "pw", wantHTTP: "http://[fd00::5]"},
		{name: "explicit_http", endpoint: "https://h", httpEndpoint: "http://h:8080", password: "pw", wantHTTP: "http://h:8080"},
		{name: "plain_http_endpoint", endpoint: "http://h", password: "pw", wantErr: "want https://"},
		{name: "path", endpoint: "https://h/v1", password: "pw", wantErr: "want https://"},
		{name: "no_password", endpoint: "https://h", wantErr: "no password"},
		{name: "bad_http", endpoint: "https://h", httpEndpoint: "https://h", password: "pw", wantErr: "want http://"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			target, err := NewTarget(tc.endpoint, tc.httpEndpoint, "copilot", tc.password, "m", "")
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.NotContains(t, err.Error(), "pw")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantHTTP, target.HTTPEndpoint.String())
		})
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	target := &Target{Username: "copilot", Password: "s3cret+/="}
	in := "a s3cret+/= b " + base64.StdEncoding.EncodeToString([]byte("copilot:s3cret+/=")) +
		" c " + base64.StdEncoding.EncodeToString([]byte("s3cret+/=")) + " d s3cret%2B%2F%3D"
	out := target.Redact(in)
	assert.Equal(t, "a [REDACTED] b [REDACTED] c [REDACTED] d [REDACTED]", out)
}

func TestEvents(t *testing.T) {
	t.Parallel()
	c := &Capture{reads: [][]byte{
		[]byte("data: {\"a\":1}\n\nda"),
		[]byte("ta: {\"b\":2}\r\n\r\n: comment\n\n"),
		[]byte("data: [DONE]\n\ndata: cut"),
	}}
	events := c.Events()
	require.Len(t, events, 3, "the trailing event without its blank line is incomplete")
	assert.Equal(t, Event{Data: `{"a":1}`, Read: 0}, events[0])
	assert.Equal(t, `{"b":2}`, events[1].Data)
	assert.Equal(t, 1, events[1].Read, "an event split across reads completes in the later read")
	assert.Equal(t, "[DONE]", events[2].Data)
}
