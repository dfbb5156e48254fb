package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

// clineContextWindow is the suite's check of the context window: its ~10k-token prompt
// costs a minute of prefill on the reference, so fault runs skip it unless it concerns them.
const clineContextWindow = "TestClineRequest/context_window"

// clineFaults break, one each, what the acceptance suite's TestClineRequest checks the
// way Cline asks.
func clineFaults() []fault {
	truncating := &truncatingRelay{over: 7000, keep: 2000}
	draining := &drainingRelay{}
	return []fault{
		{
			// An engine that ignores stream_options (LocalAI before v4.2.5).
			name:    "cline_stream_without_usage",
			tamper:  rewriteBodies(`"usage":{`, `"usage_elsewhere":{`, "text/event-stream"),
			fails:   map[string]string{"TestClineRequest/usage": "the stream carried no usage chunk"},
			mayFail: []string{"TestClineRequest/context_window"}, // sized from the streams' usage
		},
		{
			name:   "cline_first_delta_without_role",
			tamper: rewriteFirst(`"delta":{"role":"assistant",`, `"delta":{`),
			fails:  map[string]string{"TestClineRequest/role_first": `the stream's first delta carries no role "assistant"`},
		},
		{
			name:   "cline_stream_changes_id",
			tamper: rewriteFirst(`"id":"chatcmpl-`, `"id":"chatcmpl-first-`),
			fails:  map[string]string{"TestClineRequest/one_id": "the stream changes its id"},
		},
		{
			name:   "cline_delta_without_content",
			tamper: rewriteFirst(`"delta":{"content":"`, `"delta":{"text":"`),
			fails:  map[string]string{"TestClineRequest/deltas_carry_content": "has neither content nor tool_calls"},
		},
		{
			name:   "cline_finish_reason_early",
			tamper: rewriteFirst(`"finish_reason":null`, `"finish_reason":"stop"`),
			fails:  map[string]string{"TestClineRequest/finish_reason_last": `carries finish_reason "stop" before the stream's end`},
		},
		{
			name:   "cline_control_token_in_content",
			tamper: rewriteFirst(`"delta":{"content":"`, `"delta":{"content":"[INST]`),
			fails:  map[string]string{"TestClineRequest/no_control_tokens": `control token "[INST]" leaked into the content`},
		},
		{
			// The engine gets the raw request line, double slash and all, and knows no such route.
			name:   "cline_base_url_slash_not_merged",
			tamper: edit(site, "ssl_prefer_server_ciphers off;", "ssl_prefer_server_ciphers off;\n    merge_slashes off;"),
			fails: map[string]string{"TestClineRequest/trailing_slash_base_url/models": "GET /v1//models with credentials got 404",
				"TestClineRequest/trailing_slash_base_url/chat_completions": "POST /v1//chat/completions with credentials got 404"},
		},
		{
			// One connection to the engine at a time, and no queue: nginx answers 502.
			name:   "cline_second_stream_refused",
			tamper: oneEngineConnection,
			fails:  map[string]string{"TestClineRequest/concurrency/two_streams_at_once": "got status code: 502"},
			// Any check whose requests overlap another's may meet the 502 too.
			mayFail: append([]string{"TestClineToolCall", "TestEngineKeyNotEchoed", "TestHealthEndpoints", "TestCORS/headers_health",
				"TestNoVersionDisclosure/health", "TestPublicEndpointsLeakNothing"}, engineChecks...),
		},
		{
			// A hop that keeps the engine generating for a client that left, and an engine
			// with one slot, so the next request waits for the abandoned answer. (nginx's
			// proxy_ignore_client_abort on is not enough: unbuffered, nginx still ends the
			// upstream request when its write to the gone client fails.)
			name: "cline_abort_not_passed_on",
			tamper: func(f *reference.Files) error {
				if err := draining.tamper(f); err != nil {
					return err
				}
				return oneSlot(f)
			},
			after: draining.stopWithTest,
			fails: map[string]string{"TestClineRequest/concurrency/abandoned_stream_frees_engine": "the next request's first token did not come within"},
		},
		{
			// The appliance configured with a smaller context than the one it must serve.
			name:  "cline_context_smaller",
			opts:  func(o *reference.Options) { o.Context = append(o.Context, "ONEAPP_COPILOT_CONTEXT_SIZE=8192") },
			fails: map[string]string{"TestClineRequest/context_window/cline_sized_prompt": "the instance refused Cline's ~10000-token prompt"},
		},
		{
			// The guard refuses in its own words, which name neither tokens nor the context.
			name:   "context_guard_message_unrecognised",
			tamper: edit(guard, "the request exceeds the available context length: about ${prompt} prompt tokens, over the ${context}-token context of this instance", "the request is too large for this instance"),
			fails:  map[string]string{"TestClineRequest/context_window/prompt_over_context_refused": "is not one Cline takes for a context overflow"},
		},
		{
			// A hop that trims long system prompts to fit, as engines with "truncate" modes do,
			// behind a front door without its context guard (which would refuse the prompt
			// over the context before the hop cuts it).
			name: "cline_prompt_truncated",
			tamper: func(f *reference.Files) error {
				if err := truncating.tamper(f); err != nil {
					return err
				}
				return withoutGuard(f)
			},
			after: truncating.stopWithTest,
			fails: map[string]string{"TestClineRequest/context_window/cline_sized_prompt": "the engine served a cut prompt",
				"TestClineRequest/context_window/prompt_over_context_refused": "was answered 200"},
		},
	}
}

