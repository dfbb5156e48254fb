package acceptance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/report"
)

// exposedRoute is a request a client without credentials may try.
type exposedRoute struct {
	name, method, path, body string
}

// notJSON is sent to routes that change the engine's state (LocalAI's gallery installs):
// should the front door let it through, the engine rejects it while parsing it.
const notJSON = `{"id":`

// exposureGroups are the requests that must all get the front door's JSON 401 without
// credentials. The rule is strict: the front door authenticates before it routes, so any
// other answer (the engine's 200 or 404, a 405, nginx's own 404) means the request was
// routed somewhere before credentials were asked for.
func exposureGroups() map[string][]exposedRoute {
	return map[string][]exposedRoute{
		// What clients and proxies do to a path: nginx matches locations on the normalised
		// path but passes the raw one on, so a location written for one spelling misses others.
		"path": {
			{"double_slash", http.MethodGet, "/v1//models", ""},
			{"trailing_slash", http.MethodGet, "/v1/models/", ""},
			{"dot_segment", http.MethodGet, "/./v1/models", ""},
			{"percent_encoded", http.MethodGet, "/%76%31/models", ""},
			{"upper_case", http.MethodGet, "/V1/models", ""},
		},
		"method": {
			{"HEAD_v1_models", http.MethodHead, "/v1/models", ""},
			{"PUT_v1_models", http.MethodPut, "/v1/models", ""},
			{"DELETE_v1_models", http.MethodDelete, "/v1/models", ""},
			{"HEAD_v1_chat_completions", http.MethodHead, "/v1/chat/completions", ""},
			{"PUT_v1_chat_completions", http.MethodPut, "/v1/chat/completions", "{}"},
			{"DELETE_v1_chat_completions", http.MethodDelete, "/v1/chat/completions", ""},
		},
		// llama.cpp's llama-server (tools/server/server.cpp) and the reference appliance's engine.
		"llama_server": {
			{"GET_props", http.MethodGet, "/props", ""},
			{"GET_slots", http.MethodGet, "/slots", ""},
			{"GET_metrics", http.MethodGet, "/metrics", ""},
			{"POST_tokenize", http.MethodPost, "/tokenize", `{"content":"hi"}`},
			{"POST_completion", http.MethodPost, "/completion", `{"prompt":"hi","n_predict":1}`},
			{"GET_models", http.MethodGet, "/models", ""},
			{"POST_v1_messages", http.MethodPost, "/v1/messages", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`},
		},
		// LocalAI v4.9.0, the appliance's engine: core/http/routes/localai.go (gallery,
		// backends, /system, /metrics, /version, /api/p2p, /api/traces, the route index
		// /.well-known/localai.json, public even with a key: core/http/auth/public_routes.go),
		// openresponses.go (/v1/responses) and ollama.go (/api/tags).
		"localai": {
			{"POST_models_apply", http.MethodPost, "/models/apply", notJSON},
			{"GET_models_available", http.MethodGet, "/models/available", ""},
			{"GET_backends", http.MethodGet, "/backends", ""},
			{"POST_backends_apply", http.MethodPost, "/backends/apply", notJSON},
			{"GET_system", http.MethodGet, "/system", ""},
			{"GET_metrics", http.MethodGet, "/metrics", ""},
			{"GET_version", http.MethodGet, "/version", ""},
			{"POST_v1_responses", http.MethodPost, "/v1/responses", `{"model":"m","input":"hi","max_output_tokens":1}`},
			{"GET_api_p2p", http.MethodGet, "/api/p2p", ""},
			{"GET_api_traces", http.MethodGet, "/api/traces", ""},
			{"GET_api_tags", http.MethodGet, "/api/tags", ""},
			{"GET_well_known_localai_json", http.MethodGet, "/.well-known/localai.json", ""},
		},
	}
}

// TestNoOpenRoute: without credentials, every spelling of the API's paths, every method
// and every route of the engines the appliance may run gets the front door's JSON 401.
func TestNoOpenRoute(t *testing.T) {
	t.Parallel()
	client := target.HTTPClient(nil)
	for group, routes := range exposureGroups() {
		t.Run(group, func(t *testing.T) {
			t.Parallel()
			for _, route := range routes {
				t.Run(route.name, func(t *testing.T) {
					t.Parallel()
					req := newRequest(t, route.method, route.path, route.body)
					require.Equal(t, route.path, req.URL.RequestURI(), "the client would not send the path as written")
					ex := send(t, client, req)
					code := ex.resp.StatusCode
					if code != http.StatusUnauthorized {
						t.Errorf("%s %s without credentials: got %d %s, not the front door's 401: the request was routed before authentication; look for a location (or a method or path spelling) that the nginx site serves without auth_basic",
							route.method, route.path, code, exposureSnippet(ex.body))
						return
					}
					// A HEAD answer has no body: its Content-Type still says what the GET would get.
					isJSON := strings.Contains(ex.resp.Header.Get("Content-Type"), "json")
					if route.method != http.MethodHead {
						isJSON = isJSONError(ex.resp, ex.body)
					}
					assert.True(t, isJSON, "%s %s without credentials: 401 but Content-Type %q %s, not the front door's JSON refusal; look at the site's 401 error_page",
						route.method, route.path, ex.resp.Header.Get("Content-Type"), exposureSnippet(ex.body))
				})
			}
		})
	}
}

// engineWords name an engine or what only an engine knows (slots, context size).
var engineWords = regexp.MustCompile(`(?i)llama|local-?ai|ggml|gguf|ollama|slots?\b|n_ctx|chat_template|model_path`)

// TestPublicEndpointsLeakNothing: /readyz and /health are served without credentials, so
// they say whether the instance is up and nothing else: an empty body, a status word or
// {"status":"..."}, and no header naming the engine or the model.
func TestPublicEndpointsLeakNothing(t *testing.T) {
	t.Parallel()
	client := target.HTTPClient(nil)
	for _, path := range []string{"/readyz", "/health"} {
		t.Run(routeName(http.MethodGet, path), func(t *testing.T) {
			t.Parallel()
			ex := send(t, client, newRequest(t, http.MethodGet, path, ""))
			t.Run("body", func(t *testing.T) {
				// Only the up answer is judged in full: a refusal or an error page while down
				// is TestHealthEndpoints' to judge, and only must not name the engine.
				extra := beyondStatus(ex.body)
				if ex.resp.StatusCode != http.StatusOK {
					if m := engineMention(string(ex.body)); m != "" {
						extra = fmt.Sprintf("it names the engine or model (%q)", m)
					} else {
						extra = ""
					}
				}
				if extra != "" {
					t.Errorf("GET %s (public) says more than its status: %s in %s; the front door must not pass the engine's own status pages out unauthenticated",
						path, extra, exposureSnippet(ex.body))
				}
			})
			t.Run("headers", func(t *testing.T) {
				for name, values := range ex.resp.Header {
					for _, v := range values {
						if m := engineMention(name + ": " + v); m != "" {
							t.Errorf("GET %s (public): header %s names the engine or model (%q); the front door must not pass the engine's headers out (look at proxy_pass_header / add_header in the health locations)",
								path, name, m)
						}
					}
				}
			})
		})
	}
}

// statusWord is a body such as "OK" or "ready".
var statusWord = regexp.MustCompile(`^[A-Za-z ]{1,16}$`)

// beyondStatus says what a public body holds beyond a status, or "" when it holds nothing else.
func beyondStatus(body []byte) string {
	text := bytes.TrimSpace(body)
	if m := engineMention(string(text)); m != "" {
		return fmt.Sprintf("it names the engine or model (%q)", m)
	}
	if len(text) == 0 || statusWord.Match(text) {
		return ""
	}
	var doc map[string]any
	if err := json.Unmarshal(text, &doc); err != nil {
		return fmt.Sprintf("%d bytes that are neither a status word nor a JSON object", len(text))
	}
	var extra []string
	for k, v := range doc {
		if s, ok := v.(string); k == "status" && ok && len(s) <= 16 {
			continue
		}
		extra = append(extra, k)
	}
	if len(extra) == 0 {
		return ""
	}
	sort.Strings(extra)
	return fmt.Sprintf("JSON fields %s", strings.Join(extra, ", "))
}

// engineMention is the first mention of an engine or of the served model in s.
func engineMention(s string) string {
	if m := engineWords.FindString(s); m != "" {
		return m
	}
	if target.Model != "" && strings.Contains(strings.ToLower(s), strings.ToLower(target.Model)) {
		return target.Model
	}
	return ""
}

// enginePorts are where OpenAI-compatible engines listen by default: the appliance's
// LocalAI and llama-server (8080), vLLM (8000), Ollama (11434), LM Studio (1234) and
// common Flask/text-generation servers (5000).
var enginePorts = []int{8080, 8000, 11434, 1234, 5000}

// TestEngineNotReachable: the engine must not be reachable around the front door. The
// suite only knows the endpoint's host, so it tries the engines' usual ports there: each
// must be closed, or not serve an OpenAI model list without credentials. Something else
// answering (another service, a 401) passes and is logged.
func TestEngineNotReachable(t *testing.T) {
	t.Parallel()
	for _, port := range enginePorts {
		t.Run("port_"+strconv.Itoa(port), func(t *testing.T) {
			t.Parallel()
			addr := net.JoinHostPort(target.Host(), strconv.Itoa(port))
			ctx, cancel := context.WithTimeout(requestContext(t), 10*time.Second)
			defer cancel()
			conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
			if err != nil {
				t.Logf("%s: closed (%s)", addr, dialFailure(err))
				return
			}
			conn.Close()
			// Plain HTTP, as engines serve; the client's own redirects are not followed.
			client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/models", nil)
			require.NoError(t, err)
			resp, err := client.Do(req)
			if err != nil {
				t.Logf("%s: open, but no HTTP answer to GET /v1/models (%s): not an engine", addr, target.Redact(err.Error()))
				return
			}
			defer resp.Body.Close()
			body, _ := readAll(resp)
			rec.Evidence(t.Name(), report.Exchange(req, resp, body))
			if ids := modelList(resp, body); ids != nil {
				t.Errorf("%s serves the engine's model list (%s) over plain HTTP without credentials: the engine is reachable around the front door; bind it to 127.0.0.1 or give it a key (LOCALAI_ADDRESS, LOCALAI_API_KEY)",
					addr, strings.Join(ids, ", "))
				return
			}
			t.Logf("%s: open, GET /v1/models answered %d %s: not an engine serving without credentials", addr, resp.StatusCode, exposureSnippet(body))
		})
	}
}

// modelList returns the model ids of an OpenAI-shaped 200 model list, or nil.
func modelList(resp *http.Response, body []byte) []string {
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &list) != nil || list.Data == nil {
		return nil
	}
	ids := []string{}
	for _, m := range list.Data {
		ids = append(ids, fmt.Sprintf("%q", m.ID))
	}
	return ids
}

// dialFailure names why a connection failed, without the addresses.
func dialFailure(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &ne) && ne.Timeout():
		return "no answer: filtered"
	default:
		return target.Redact(err.Error())
	}
}

// credentialHeader matches response headers that carry a credential.
var credentialHeader = regexp.MustCompile(`(?i)authorization|api-?key|token|secret`)

// bearerToken matches a Bearer credential (the 401's "Bearer <password>" hint does not).
var bearerToken = regexp.MustCompile(`(?i)bearer\s+[A-Za-z0-9._~+/=-]{16,}`)

// TestEngineKeyNotEchoed: the front door presents its own key to the engine. The suite
// cannot know that key, so it looks for the forms an echo would take in what comes back:
// a response header named for a credential, or a Bearer token in any header or body.
func TestEngineKeyNotEchoed(t *testing.T) {
	t.Parallel()
	client := target.HTTPClient(nil)
	cases := []struct {
		name, method, path, body string
		auth                     func(*http.Request)
	}{
		{"health", http.MethodGet, "/health", "", func(*http.Request) {}},
		{"unauthorized", http.MethodGet, "/v1/models", "", func(*http.Request) {}},
		{"models", http.MethodGet, "/v1/models", "", bearerAuth},
		{"engine_error", http.MethodPost, "/v1/chat/completions", "{}", bearerAuth},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := newRequest(t, tc.method, tc.path, tc.body)
			tc.auth(req)
			ex := send(t, client, req)
			for name, values := range ex.resp.Header {
				if credentialHeader.MatchString(name) {
					t.Errorf("%s %s: the response carries a credential header %s (%d bytes, not shown); the front door must never send the engine's key back",
						tc.method, tc.path, name, len(strings.Join(values, "")))
				}
				for _, v := range values {
					if bearerToken.MatchString(v) {
						t.Errorf("%s %s: header %s carries a Bearer token (not shown); the front door must never send the engine's key back", tc.method, tc.path, name)
					}
				}
			}
			if bearerToken.Match(ex.body) {
				t.Errorf("%s %s: the body carries a Bearer token (not shown) %s; the front door must never send the engine's key back", tc.method, tc.path, exposureSnippet(ex.body))
			}
		})
	}
}

// exposureSnippet is snippet with any Bearer token masked: it may be the engine's key.
func exposureSnippet(body []byte) string {
	return snippet(bearerToken.ReplaceAll(body, []byte("Bearer [REDACTED]")))
}
