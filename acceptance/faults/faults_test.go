package faults

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

// Phrases of the suite's messages that name what came back.
const (
	notTLS        = "first record does not look like a TLS handshake" // Go's TLS client, answered in plain HTTP
	notTLSRefusal = "an error that is no TLS refusal: tls: " + notTLS // a refused row answered in plain HTTP
	noAllowOrigin = "), got []"                                       // no Access-Control-Allow-Origin at all
	// The engine's echo of the request's Origin beside the front door's "*".
	engineAndOwnOrigin = `got ["vscode-webview://slm-copilot-acceptance" "*"]`
)

// fault breaks exactly one property of a reference appliance.
type fault struct {
	name   string
	tamper func(*reference.Files) error          // edits the rendered front door before start
	opts   func(*reference.Options)              // changes how the instance starts
	after  func(*testing.T, *reference.Instance) // breaks the running instance
	args   func(*testing.T, *reference.Instance) []string
	// fails are the checks that must fail, each with a phrase its output must contain
	// (the right reason); mayFail are checks the fault legitimately takes down too
	// ("*": all). Every other check must pass.
	fails   map[string]string
	mayFail []string
}

// everyRoute lists the acceptance suite's names of the engine's API routes.
var everyRoute = []string{"GET_root", "GET_v1_models", "POST_v1_chat_completions", "POST_v1_completions", "POST_v1_embeddings"}