// rewriteFirst makes nginx rewrite the first from into to in each event stream, as a
// broken proxy or engine would get one chunk wrong.
func rewriteFirst(from, to string) func(*reference.Files) error {
	return filterEngine(fmt.Sprintf("sub_filter '%s' '%s';\nsub_filter_once on;\nsub_filter_types text/event-stream;", from, to))
}

// upstreamServer finds the engine address in the site's upstream block.
var upstreamServer = regexp.MustCompile(`(upstream slm_copilot_engine \{\s*server )(\S+);`)

// oneEngineConnection lets nginx hold one connection to the engine at a time, across its
// workers; a second request meanwhile gets 502 (no queue).
func oneEngineConnection(f *reference.Files) error {
	b, err := os.ReadFile(f.Site)
	if err != nil {
		return err
	}
	if !upstreamServer.Match(b) {
		return fmt.Errorf("%s: no upstream server line", f.Site)
	}
	b = upstreamServer.ReplaceAll(b, []byte("${1}${2} max_conns=1;\n    zone slm_copilot_engine 64k;"))
	return os.WriteFile(f.Site, b, 0o600)
}

// oneSlot starts the engine with a single slot, so a busy slot makes the next request wait.
func oneSlot(f *reference.Files) error {
	i := slices.Index(f.Engine, "--parallel")
	if i < 0 || i+1 >= len(f.Engine) {
		return fmt.Errorf("the engine's arguments have no --parallel: %q", f.Engine)
	}
	f.Engine[i+1] = "1"
	return nil
}

// truncatingRelay passes every request on to the engine, except that a chat request's
// system prompt longer than over bytes is cut after keep bytes: the prompt then fits, and
// the answer is a 200 from less than the client sent. On the reference's tokenizer (a
// little over a token a character), the suite's calibration prompts (up to ~6.4 kB of
// system prompt) pass whole and its ~10k-token prompt (~8.3 kB) loses three quarters.
type truncatingRelay struct {
	over, keep int
	srv        *http.Server
}

// tamper starts the relay and points the front door's upstream at it.
func (r *truncatingRelay) tamper(f *reference.Files) error {
	var err error
	r.srv, err = relayEngine(f, func(engineAddr string) http.Handler {
		return r.handler(engineProxy(engineAddr))
	})
	return err
}

