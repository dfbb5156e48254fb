package copilot

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"time"
)

// Tap is an http.RoundTripper that records the raw body of each response and when each
// piece of it arrived. SDKs hide both; a stream check needs them.
type Tap struct {
	Base http.RoundTripper

	mu       sync.Mutex
	captures []*Capture
}

// Capture is one recorded response.
type Capture struct {
	Status int
	Header http.Header
	Sent   time.Time // when the request left

	mu    sync.Mutex
	reads []Read
}

// Read is one piece of a body as the transport delivered it.
type Read struct {
	At   time.Time
	Data []byte
}

// RoundTrip implements http.RoundTripper.
func (t *Tap) RoundTrip(req *http.Request) (*http.Response, error) {
	sent := time.Now()
	resp, err := t.Base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	c := &Capture{Status: resp.StatusCode, Header: resp.Header.Clone(), Sent: sent}
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
func (c *Capture) Reads() []Read {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Read(nil), c.reads...)
}

// Body is the whole body received so far.
func (c *Capture) Body() []byte {
	var b bytes.Buffer
	for _, r := range c.Reads() {
		b.Write(r.Data)
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
		b.c.reads = append(b.c.reads, Read{At: time.Now(), Data: bytes.Clone(p[:n])})
		b.c.mu.Unlock()
	}
	return n, err
}