func perRoute(cred, reason string) map[string]string {
	m := map[string]string{}
	for _, r := range everyRoute {
		m["TestAuthentication/"+r+"/"+cred] = reason
	}
	return m
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// engineChecks are the checks that need a working path to the engine.
var engineChecks = []string{"TestModelListed", "TestChatCompletion", "TestChatStream", "TestClineRequest", "TestClineToolCall", "TestRequestBodyLimit", "TestAuthentication", "TestCORS/headers_authorized", "TestNoVersionDisclosure/not_found"}

func faults() []fault {
	fs := []fault{
		{
			name:   "old_tls_versions_allowed",
			tamper: edit(site, "ssl_protocols       TLSv1.2 TLSv1.3;", "ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;", "ssl_ciphers         ECDHE", "ssl_ciphers DEFAULT:@SECLEVEL=0; #"),
			fails:  map[string]string{"TestTLSVersions/TLS1.0_refused": "to be refused, but the handshake succeeded", "TestTLSVersions/TLS1.1_refused": "to be refused, but the handshake succeeded"},
		},
		{
			name:   "tls12_refused",
			tamper: edit(site, "ssl_protocols       TLSv1.2 TLSv1.3;", "ssl_protocols TLSv1.3;"),
			fails:  map[string]string{"TestTLSVersions/TLS1.2_accepted": "protocol version not supported"},
		},
		{
			name: "plain_http_instead_of_tls",
			tamper: func(f *reference.Files) error {
				addr := net.JoinHostPort(f.Address, strconv.Itoa(f.HTTPSPort))
				return replace(f.Site, "listen "+addr+" ssl;", "listen "+addr+";")
			},
			// The preflight would end the run here (TestPreflight): the checks must fail too.
			args: func(t *testing.T, in *reference.Instance) []string { return []string{"-preflight=false"} },
			fails: map[string]string{"TestTLSVersions/TLS1.2_accepted": notTLS, "TestTLSVersions/TLS1.3_accepted": notTLS, "TestCertificate": notTLS,
				"TestTLSVersions/TLS1.0_refused": notTLSRefusal, "TestTLSVersions/TLS1.1_refused": notTLSRefusal},
			mayFail: []string{"*"},
		},
		{
			// Nothing listens where the suite connects: a refused connection is no TLS version policy.
			name: "nothing_listening",
			args: func(t *testing.T, _ *reference.Instance) []string {
				return []string{"-endpoint", "https://" + closedAddress(t), "-preflight=false"}
			},
			fails:   map[string]string{"TestTLSVersions/TLS1.0_refused": "a dial failure, no TLS at all", "TestTLSVersions/TLS1.1_refused": "a dial failure, no TLS at all"},
			mayFail: []string{"*"},
		},
		{
			name:   "certificate_expired",
			tamper: certificate(time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), "127.0.0.1"),
			fails:  map[string]string{"TestCertificate/valid_now": "certificate expired"},
		},
		{
			name:   "certificate_san_misses_host",
			tamper: certificate(time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), "10.9.8.7"),
			fails:  map[string]string{"TestCertificate/san_covers_host": "does not cover"},
		},
		{
			name: "certificate_not_signed_by_ca_cert",
			args: func(t *testing.T, _ *reference.Instance) []string {
				return []string{"-ca-cert", writeOtherCA(t)}
			},
			fails:   map[string]string{"TestCertificate/chain": "certificate signed by unknown authority"},
			mayFail: []string{"*"},
		},
		{
			name:   "version_disclosed",
			tamper: func(f *reference.Files) error { return replaceN(f.Site, "server_tokens off;", "server_tokens on;", 2) },
			// Every response of the front door now names nginx with its version.
			fails: map[string]string{"TestNoVersionDisclosure/health": nginxVersionHeader, "TestNoVersionDisclosure/unauthorized": nginxVersionHeader,
				"TestNoVersionDisclosure/not_found": nginxVersionHeader, "TestNoVersionDisclosure/malformed_request": nginxVersionHeader,
				"TestNoVersionDisclosure/plain_http": nginxVersionHeader},
		},
		{
			name:   "no_redirect",
			tamper: edit(site, "return 301 https://$host", "proxy_pass http://slm_copilot_engine; #"),
			fails: map[string]string{"TestHTTPRedirect/GET_root": "plain HTTP GET /: expected a redirect to HTTPS, got",
				"TestHTTPRedirect/GET_v1_models":            "plain HTTP GET /v1/models: expected a redirect to HTTPS, got",
				"TestHTTPRedirect/POST_v1_chat_completions": "plain HTTP POST /v1/chat/completions: expected a redirect to HTTPS, got",
				"TestHTTPRedirect/GET_readyz_probe_1":       "plain HTTP GET /readyz?probe=1: expected a redirect to HTTPS, got"},
			mayFail: []string{"TestNoVersionDisclosure/plain_http"},
		},
		{
			name: "health_behind_auth",
			tamper: edit(site,
				"location = /readyz {", "location = /readyz {\n        auth_basic $slm_copilot_basic_realm; auth_basic_user_file "+"HTPASSWD;",
				"location = /health {", "location = /health {\n        auth_basic $slm_copilot_basic_realm; auth_basic_user_file "+"HTPASSWD;"),
			fails: map[string]string{"TestHealthEndpoints/GET_readyz": "got 401", "TestHealthEndpoints/GET_health": "got 401"},
		},
		{
			name:  "engine_down",
			after: func(_ *testing.T, in *reference.Instance) { in.StopEngine() },
			fails: merge(map[string]string{"TestHealthEndpoints/GET_readyz": "got 503", "TestHealthEndpoints/GET_health": "got 503"},
				perRoute("right_basic", "got 502 from the front door"), perRoute("right_bearer", "got 502 from the front door")),
			mayFail: append([]string{"TestCORS/headers_health", "TestNoVersionDisclosure/health"}, engineChecks...),
		},
		{
			name:   "bearer_refused",
			tamper: edit(secrets, `'~^Bearer\ `, `'~^Bearer\ never-this-`),
			fails: merge(perRoute("right_bearer", "refuses the password"), map[string]string{"TestModelListed": "status code: 401", "TestChatCompletion": "status code: 401", "TestClineRequest/task": "status code: 401", "TestClineRequest/model_list_refresh": "status code: 401",
				"TestRequestBodyLimit": "the password was refused (401"}),
			mayFail: []string{"TestChatStream", "TestCORS/headers_authorized", "TestNoVersionDisclosure/not_found", "TestClineRequest", "TestClineToolCall"},
		},
		{
			name:   "any_bearer_accepted",
			tamper: edit(secrets, `'~^Bearer\ `, `'~^Bearer\ (?:.*)|`),
			fails: merge(perRoute("wrong_bearer", "with wrong_bearer credentials: expected 401, got"),
				refusedRow("bearer_one_char_changed"), refusedRow("bearer_password_plus_suffix"), refusedRow("bearer_token_other_case")),
		},
		{
			name:   "basic_refused",
			tamper: htpasswd(reference.Username, "some-other-password"),
			fails:  perRoute("right_basic", "refuses the password"),
		},
		{
			name:    "unauthorized_body_not_json",
			tamper:  edit(site, "error_page 401 @slm_copilot_unauthorized;", ""),
			fails:   merge(perRoute("none", `expected a JSON error body, got Content-Type "text/html"`), unauthorizedNotJSON()),
			mayFail: []string{"TestAuthentication"},
		},
		{
			name:   "client_credentials_forwarded",
			tamper: edit(site, "proxy_set_header Authorization $slm_copilot_engine_auth;", ""),
			// llama-server serves / without its key; every other route must refuse the forwarded credentials.
			fails: map[string]string{
				"TestAuthentication/GET_v1_models/right_bearer": "forwards the client's credentials", "TestAuthentication/GET_v1_models/right_basic": "forwards the client's credentials",
				"TestAuthentication/POST_v1_chat_completions/right_bearer": "forwards the client's credentials", "TestAuthentication/POST_v1_chat_completions/right_basic": "forwards the client's credentials",
			},
			mayFail: engineChecks,
		},
		{
			name:   "cors_missing",
			tamper: edit(site, "add_header Access-Control-Allow-Origin", "# add_header Access-Control-Allow-Origin"),
			fails: map[string]string{"TestCORS/preflight": noAllowOrigin, "TestCORS/headers_health": noAllowOrigin,
				"TestCORS/headers_unauthorized": noAllowOrigin, "TestCORS/headers_authorized": noAllowOrigin},
		},
		{
			name:   "engine_cors_not_hidden",
			tamper: edit(site, "proxy_hide_header Access-Control-Allow-Origin;", ""),
			fails:  map[string]string{"TestCORS/headers_authorized": engineAndOwnOrigin, "TestCORS/headers_health": engineAndOwnOrigin},
		},
		{
			name:   "preflight_needs_auth",
			tamper: edit(site, "if ($request_method = OPTIONS) {\n        return 204;\n    }", ""),
			fails:  map[string]string{"TestCORS/preflight": "expected 204, got 401"},
		},
		{
			name:    "stream_buffered",
			tamper:  edit(site, "proxy_buffering off;", "proxy_buffering on;"),
			fails:   map[string]string{"TestChatStream/incremental": streamBuffered},
			mayFail: clineStreams,
		},
		{
			name:    "stream_terminator_missing",
			tamper:  rewriteBodies(`data: [DONE]`, ``, "text/event-stream"),
			fails:   map[string]string{"TestChatStream/done_terminator": `the stream's last event is "{`, "TestClineRequest/task": `the stream's last event is "{`},
			mayFail: []string{"TestClineRequest/concurrency/two_streams_at_once", "TestClineRequest/context_window/cline_sized_prompt", "TestClineToolCall"},
		},
		{
			name:    "stream_content_type_wrong",
			tamper:  edit(site, "proxy_hide_header X-Powered-By;", "proxy_hide_header X-Powered-By;\n    proxy_hide_header Content-Type;"),
			fails:   map[string]string{"TestChatStream/content_type": `streamed response has Content-Type ""`},
			mayFail: engineChecks,
		},
		{
			name:   "engine_error_as_content",
			tamper: rewriteBodies(`"content":"`, `"content":"Internal error: injected `, "application/json text/event-stream"),
			fails:  map[string]string{"TestChatCompletion": "reported an error", "TestChatStream/no_engine_error": "reported an error", "TestClineRequest/task": "reported an error"},
		},
		{
			name:    "model_id_wrong",
			opts:    func(o *reference.Options) { o.Model = "some-other-model" },
			fails:   map[string]string{"TestModelListed": `is not listed (got ["some-other-model"])`},
			mayFail: []string{"TestChatCompletion", "TestChatStream", "TestClineRequest", "TestClineToolCall", "TestAuthentication", "TestRequestBodyLimit"},
		},
		{
			// The stream's chunks arrive, but their text is gone.
			name:   "stream_without_content",
			tamper: rewriteBodies(`"delta":{"content":"`, `"delta":{"content":"","dropped":"`, "text/event-stream"),
			fails: map[string]string{"TestChatStream/several_chunks": "content chunks", "TestChatStream/incremental": "too few content events to time",
				"TestClineRequest/task": "Cline's request produced no content"},
		},
		{
			name:   "finish_reason_missing",
			tamper: rewriteBodies(`"finish_reason":"length"`, `"finish_reason":null`, "application/json text/event-stream"),
			fails:  map[string]string{"TestChatCompletion": "no finish_reason", "TestChatStream/finish_reason": "no chunk carried a finish_reason"},
			// Cline's streams end the same way when their answer runs to its length: the
			// closing chunk is then an empty delta without a reason.
			mayFail: []string{"TestClineToolCall/tool_result_accepted", "TestClineRequest/deltas_carry_content", "TestClineRequest/finish_reason_last"},
		},
		{
			name:   "usage_missing",
			tamper: rewriteBodies(`"usage":{`, `"usage_elsewhere":{`, "application/json"),
			fails:  map[string]string{"TestChatCompletion": "usage.prompt_tokens missing"},
		},
		{
			name:   "body_limit_too_small",
			tamper: edit(site, "client_max_body_size 50m;", "client_max_body_size 1m;"),
			fails:  map[string]string{"TestRequestBodyLimit": "request was refused with 413"},
		},
		{
			name:    "read_timeout_too_short",
			tamper:  edit(site, "proxy_read_timeout 600s;", "proxy_read_timeout 1ms;"),
			fails:   map[string]string{"TestChatCompletion": "proxy_read_timeout"},
			mayFail: append([]string{"TestHealthEndpoints", "TestCORS/headers_health", "TestNoVersionDisclosure/health"}, engineChecks...),
		},
	}
	fs = append(fs, exposureFaults()...)
	fs = append(fs, leafFaults()...)
	fs = append(fs, nearMissFaults()...)
	fs = append(fs, clineFaults()...)
	fs = append(fs, streamFaults()...)
	fs = append(fs, toolFaults()...)
	for _, route := range everyRoute {
		path := map[string]string{"GET_root": "/", "GET_v1_models": "/v1/models", "POST_v1_chat_completions": "/v1/chat/completions",
			"POST_v1_completions": "/v1/completions", "POST_v1_embeddings": "/v1/embeddings"}[route]
		fs = append(fs, fault{
			name:   "auth_off_on_" + route,
			tamper: openLocation("= " + path),
			fails: map[string]string{
				"TestAuthentication/" + route + "/none":         "with none credentials: expected 401, got",
				"TestAuthentication/" + route + "/wrong_basic":  "with wrong_basic credentials: expected 401, got",
				"TestAuthentication/" + route + "/wrong_bearer": "with wrong_bearer credentials: expected 401, got",
			},
			mayFail: append([]string{"TestAuthentication/" + route}, sameRouteSpelledOtherwise[route]...),
		})
	}
	return fs
}

