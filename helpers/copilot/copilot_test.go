package copilot

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

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
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	c := &Capture{reads: []Read{
		{At: at(1), Data: []byte("data: {\"a\":1}\n\nda")},
		{At: at(2), Data: []byte("ta: {\"b\":2}\r\n\r\n: comment\n\n")},
		{At: at(3), Data: []byte("data: [DONE]\n\ndata: cut")},
	}}
	events := c.Events()
	require.Len(t, events, 3, "the trailing event without its blank line is incomplete")
	assert.Equal(t, Event{Data: `{"a":1}`, Read: 0, At: at(1)}, events[0])
	assert.Equal(t, `{"b":2}`, events[1].Data)
	assert.Equal(t, 1, events[1].Read, "an event split across reads completes in the later read")
	assert.Equal(t, at(2), events[1].At, "an event arrives with the read that completes it")
	assert.Equal(t, "[DONE]", events[2].Data)
	assert.Equal(t, "data: {\"a\":1}\n\ndata: {\"b\":2}\r\n\r\n: comment\n\ndata: [DONE]\n\ndata: cut", string(c.Body()))
}

// TestTapTimesReads: the tap stamps the request, the headers and each read with the
// moment it happened. The server holds its second event until the client has seen the
// first, so the order of the stamps is certain without any sleep.
func TestTapTimesReads(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		_, _ = io.WriteString(w, "data: one\n\n")
		_ = rc.Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: two\n\n")
	}))
	t.Cleanup(srv.Close)
	tap := &Tap{Base: srv.Client().Transport}
	before := time.Now()
	resp, err := (&http.Client{Transport: tap}).Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	c := tap.Last()
	require.NotNil(t, c)
	assert.Equal(t, http.StatusOK, c.Status)
	assert.Equal(t, "text/event-stream", c.Header.Get("Content-Type"))

	buf := make([]byte, 64)
	n, err := resp.Body.Read(buf)
	require.NoError(t, err)
	require.Equal(t, "data: one\n\n", string(buf[:n]))
	_, ended := c.End()
	assert.False(t, ended, "the body has not ended yet")
	between := time.Now()
	close(release)
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "data: two\n\n", string(rest))
	after := time.Now()

	events := c.Events()
	require.Len(t, events, 2)
	assert.False(t, c.Sent.Before(before), "Sent is when the request left")
	assert.False(t, c.Headers.Before(c.Sent), "headers arrive after the request left")
	assert.False(t, events[0].At.Before(c.Headers), "the first event arrives with or after the headers")
	assert.True(t, events[0].At.Before(between), "the first event was read before the server released the second")
	assert.True(t, events[1].At.After(between), "the second event arrived after the server released it")
	end, ended := c.End()
	require.True(t, ended, "the body reported its end")
	assert.False(t, end.Before(events[1].At), "the end comes after the last event")
	assert.False(t, end.After(after))
}