func (r *truncatingRelay) handler(proxy http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost && req.URL.Path == "/v1/chat/completions" {
			body, err := io.ReadAll(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = r.cut(body)
			req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			req.Header.Set("Content-Length", strconv.Itoa(len(body)))
		}
		proxy.ServeHTTP(w, req)
	})
}

// cut shortens the system message of a chat request; anything else passes unchanged.
func (r *truncatingRelay) cut(body []byte) []byte {
	var req map[string]any
	if json.Unmarshal(body, &req) != nil {
		return body
	}
	messages, _ := req["messages"].([]any)
	if len(messages) == 0 {
		return body
	}
	first, _ := messages[0].(map[string]any)
	if system, ok := first["content"].(string); ok && first["role"] == "system" && len(system) > r.over {
		first["content"] = system[:r.keep]
		if out, err := json.Marshal(req); err == nil {
			return out
		}
	}
	return body
}

// stopWithTest stops the relay when the test ends.
func (r *truncatingRelay) stopWithTest(t *testing.T, _ *reference.Instance) {
	require.NotNil(t, r.srv, "the relay's tamper did not run")
	t.Cleanup(func() { _ = r.srv.Close() })
}

// drainingRelay passes every request on to the engine and its answer back, but once the
// front door hangs up it goes on reading the engine's answer to its end, as a proxy that
// does not pass the client's abort on: the engine keeps generating for nobody.
type drainingRelay struct{ srv *http.Server }

func (r *drainingRelay) tamper(f *reference.Files) error {
	var err error
	r.srv, err = relayEngine(f, func(engineAddr string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			out, err := http.NewRequestWithContext(context.WithoutCancel(req.Context()), req.Method, "http://"+engineAddr+req.URL.RequestURI(), req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			out.Header = req.Header.Clone()
			out.ContentLength = req.ContentLength
			resp, err := http.DefaultTransport.RoundTrip(out)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			for k, v := range resp.Header {
				if k != "Connection" && k != "Transfer-Encoding" && k != "Keep-Alive" {
					w.Header()[k] = v
				}
			}
			w.WriteHeader(resp.StatusCode)
			rc := http.NewResponseController(w)
			buf := make([]byte, 32<<10)
			for {
				n, err := resp.Body.Read(buf)
				if n > 0 {
					if _, werr := w.Write(buf[:n]); werr == nil {
						_ = rc.Flush()
					} // a gone client: keep reading
				}
				if err != nil {
					return
				}
			}
		})
	})
	return err
}

func (r *drainingRelay) stopWithTest(t *testing.T, _ *reference.Instance) {
	require.NotNil(t, r.srv, "the relay's tamper did not run")
	t.Cleanup(func() { _ = r.srv.Close() })
}

// engineProxy passes requests on to the engine at engineAddr, streamed events as they
// come, on a fresh engine connection per request: reusing one llama-server kept alive
// after a stream now and then failed mid-body ("use of closed network connection",
// "unexpected EOF" at the client), which would be the relay's fault, not the front door's.
func engineProxy(engineAddr string) *httputil.ReverseProxy {
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: engineAddr})
	proxy.FlushInterval = -1
	proxy.Transport = &http.Transport{DisableKeepAlives: true}
	return proxy
}

// relayEngine starts a relay to the site's engine, built by handler from the engine's
// address, and points the front door's upstream at it.
func relayEngine(f *reference.Files, handler func(engineAddr string) http.Handler) (*http.Server, error) {
	b, err := os.ReadFile(f.Site)
	if err != nil {
		return nil, err
	}
	m := upstreamServer.FindSubmatch(b)
	if m == nil {
		return nil, fmt.Errorf("%s: no upstream server line", f.Site)
	}
	engineAddr := string(m[2])
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: handler(engineAddr)}
	go func() { _ = srv.Serve(l) }()
	return srv, replace(f.Site, "server "+engineAddr+";", "server "+l.Addr().String()+";")
}