func TestEveryCheckCanFail(t *testing.T) {
	for _, f := range faultRuns() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			opts := reference.Options{Tamper: f.tamper}
			if f.opts != nil {
				f.opts(&opts)
			}
			in := startInstance(t, opts)
			if f.after != nil {
				f.after(t, in)
			}
			var extra []string
			if f.args != nil {
				extra = f.args(t, in)
			}
			if !f.related(clineContextWindow) { // a minute of prefill: only where the fault concerns it
				extra = append(extra, "-skip", clineContextWindow)
			}
			run := runSuite(t, in, extra...)
			key, err := os.ReadFile(in.Files.EngineKey)
			require.NoError(t, err, "read the engine key")
			assert.NotContains(t, run.all, strings.TrimSpace(string(key)), "the acceptance suite printed the engine's key")
			for name, reason := range f.fails {
				actions, ran := run.results[name]
				if !assert.True(t, ran, "check %s did not run", name) {
					continue
				}
				assert.Equal(t, []string{"fail"}, actions, "check %s should fail with %s, but: %v\n%s", name, f.name, actions, run.output[name])
				assert.Contains(t, run.output[name], reason, "check %s failed, but not for the expected reason (%q)", name, reason)
			}
			if f.args == nil { // without -ca-cert, as a user runs the suite
				dropUnjudgeable(t, run)
			}
			for name, actions := range run.results {
				if f.related(name) {
					continue
				}
				assert.Equal(t, []string{"pass"}, actions, "unrelated check %s should pass with %s, but: %v\n%s", name, f.name, actions, run.output[name])
			}
		})
	}
}

