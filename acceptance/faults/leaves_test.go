package faults

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

// nginxVersionHeader is how the suite reports nginx naming its version in Server.
const nginxVersionHeader = `header Server: "nginx/`

// otherOrigin is how the suite reports cors_other_origin's Access-Control-Allow-Origin.
const otherOrigin = `Access-Control-Allow-Origin "https://example.invalid" admits neither`

// redirectRows are the acceptance suite's TestHTTPRedirect leaves and the path each asks for.
var redirectRows = map[string]string{"GET_root": "/", "GET_v1_models": "/v1/models", "POST_v1_chat_completions": "/v1/chat/completions", "GET_readyz_probe_1": "/readyz?probe=1"}

// redirectFails expects the rows whose path matches to fail with reason, where PATH
// stands for the row's path.
func redirectFails(reason string, match func(path string) bool) map[string]string {
	m := map[string]string{}
	for row, path := range redirectRows {
		if match(path) {
			m["TestHTTPRedirect/"+row] = strings.ReplaceAll(reason, "PATH", path)
		}
	}
	return m
}

func anyPath(string) bool { return true }

// redirectTo rewrites the plain-HTTP server's redirect target (rendered as
// https://$host:PORT$request_uri) into target, where PORT stands for the HTTPS port.
func redirectTo(target string) func(*reference.Files) error {
	return func(f *reference.Files) error {
		port := strconv.Itoa(f.HTTPSPort)
		return replace(f.Site, "return 301 https://$host:"+port+"$request_uri;", "return 301 "+strings.ReplaceAll(target, "PORT", port)+";")
	}
}

// leafFaults break, one each, the properties whose checks no other fault requires.
func leafFaults() []fault {
	wrongUser := "not-" + reference.Username // the acceptance suite's wrong_user_basic
	password := randomCanary()
	wrongUserFails := map[string]string{}
	for _, r := range everyRoute {
		wrongUserFails["TestAuthentication/"+r+"/wrong_user_basic"] = "with wrong_user_basic credentials: expected 401, got"
	}
	relay := &uploadLimitRelay{limit: 16 << 20}
	return []fault{
		{
			// A second account shares the password (a leftover user): Basic must also check the user.
			name:   "basic_other_user_accepted",
			opts:   func(o *reference.Options) { o.Password = password },
			tamper: htpasswd(wrongUser, password),
			fails:  wrongUserFails,
		},
		{
			name:   "redirect_to_http",
			tamper: redirectTo("http://$host:PORT$request_uri"),
			fails:  redirectFails(`scheme "http", not HTTPS`, anyPath),
		},
		{
			// A hard-coded name instead of the host the client asked for.
			name:   "redirect_to_other_host",
			tamper: redirectTo("https://localhost:PORT$request_uri"),
			fails:  redirectFails(`host "localhost", not the HTTPS endpoint's`, anyPath),
		},
		{
			name:   "redirect_drops_port",
			tamper: redirectTo("https://$host$request_uri"),
			fails:  redirectFails("port 443, not the HTTPS endpoint's", anyPath),
		},
		{
			name:   "redirect_to_root",
			tamper: redirectTo("https://$host:PORT/"),
			fails:  redirectFails("redirect of PATH loses the path", func(p string) bool { return p != "/" }),
		},
		{
			// $uri is the path without its query string.
			name:   "redirect_drops_query",
			tamper: redirectTo("https://$host:PORT$uri"),
			fails:  redirectFails("redirect of PATH loses the query", func(p string) bool { return p == "/readyz?probe=1" }),
		},
		{
			name:   "cors_methods_lack_post",
			tamper: edit(site, `Access-Control-Allow-Methods "GET, POST, OPTIONS"`, `Access-Control-Allow-Methods "GET, OPTIONS"`),
			fails:  map[string]string{"TestCORS/preflight": `Access-Control-Allow-Methods "GET, OPTIONS" lacks POST`},
		},
		{
			name:   "cors_headers_lack_authorization",
			tamper: edit(site, `Access-Control-Allow-Headers "Authorization, Content-Type,`, `Access-Control-Allow-Headers "Content-Type,`),
			fails:  map[string]string{"TestCORS/preflight": "lacks authorization"},
		},
		{
			name:   "certificate_not_yet_valid",
			tamper: certificate(time.Now().Add(24*time.Hour), time.Now().Add(48*time.Hour), "127.0.0.1"),
			fails:  map[string]string{"TestCertificate/valid_now": "certificate not valid before"},
		},
		{
			// The non-streamed answer arrives, but its text is gone.
			name:   "chat_content_empty",
			tamper: rewriteBodies(`"message":{"role":"assistant","content":"`, `"message":{"role":"assistant","content":"","dropped":"`, "application/json"),
			fails:  map[string]string{"TestChatCompletion": `empty content (finish_reason "length"`},
		},
		{
			name:   "chat_without_choices",
			tamper: rewriteBodies(`"choices":[`, `"choices":[],"dropped":[`, "application/json"),
			fails:  map[string]string{"TestChatCompletion": "no choices in the response"},
		},
		{
			name:   "chat_completion_tokens_zero",
			tamper: rewriteBodies(`"completion_tokens":`, `"completion_tokens":0,"counted":`, "application/json"),
			fails:  map[string]string{"TestChatCompletion": "usage.completion_tokens missing or zero"},
		},
		{
			name:   "model_list_empty",
			tamper: rewriteBodies(`"data":[`, `"data":[],"dropped":[`, "application/json"),
			fails: map[string]string{"TestClineRequest/model_list_refresh": "Cline would show an empty model list",
				"TestModelListed": "is not listed (got [])"},
		},
		{
			// CORS for one fixed web origin, not for the editor's webview.
			name:   "cors_other_origin",
			tamper: edit(site, `add_header Access-Control-Allow-Origin "*" always;`, `add_header Access-Control-Allow-Origin "https://example.invalid" always;`),
			fails: map[string]string{"TestCORS/preflight": otherOrigin, "TestCORS/headers_health": otherOrigin,
				"TestCORS/headers_unauthorized": otherOrigin, "TestCORS/headers_authorized": otherOrigin},
		},
		{
			// Between the front door and the engine, a hop that hangs up on large uploads, as
			// an engine with a smaller upload limit of its own does: nginx answers 502.
			name:   "engine_hangs_up_on_large_body",
			tamper: relay.tamper,
			after:  relay.stopWithTest,
			fails:  map[string]string{"TestRequestBodyLimit": "-byte request got 502: the front door could not pass it to the engine"},
		},
	}
}

func randomCanary() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "canary-" + hex.EncodeToString(b)
}

// uploadLimitRelay passes every request on to the engine, except that it closes the
// connection on a request body over limit without reading it.
type uploadLimitRelay struct {
	limit int64
	srv   *http.Server
}

// tamper starts the relay and points the front door's upstream at it, so the instance
// starts through it.
func (r *uploadLimitRelay) tamper(f *reference.Files) error {
	engineAddr := f.Upstream
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	proxy := engineProxy(engineAddr)
	r.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.ContentLength > r.limit {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		proxy.ServeHTTP(w, req)
	})}
	go func() { _ = r.srv.Serve(l) }()
	return replace(f.Site, "server "+engineAddr+";", "server "+l.Addr().String()+";")
}

// stopWithTest stops the relay when the test ends.
func (r *uploadLimitRelay) stopWithTest(t *testing.T, _ *reference.Instance) {
	require.NotNil(t, r.srv, "the relay's tamper did not run")
	t.Cleanup(func() { _ = r.srv.Close() })
}
