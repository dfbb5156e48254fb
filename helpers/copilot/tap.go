package copilot

import (
	"bytes"
	"io"
	"net/http"
	"sync"
)

// Tap is an http.RoundTripper that records the raw body of each response, piece by piece
// as the transport delivered it. SDKs hide both; a stream check needs them.
type Tap struct {
	Base http.RoundTripper

	mu       sync.Mutex
	captures []*Capture
}

// Capture is one recorded response.
type Capture struct {
	Status int
	Header http.Header

	mu    sync.Mutex
	reads [][]byte // the body's pieces, one per read that returned data
}

// RoundTrip implements http.RoundTripper.
func (t *Tap) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.Base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	c := &Capture{Status: resp.StatusCode, Header: resp.Header.Clone()}
	t.mu.Lock()
	t.captures = append(t.captures, c)
	t.mu.Unlock()
	resp.Body = &tapBody{ReadCloser: resp.Body, c: c}
	return resp, nil
}

// Last is the most recent response, or nil.
func (t *Tap) Last() *Capture {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.captures) == 0 {
		return nil
	}
	return t.captures[len(t.captures)-1]
}

// Reads are the body's pieces in arrival order.
func (c *Capture) Reads() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.reads...)
}

// Body is the whole body received so far.
func (c *Capture) Body() []byte {
	var b bytes.Buffer
	for _, r := range c.Reads() {
		b.Write(r)
	}
	return b.Bytes()
}

type tapBody struct {
	io.ReadCloser
	c *Capture
}

func (b *tapBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.c.mu.Lock()
		b.c.reads = append(b.c.reads, bytes.Clone(p[:n]))
		b.c.mu.Unlock()
	}
	return n, err
}