// related tells whether a check's outcome is expected to depend on the fault.
func (f fault) related(test string) bool {
	for name := range f.fails {
		if isWithin(test, name) || isAncestor(test, name) {
			return true
		}
	}
	for _, name := range f.mayFail {
		if name == "*" || isWithin(test, name) || isAncestor(test, name) {
			return true
		}
	}
	return false
}

// TestCorrectApplianceAlwaysPasses runs the whole suite five times in a row against a
// correct appliance, as a user would against a VM (self-signed, no -ca-cert), then once
// verifying the chain with -ca-cert: no flakes.
func TestCorrectApplianceAlwaysPasses(t *testing.T) {
	t.Parallel()
	in := startInstance(t, reference.Options{})
	runs := map[int]*suiteRun{5: dropUnjudgeable(t, runSuite(t, in, "-count=5")), 1: runSuite(t, in, "-ca-cert", in.CACert)}
	for times, run := range runs {
		passedEveryTime(t, run, times)
		// TestMain fails a run that sent more model calls than make certify's -timeout allows for.
		assert.Zero(t, run.exitCode, "every check passed, yet go test ./acceptance failed:\n%s", run.all)
		assert.Contains(t, run.all, fmt.Sprintf("model calls in %d run(s)", times), "the suite did not report its model calls")
	}
}

// unjudgeable are the checks a correct appliance's run without -ca-cert cannot judge, and
// the reason each must print when it skips.
var unjudgeable = map[string]string{"TestCertificate/chain": "nothing to verify its chain against; pass -ca-cert"}

