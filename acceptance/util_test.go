package acceptance

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"
)

// maxBody bounds what a check reads from one response.
const maxBody = 16 << 20

func readAll(resp *http.Response) ([]byte, error) {
	return io.ReadAll(io.LimitReader(resp.Body, maxBody))
}

// credentials is one way a client presents itself.
type credentials struct {
	name  string
	apply func(*http.Request)
	valid bool
	// unjudgeable, when set, says why this row cannot tell right from wrong here.
	unjudgeable string
}

// credentialMatrix is every way of (not) authenticating the front door must tell apart.
func credentialMatrix() []credentials {
	wrong := "not-the-" + target.Password
	otherCase := swapCase(target.Password)
	return []credentials{
		{name: "none", apply: func(*http.Request) {}},
		{name: "wrong_basic", apply: func(r *http.Request) { r.SetBasicAuth(target.Username, wrong) }},
		{name: "wrong_user_basic", apply: func(r *http.Request) { r.SetBasicAuth("not-"+target.Username, target.Password) }},
		{name: "wrong_bearer", apply: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+wrong) }},
		// Near misses: a check that compares loosely lets these through.
		{name: "bearer_one_char_changed", apply: bearer(oneCharChanged(target.Password))},
		{name: "bearer_password_plus_suffix", apply: bearer(target.Password + "x")},
		// RFC 7235 §2.1: the scheme is case-insensitive, the token is not. So the token in
		// another case must be refused; "bearer" with the right token is not judged (Cline
		// and the OpenAI SDK send "Bearer", and either answer is defensible).
		{name: "bearer_token_other_case", apply: bearer(otherCase), unjudgeable: noLetters(otherCase)},
		{name: "basic_empty_user", apply: func(r *http.Request) { r.SetBasicAuth("", target.Password) }},
		// The API-key-as-user convention (key as the user, empty password) is not the appliance's.
		{name: "basic_password_as_user", apply: func(r *http.Request) { r.SetBasicAuth(target.Password, "") }},
		{name: "right_basic", apply: basicAuth, valid: true},
		{name: "right_bearer", apply: bearerAuth, valid: true},
	}
}

func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// oneCharChanged changes the last character of s.
func oneCharChanged(s string) string {
	if s == "" {
		return "x"
	}
	last := byte('a')
	if s[len(s)-1] == last {
		last = 'b'
	}
	return s[:len(s)-1] + string(last)
}

// swapCase turns lower-case letters upper-case and upper-case lower-case.
func swapCase(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsUpper(r) {
			return unicode.ToLower(r)
		}
		return unicode.ToUpper(r)
	}, s)
}

// noLetters explains why a case-swapped password is no near miss: it has no letters.
func noLetters(swapped string) string {
	if swapped == target.Password {
		return "the password has no letters, so no other-case token exists"
	}
	return ""
}

func basicAuth(r *http.Request)  { r.SetBasicAuth(target.Username, target.Password) }
func bearerAuth(r *http.Request) { r.Header.Set("Authorization", "Bearer "+target.Password) }

// newRequest builds a request to the endpoint; a non-empty body is sent as JSON.
func newRequest(t *testing.T, method, path, body string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, target.URL(path), rd)
	if err != nil {
		t.Fatalf("build request %s %s: %v", method, path, err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// isJSONError tells whether a body is an OpenAI-style JSON error object.
func isJSONError(resp *http.Response, body []byte) bool {
	return strings.Contains(resp.Header.Get("Content-Type"), "json") && bytes.Contains(body, []byte(`"error"`))
}

// netDialer bounds raw connections made outside an http.Client.
var netDialer = net.Dialer{Timeout: 30 * time.Second}

// routeName spells a route as a test name without slashes: GET /v1/models -> GET_v1_models.
func routeName(method, path string) string {
	name := strings.Trim(strings.NewReplacer("/", "_", "?", "_", "=", "_").Replace(path), "_")
	if name == "" {
		name = "root"
	}
	return method + "_" + name
}
