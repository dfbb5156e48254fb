package copilot

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"time"
)

// Tap is an http.RoundTripper that records the raw body of each response, piece by piece
// as the transport delivered it, and when each piece arrived. SDKs hide both; a stream
// check needs them: whether content came while it was generated is a question of time,
// not of how many reads carried it (a relay may coalesce a fast engine's writes).
type Tap struct {
	Base http.RoundTripper

	mu       sync.Mutex
	captures []*Capture
}

// Capture is one recorded response. Its times carry Go's monotonic clock reading, so
// differences between them are immune to wall-clock steps.
type Capture struct {
	Status int
	Header http.Header
	// Sent is when the request was handed to the transport; Headers is when the
	// response's status line and headers had arrived.
	Sent, Headers time.Time

	mu    sync.Mutex
	reads []Read
	end   time.Time // when the body reported its end (EOF or an error); zero until then
}

// Read is one piece of the body as one read returned it.
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
	c := &Capture{Status: resp.StatusCode, Header: resp.Header.Clone(), Sent: sent, Headers: time.Now()}
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

// Reads are the body's pieces in arrival order, each with its arrival time.
func (c *Capture) Reads() []Read {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Read(nil), c.reads...)
}

// End is when the body reported its end (EOF, or the error that cut it), and whether
// it has yet.
func (c *Capture) End() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.end, !c.end.IsZero()
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
	now := time.Now()
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	if n > 0 {
		b.c.reads = append(b.c.reads, Read{At: now, Data: bytes.Clone(p[:n])})
	}
	if err != nil && b.c.end.IsZero() {
		b.c.end = now
	}
	return n, err
}