// dropUnjudgeable requires each unjudgeable check that ran to have skipped with its
// reason (never passed), then leaves it out of run's results.
func dropUnjudgeable(t *testing.T, run *suiteRun) *suiteRun {
	t.Helper()
	for name, reason := range unjudgeable {
		actions, ran := run.results[name]
		if !ran {
			continue
		}
		for _, a := range actions {
			assert.Equal(t, "skip", a, "%s cannot judge without -ca-cert, so it must skip, but: %v\n%s", name, actions, run.output[name])
		}
		assert.Contains(t, run.output[name], reason, "%s skipped without saying why", name)
		delete(run.results, name)
	}
	return run
}

// Tamper helpers -----------------------------------------------------------------------

func site(f *reference.Files) string    { return f.Site }
func secrets(f *reference.Files) string { return f.Secrets }
func guard(f *reference.Files) string   { return f.Guard }

// edit replaces each old with new (pairs) in the chosen file; a missing old is an error,
// so a template change cannot silently turn a fault into a no-op.
func edit(file func(*reference.Files) string, pairs ...string) func(*reference.Files) error {
	return func(f *reference.Files) error {
		for i := 0; i+1 < len(pairs); i += 2 {
			if err := replace(file(f), pairs[i], strings.ReplaceAll(pairs[i+1], "HTPASSWD", f.Htpasswd)); err != nil {
				return err
			}
		}
		return nil
	}
}

// replace replaces the one occurrence of old in path; none or several is an error, so an
// edit cannot silently miss or hit the wrong place.
func replace(path, old, new string) error {
	return replaceN(path, old, new, 1)
}

// replaceN replaces old, which must occur exactly n times.
func replaceN(path, old, new string, n int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if c := strings.Count(string(b), old); c != n {
		return fmt.Errorf("%s contains %q %d times, want %d", path, old, c, n)
	}
	return os.WriteFile(path, []byte(strings.ReplaceAll(string(b), old, new)), 0o600)
}

// rewriteBodies makes nginx rewrite from into to in the engine's responses of the given
// content types, as a broken proxy or engine would.
func rewriteBodies(from, to, types string) func(*reference.Files) error {
	return filterEngine(fmt.Sprintf("sub_filter '%s' '%s';\nsub_filter_once off;\nsub_filter_types %s;", from, to, types))
}

// withoutGuard sends chat completions straight to the engine, past no context guard.
var withoutGuard = edit(site, "js_content slm_copilot_guard.chat;", "rewrite ^ $uri break;\n        proxy_pass http://slm_copilot_engine;")

// filterEngine adds nginx directives (one per line) to both locations that proxy to the
// engine: the catch-all, and the one chat completions reach past the context guard.
func filterEngine(directives string) func(*reference.Files) error {
	const anchor = "proxy_pass http://slm_copilot_engine;\n    }"
	indented := strings.ReplaceAll("\n"+directives, "\n", "\n        ")
	return func(f *reference.Files) error {
		return replaceN(f.Site, anchor, "proxy_pass http://slm_copilot_engine;"+indented+"\n    }", 2)
	}
}

// certificate replaces the instance's TLS pair with one valid from notBefore to notAfter
// for the given IP addresses.
func certificate(notBefore, notAfter time.Time, ips ...string) func(*reference.Files) error {
	return func(f *reference.Files) error {
		certPEM, keyPEM, err := selfSigned(notBefore, notAfter, ips...)
		if err != nil {
			return err
		}
		if err := os.WriteFile(f.Cert, certPEM, 0o644); err != nil {
			return err
		}
		return os.WriteFile(f.Key, keyPEM, 0o600)
	}
}

func selfSigned(notBefore, notAfter time.Time, ips ...string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "slm-copilot fault"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// writeOtherCA writes a CA certificate that did not sign the instance's certificate.
func writeOtherCA(t *testing.T) string {
	t.Helper()
	certPEM, _, err := selfSigned(time.Now().Add(-time.Hour), time.Now().Add(time.Hour), "127.0.0.1")
	require.NoError(t, err)
	path := t.TempDir() + "/other-ca.pem"
	require.NoError(t, os.WriteFile(path, certPEM, 0o644))
	return path
}

// htpasswd sets user's password in the Basic credentials, replacing or adding the user.
func htpasswd(user, password string) func(*reference.Files) error {
	return func(f *reference.Files) error {
		cmd := exec.Command("htpasswd", "-iB", f.Htpasswd, user)
		cmd.Stdin = strings.NewReader(password)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("htpasswd: %w: %s", err, out)
		}
		return nil
	}
}

// exposedRoute is one leaf of the acceptance suite's TestNoOpenRoute and the request it makes.
type exposedRoute struct{ leaf, request string }

