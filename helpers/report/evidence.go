package report

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

// Excerpt bounds: a body keeps its head and its tail (where a stream's usage, [DONE] or
// an error sits), cut on UTF-8 boundaries, after redaction.
const (
	excerptHead = 1536
	excerptTail = 512
)

// credentialHeader matches header names whose values are credentials: they are shown as
// their scheme only ("Bearer [withheld]"), never their value.
var credentialHeader = regexp.MustCompile(`(?i)authorization|api-?key|token|secret|cookie`)

// Withheld replaces a credential header's value.
const Withheld = "[withheld]"

// Exchange is the evidence of one HTTP exchange: the request line (the URL without
// user information), its headers and the response's status, headers and body. resp
// and body may be nil (no response).
func Exchange(req *http.Request, resp *http.Response, body []byte) Evidence {
	ev := Evidence{}
	if req != nil {
		ev.Request = RequestLine(req)
		ev.RequestHeaders = Headers(req.Header)
	}
	if resp != nil {
		ev.Status = resp.StatusCode
		ev.Headers = Headers(resp.Header)
	}
	ev.BodyExcerpt = string(body)
	return ev
}

// FromCapture is the evidence of a response recorded by copilot.Tap, with the timeline
// of its server-sent events (arrival offsets from the request). request is the request
// line ("POST /v1/chat/completions"): a Capture does not keep it.
func FromCapture(request string, c *copilot.Capture) Evidence {
	s := metrics.FromCapture("", c)
	return Evidence{
		Request: request, Status: c.Status, Headers: Headers(c.Header),
		BodyExcerpt: string(c.Body()), Timeline: s.Events,
	}
}

// RequestLine is "METHOD URL" with any user information dropped from the URL.
func RequestLine(req *http.Request) string {
	u := *req.URL
	u.User = nil
	return req.Method + " " + u.String()
}

// Headers flattens h (values joined by ", "), with credential values withheld.
func Headers(h http.Header) map[string]string {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string]string, len(h))
	for k, vs := range h {
		v := strings.Join(vs, ", ")
		if credentialHeader.MatchString(k) {
			v = withhold(vs)
		}
		out[k] = v
	}
	return out
}

// withhold keeps an authorization scheme ("Basic", "Bearer") and hides the rest.
func withhold(vs []string) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		scheme, _, ok := strings.Cut(strings.TrimSpace(v), " ")
		if ok && (strings.EqualFold(scheme, "basic") || strings.EqualFold(scheme, "bearer")) {
			parts[i] = scheme + " " + Withheld
		} else {
			parts[i] = Withheld
		}
	}
	return strings.Join(parts, ", ")
}

// excerpt keeps the head and tail of s.
func excerpt(s string) string {
	if len(s) <= excerptHead+excerptTail+64 {
		return s
	}
	head := s[:excerptHead]
	for len(head) > 0 && !utf8.ValidString(head) {
		head = head[:len(head)-1]
	}
	tail := s[len(s)-excerptTail:]
	for len(tail) > 0 && !utf8.ValidString(tail) {
		tail = tail[1:]
	}
	return head + "\n… [" + strconv.Itoa(len(s)-len(head)-len(tail)) + " bytes left out] …\n" + tail
}