// Engine routes the suite tries without credentials (acceptance/exposure_test.go).
var (
	llamaServerRoutes = []exposedRoute{{"GET_props", "GET /props"}, {"GET_slots", "GET /slots"}, {"GET_metrics", "GET /metrics"},
		{"POST_tokenize", "POST /tokenize"}, {"POST_completion", "POST /completion"}, {"GET_models", "GET /models"}, {"POST_v1_messages", "POST /v1/messages"}}
	localAIRoutes = []exposedRoute{{"POST_models_apply", "POST /models/apply"}, {"GET_models_available", "GET /models/available"},
		{"GET_backends", "GET /backends"}, {"POST_backends_apply", "POST /backends/apply"}, {"GET_system", "GET /system"},
		{"GET_metrics", "GET /metrics"}, {"GET_version", "GET /version"}, {"POST_v1_responses", "POST /v1/responses"},
		{"GET_api_p2p", "GET /api/p2p"}, {"GET_api_traces", "GET /api/traces"}, {"GET_api_tags", "GET /api/tags"},
		{"GET_well_known_localai_json", "GET /.well-known/localai.json"}}
)

// openRoutes expects each route of group to fail because it was answered without
// credentials; the phrase names the request, so only that route's own answer matches.
func openRoutes(group string, routes ...exposedRoute) map[string]string {
	m := map[string]string{}
	for _, r := range routes {
		m["TestNoOpenRoute/"+group+"/"+r.leaf] = r.request + " without credentials: got"
	}
	return m
}

// openLocation adds a location, before the authenticated catch-all, that proxies to the
// engine without asking for credentials.
func openLocation(match string) func(*reference.Files) error {
	// Everything location / does but the credentials (the normalised path included).
	return edit(site, "    location / {\n        auth_basic", "    location "+match+" {\n        rewrite ^ $uri break;\n        proxy_pass http://slm_copilot_engine;\n    }\n\n    location / {\n        auth_basic")
}

// realmMap replaces the site's map that turns HTTP Basic off for a valid Bearer token.
func realmMap(source, entries string) func(*reference.Files) error {
	return edit(site, "map $slm_copilot_bearer_ok $slm_copilot_basic_realm {\n    1       off;\n    default \"SLM-Copilot\";\n}",
		"map \""+source+"\" $slm_copilot_basic_realm {\n    ~^1: off;\n"+entries+"}")
}

// outsideV1 are the routes whose path does not begin with /v1/.
func outsideV1(routes []exposedRoute) []exposedRoute {
	var out []exposedRoute
	for _, r := range routes {
		if !strings.Contains(r.request, " /v1/") {
			out = append(out, r)
		}
	}
	return out
}

// enginePorts are the ports the acceptance suite's TestEngineNotReachable tries.
var enginePorts = []int{8080, 8000, 11434, 1234, 5000}

// Spellings and methods of the API routes that the suite's TestNoOpenRoute tries.
var (
	pathVariants = []exposedRoute{{"double_slash", "GET /v1//models"}, {"trailing_slash", "GET /v1/models/"}, {"dot_segment", "GET /./v1/models"},
		{"percent_encoded", "GET /%76%31/models"}, {"upper_case", "GET /V1/models"}}
	methodVariants = []exposedRoute{{"HEAD_v1_models", "HEAD /v1/models"}, {"PUT_v1_models", "PUT /v1/models"}, {"DELETE_v1_models", "DELETE /v1/models"},
		{"HEAD_v1_chat_completions", "HEAD /v1/chat/completions"}, {"PUT_v1_chat_completions", "PUT /v1/chat/completions"},
		{"DELETE_v1_chat_completions", "DELETE /v1/chat/completions"}}
)

// sameRouteSpelledOtherwise are the TestNoOpenRoute leaves that an open exact-match
// location for an API route opens too (other methods; spellings nginx normalises to it).
var sameRouteSpelledOtherwise = map[string][]string{
	"GET_v1_models": {"TestNoOpenRoute/method/HEAD_v1_models", "TestNoOpenRoute/method/PUT_v1_models", "TestNoOpenRoute/method/DELETE_v1_models",
		"TestNoOpenRoute/path/double_slash", "TestNoOpenRoute/path/dot_segment", "TestNoOpenRoute/path/percent_encoded"},
	"POST_v1_chat_completions": {"TestNoOpenRoute/method/HEAD_v1_chat_completions", "TestNoOpenRoute/method/PUT_v1_chat_completions",
		"TestNoOpenRoute/method/DELETE_v1_chat_completions"},
}

// unauthorizedNotJSON expects every TestNoOpenRoute leaf to see a 401 that is not JSON.
func unauthorizedNotJSON() map[string]string {
	m := map[string]string{}
	for group, routes := range map[string][]exposedRoute{"path": pathVariants, "method": methodVariants, "llama_server": llamaServerRoutes, "localai": localAIRoutes} {
		for _, r := range routes {
			m["TestNoOpenRoute/"+group+"/"+r.leaf] = r.request + " without credentials: 401 but Content-Type"
		}
	}
	return m
}

// exposureFaults break "nothing open but the front door" one way each.
func exposureFaults() []fault {
	authenticatedExactly := ""
	for _, p := range []string{"/", "/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings"} {
		authenticatedExactly += fmt.Sprintf("    location = %s {\n        auth_basic $slm_copilot_basic_realm;\n        auth_basic_user_file HTPASSWD;\n        proxy_pass http://slm_copilot_engine;\n    }\n\n", p)
	}
	portFails := map[string]string{}
	for _, p := range enginePorts {
		portFails["TestEngineNotReachable/port_"+strconv.Itoa(p)] = fmt.Sprintf(":%d serves the engine's model list", p)
	}
	return []fault{
		{
			name:   "props_open",
			tamper: openLocation("= /props"),
			fails:  openRoutes("llama_server", exposedRoute{"GET_props", "GET /props"}),
		},
		{
			name:   "metrics_open",
			tamper: openLocation("= /metrics"),
			fails: merge(openRoutes("llama_server", exposedRoute{"GET_metrics", "GET /metrics"}),
				openRoutes("localai", exposedRoute{"GET_metrics", "GET /metrics"})),
		},
		{
			// Someone exempts "harmless" methods from HTTP Basic, say for monitoring probes.
			name:   "methods_skip_auth",
			tamper: realmMap("$slm_copilot_bearer_ok:$request_method", "    ~:(HEAD|PUT|DELETE)$ off;\n    default \"SLM-Copilot\";\n"),
			fails:  openRoutes("method", methodVariants...),
		},
		{
			// Credentials asked for on an allow-list of exact API paths, the rest proxied as
			// is: other spellings of the same paths, and every other route, are open.
			name: "auth_on_exact_paths_only",
			tamper: func(f *reference.Files) error {
				if err := replace(f.Site, "ssl_prefer_server_ciphers off;", "ssl_prefer_server_ciphers off;\n    merge_slashes off;"); err != nil {
					return err
				}
				return edit(site, "    location / {\n        auth_basic", authenticatedExactly+
					"    location / {\n        proxy_pass http://slm_copilot_engine;\n    }\n\n    location /never-used/ {\n        auth_basic")(f)
			},
			fails: merge(
				openRoutes("path", pathVariants[0], pathVariants[1], pathVariants[4]),
				openRoutes("llama_server", llamaServerRoutes...), openRoutes("localai", localAIRoutes...)),
			mayFail: []string{"TestClineRequest/trailing_slash_base_url"}, // merge_slashes off
		},
		{
			// Credentials decided on the raw request line: spellings nginx normalises
			// before routing (dot segments, percent-encoding) slip past.
			name:   "auth_on_raw_uri",
			tamper: realmMap("$slm_copilot_bearer_ok:$request_uri", "    ~^[^:]*:/(v1/|$) \"SLM-Copilot\";\n    default off;\n"),
			fails: merge(
				openRoutes("path", pathVariants[2], pathVariants[3], pathVariants[4]),
				openRoutes("llama_server", outsideV1(llamaServerRoutes)...), openRoutes("localai", outsideV1(localAIRoutes)...)),
		},
		{
			name: "health_shows_engine_props",
			tamper: func(f *reference.Files) error {
				return replaceN(f.Site, "slm_copilot_engine/health;", "slm_copilot_engine/props;", 2)
			},
			fails: map[string]string{"TestPublicEndpointsLeakNothing/GET_readyz/body": "says more than its status",
				"TestPublicEndpointsLeakNothing/GET_health/body": "says more than its status"},
		},
		{
			name: "health_passes_engine_server_header",
			tamper: func(f *reference.Files) error {
				return replaceN(f.Site, "slm_copilot_engine/health;", "slm_copilot_engine/health;\n        proxy_pass_header Server;", 2)
			},
			fails: map[string]string{"TestPublicEndpointsLeakNothing/GET_readyz/headers": "header Server names the engine",
				"TestPublicEndpointsLeakNothing/GET_health/headers": "header Server names the engine"},
		},
		{
			// An engine with no key on the instance's own address, at each usual port. The
			// instance gets an address of its own, so the ports are free there.
			name: "engine_reachable_without_key",
			opts: func(o *reference.Options) { o.Address, _ = reference.SpareLoopback(enginePorts...) },
			after: func(t *testing.T, in *reference.Instance) {
				require.NotEqual(t, "127.0.0.1", in.Files.Address, "no spare loopback address for the exposed engines")
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				for _, p := range enginePorts {
					require.NoError(t, in.ExposeEngine(ctx, in.Files.Address, p))
				}
			},
			fails: portFails,
		},
		{
			name:   "engine_key_in_header",
			tamper: edit(site, "proxy_hide_header X-Powered-By;", "proxy_hide_header X-Powered-By;\n    add_header X-Upstream-Authorization $slm_copilot_engine_auth always;"),
			fails: map[string]string{"TestEngineKeyNotEchoed/health": "credential header X-Upstream-Authorization", "TestEngineKeyNotEchoed/unauthorized": "credential header X-Upstream-Authorization",
				"TestEngineKeyNotEchoed/models": "credential header X-Upstream-Authorization", "TestEngineKeyNotEchoed/engine_error": "credential header X-Upstream-Authorization"},
		},
		{
			name:   "engine_key_in_401_body",
			tamper: edit(site, `"missing or invalid credentials:`, `"missing or invalid credentials (upstream: $slm_copilot_engine_auth):`),
			fails:  map[string]string{"TestEngineKeyNotEchoed/unauthorized": "the body carries a Bearer token"},
		},
	}
}

// TestEnginePortsWithoutFalseAlarm: on the engine ports, whatever is not an engine serving
// its model list without credentials passes and is named in the log: an unrelated web
// page (8000) and an engine that asks for its key (8080, answering as LocalAI v4.9 does
// without one: core/http/auth/middleware.go authError).
func TestEnginePortsWithoutFalseAlarm(t *testing.T) {
	t.Parallel()
	addr, err := reference.SpareLoopback(enginePorts...)
	require.NoError(t, err)
	in := startInstance(t, reference.Options{Address: addr})
	serve(t, net.JoinHostPort(addr, "8000"), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html><body>some other service</body></html>")
	}))
	serve(t, net.JoinHostPort(addr, "8080"), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"code":401,"message":"An authentication key is required","type":"invalid_request_error"}}`)
	}))
	run := runSuite(t, in, "-run", "TestEngineNotReachable", "-v")
	passedEveryTime(t, run, 1)
	assert.Contains(t, run.output["TestEngineNotReachable/port_8000"], "open, GET /v1/models answered 200", "the unrelated page must be named")
	assert.Contains(t, run.output["TestEngineNotReachable/port_8080"], "open, GET /v1/models answered 401", "the engine that asks for its key must be named")
	assert.Contains(t, run.output["TestEngineNotReachable/port_5000"], "closed (connection refused)")
}

// serve answers on addr with h until the test ends.
func serve(t *testing.T, addr string, h http.Handler) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// refusedRow expects TestAuthentication's credential row cred to be let through on every route.
func refusedRow(cred string) map[string]string {
	return perRoute(cred, "with "+cred+" credentials: expected 401, got")
}

// nearMissFaults are front doors that compare credentials loosely, each letting one of
// TestAuthentication's near misses through.
func nearMissFaults() []fault {
	password := randomCanary() // the instance's password, so a tamper can spell it
	basicLine := func(user, pass string) func(*reference.Files) error {
		header := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
		return edit(secrets, "default 0;", fmt.Sprintf("default 0;\n    %q 1;", header))
	}
	usePassword := func(o *reference.Options) { o.Password = password }
	return []fault{
		{
			// The Bearer regex without its end anchor: a prefix match.
			name:   "bearer_prefix_match",
			tamper: edit(secrets, `$' 1;`, `' 1;`),
			fails:  refusedRow("bearer_password_plus_suffix"),
		},
		{
			// ~* makes the whole regex case-insensitive, the token too, not just the scheme.
			name:   "bearer_token_case_insensitive",
			tamper: edit(secrets, `'~^Bearer\ `, `'~*^Bearer\ `),
			fails:  refusedRow("bearer_token_other_case"),
		},
		{
			// A regex with one character left unescaped or wild: it matches any character there.
			name:   "bearer_one_char_wild",
			opts:   usePassword,
			tamper: edit(secrets, password[len(password)-1:]+`$' 1;`, `.$' 1;`),
			fails:  refusedRow("bearer_one_char_changed"),
		},
		{
			// A Basic header precomputed from an unset user variable: ":password".
			name:   "basic_empty_user_accepted",
			opts:   usePassword,
			tamper: basicLine("", password),
			fails:  refusedRow("basic_empty_user"),
		},
		{
			// The API-key-as-user convention bolted on: "password:" accepted too.
			name:   "basic_password_as_user_accepted",
			opts:   usePassword,
			tamper: basicLine(password, ""),
			fails:  refusedRow("basic_password_as_user"),
		},
	}
}

// closedAddress returns a loopback address where nothing listens.
func closedAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err, "reserve a port")
	addr := l.Addr().String()
	require.NoError(t, l.Close(), "free the port")
	return addr
}
