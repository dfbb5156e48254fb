package reference

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	testKey      = "engine-key-0123456789"
	testLlamaKey = "llama-key-0123456789"
	testModel    = "devstral-small-2"
)

// standIn is a llama-server that refuses what the real one refuses (a request without its
// key: 401) and answers chat completions from a script, recording what it was asked.
type standIn struct {
	mu     sync.Mutex
	bodies []map[string]any
	// answer writes the response to one accepted request.
	answer func(w http.ResponseWriter, body map[string]any)
}

func (s *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/health" {
		_, _ = io.WriteString(w, `{"status":"ok"}`)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+testLlamaKey {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}`)
		return
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, body)
	s.mu.Unlock()
	s.answer(w, body)
}

func (s *standIn) last() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.bodies) == 0 {
		return nil
	}
	return s.bodies[len(s.bodies)-1]
}

// llamaStream answers as llama-server streams: a role chunk, one chunk per piece, the
// finish chunk, a usage chunk, [DONE]; with X-Accel-Buffering, which LocalAI never sends.
func llamaStream(pieces ...string) func(http.ResponseWriter, map[string]any) {
	return func(w http.ResponseWriter, _ map[string]any) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Accel-Buffering", "no")
		ev := func(s string) { fmt.Fprintf(w, "data: %s\n\n", s); w.(http.Flusher).Flush() }
		ev(`{"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"object":"chat.completion.chunk","id":"chatcmpl-x"}`)
		for _, p := range pieces {
			b, _ := json.Marshal(p)
			ev(`{"choices":[{"finish_reason":null,"index":0,"delta":{"content":` + string(b) + `}}],"object":"chat.completion.chunk","id":"chatcmpl-x"}`)
		}
		ev(fmt.Sprintf(`{"choices":[{"finish_reason":"length","index":0,"delta":{}}],"object":"chat.completion.chunk","id":"chatcmpl-x","timings":{"prompt_ms":1.5,"predicted_ms":2.5}}`))
		ev(fmt.Sprintf(`{"choices":[],"object":"chat.completion.chunk","id":"chatcmpl-x","usage":{"completion_tokens":%d,"prompt_tokens":7,"total_tokens":%d}}`, len(pieces), 7+len(pieces)))
		ev("[DONE]")
	}
}

// newRelay serves a relay configured as appliance.sh's configure would configure LocalAI,
// in front of the stand-in.
func newRelay(t *testing.T, s *standIn, env string) string {
	t.Helper()
	llama := httptest.NewServer(s)
	t.Cleanup(llama.Close)
	dir := t.TempDir()
	envFile := filepath.Join(dir, "local-ai.env")
	require.NoError(t, os.WriteFile(envFile, []byte("LOCALAI_API_KEY="+testKey+"\nLOCALAI_DISABLE_WEBUI=true\n"+env), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, testModel+".yaml"), []byte("name: "+testModel+"\nbackend: llama-cpp\ncontext_size: 4096\nparameters:\n  model: m.gguf\n  temperature: 0.15\noptions:\n  - use_jinja:true\n"), 0o644))
	cfg, err := readLocalAIConfig(envFile, dir)
	require.NoError(t, err)
	r, err := serveLocalAI("127.0.0.1:0", llama.URL, testLlamaKey, cfg)
	require.NoError(t, err)
	t.Cleanup(r.close)
	require.Eventually(t, r.ready.Load, 10*time.Second, 10*time.Millisecond, "the relay's preload never saw the stand-in healthy")
	return "http://" + r.srv.Addr
}

func do(t *testing.T, method, url, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// unauthorized is LocalAI's refusal: core/http/auth/middleware.go authError.
const unauthorized = `{"error":{"code":401,"message":"An authentication key is required","type":"invalid_request_error"}}` + "\n"

// TestLocalAIAuthentication: the key is checked as LocalAI checks it, refusals carry
// LocalAI's body and challenge, public routes need no key.
func TestLocalAIAuthentication(t *testing.T) {
	t.Parallel()
	url := newRelay(t, &standIn{}, "")
	cases := []struct {
		name, method, path string
		header             []string
		status             int
	}{
		{"no_key", http.MethodGet, "/v1/models", nil, 401},
		{"bearer", http.MethodGet, "/v1/models", []string{"Authorization", "Bearer " + testKey}, 200},
		{"bearer_other_case", http.MethodGet, "/v1/models", []string{"Authorization", "bearer " + testKey}, 401},
		{"bare_authorization", http.MethodGet, "/v1/models", []string{"Authorization", testKey}, 200},
		{"basic", http.MethodGet, "/v1/models", []string{"Authorization", "Basic Y29waWxvdDpwdw=="}, 401},
		{"wrong_bearer", http.MethodGet, "/v1/models", []string{"Authorization", "Bearer " + testKey + "x"}, 401},
		{"x_api_key", http.MethodGet, "/v1/models", []string{"X-Api-Key", testKey}, 200},
		{"xi_api_key", http.MethodGet, "/v1/models", []string{"Xi-Api-Key", testKey}, 200},
		{"authorization_wins_over_x_api_key", http.MethodGet, "/v1/models", []string{"Authorization", "Bearer nope", "X-Api-Key", testKey}, 401},
		{"readyz_public", http.MethodGet, "/readyz", nil, 200},
		{"healthz_public", http.MethodGet, "/healthz", nil, 200},
		{"unknown_route_no_key", http.MethodGet, "/props", nil, 401},
		{"unknown_route", http.MethodGet, "/props", []string{"Authorization", "Bearer " + testKey}, 404},
		{"trailing_slash", http.MethodGet, "/v1/models/", []string{"Authorization", "Bearer " + testKey}, 200},
		{"double_slash", http.MethodGet, "/v1//models", []string{"Authorization", "Bearer " + testKey}, 404},
		{"other_method", http.MethodPut, "/v1/models", []string{"Authorization", "Bearer " + testKey}, 405},
		{"head", http.MethodHead, "/v1/models", []string{"Authorization", "Bearer " + testKey}, 405},
		{"localai_route", http.MethodGet, "/version", []string{"Authorization", "Bearer " + testKey}, 200},
		{"llama_server_route", http.MethodPost, "/completion", []string{"Authorization", "Bearer " + testKey}, 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := do(t, tc.method, url+tc.path, "", tc.header...)
			assert.Equal(t, tc.status, resp.StatusCode, body)
			if tc.status == 401 {
				assert.Equal(t, unauthorized, body)
				assert.Equal(t, "Bearer", resp.Header.Get("WWW-Authenticate"))
				assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			}
			if tc.status == 404 {
				assert.Equal(t, `{"error":{"code":404,"message":"Resource not found","type":""}}`+"\n", body)
			}
			assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), "security headers on every answer")
		})
	}
}

// TestLocalAIShapes: the model list, /readyz and the version as LocalAI writes them.
func TestLocalAIShapes(t *testing.T) {
	t.Parallel()
	url := newRelay(t, &standIn{}, "")
	auth := []string{"Authorization", "Bearer " + testKey}
	resp, body := do(t, http.MethodGet, url+"/v1/models", "", auth...)
	assert.Equal(t, `{"object":"list","data":[{"id":"devstral-small-2","object":"model"}]}`+"\n", body)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	resp, body = do(t, http.MethodGet, url+"/readyz", "")
	assert.Equal(t, 200, resp.StatusCode)
	assert.Empty(t, body, "LocalAI's /readyz says 200 with no body")
	assert.Empty(t, resp.Header.Get("Content-Type"))
	_, body = do(t, http.MethodGet, url+"/version", "", auth...)
	assert.Equal(t, `{"version":"v4.9.0 (f7ad3f70eb5d8a0ddf80e08557f0d7df28cf032e)"}`+"\n", body)
	resp, _ = do(t, http.MethodGet, url+"/v1/models", "", append(auth, "Origin", "vscode-webview://x")...)
	assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"), "echo's default CORS allows any origin")
	resp, body = do(t, http.MethodPost, url+"/v1/chat/completions", `{"model":"other","messages":[]}`, auth...)
	assert.Equal(t, 404, resp.StatusCode)
	assert.Equal(t, `{"error":{"code":404,"message":"model \"other\" not found. To see available models, call GET /v1/models","type":"invalid_request_error"}}`+"\n", body)
}

// TestLocalAINotReadyBeforePreload: /readyz is 503 with LocalAI's reason until the model is loaded.
func TestLocalAINotReadyBeforePreload(t *testing.T) {
	t.Parallel()
	r := &localAI{}
	w := httptest.NewRecorder()
	r.readyz(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	assert.Equal(t, 503, w.Code)
	assert.Equal(t, `{"reason":"startup preload in progress","status":"starting"}`+"\n", w.Body.String())
}

// events reads an SSE body into its data payloads.
func events(t *testing.T, body string) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

// TestLocalAIStream: chunks in LocalAI's shape, no usage on any chunk, the usage trailer
// only when asked, LocalAI's finish reason, LocalAI's headers.
func TestLocalAIStream(t *testing.T) {
	t.Parallel()
	s := &standIn{answer: llamaStream("a", "b", "c")}
	url := newRelay(t, s, "")
	for _, includeUsage := range []bool{false, true} {
		t.Run(fmt.Sprintf("include_usage_%t", includeUsage), func(t *testing.T) {
			req := fmt.Sprintf(`{"model":%q,"stream":true,"max_tokens":3,"stream_options":{"include_usage":%t},"x_padding":"zz","messages":[{"role":"user","content":"hi"}]}`, testModel, includeUsage)
			resp, body := do(t, http.MethodPost, url+"/v1/chat/completions", req, "Authorization", "Bearer "+testKey)
			require.Equal(t, 200, resp.StatusCode, body)
			assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
			assert.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
			assert.Empty(t, resp.Header.Values("X-Accel-Buffering"), "LocalAI sends no X-Accel-Buffering")
			id := resp.Header.Get("X-Correlation-ID")
			require.Len(t, id, 36, "a UUID")
			evs := events(t, body)
			head := fmt.Sprintf(`{"created":%%d,"object":"chat.completion.chunk","id":%q,"model":%q,"choices":[{"index":0,"finish_reason":%%s,"delta":%%s}]}`, id, testModel)
			want := []string{`null`, `{"role":"assistant","content":null}`, `null`, `{"content":"a"}`, `null`, `{"content":"b"}`, `null`, `{"content":"c"}`, `"length"`, `{"content":null}`}
			n := 6 // role, three pieces, finish, [DONE]
			if includeUsage {
				n = 7
			}
			require.Len(t, evs, n, body)
			var created int
			_, err := fmt.Sscanf(evs[0], `{"created":%d`, &created)
			require.NoError(t, err)
			for i := 0; i < 5; i++ {
				assert.Equal(t, fmt.Sprintf(head, created, want[2*i], want[2*i+1]), evs[i])
			}
			if includeUsage {
				assert.Equal(t, fmt.Sprintf(`{"id":%q,"created":%d,"model":%q,"object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`, id, created, testModel), evs[5])
			} else {
				assert.NotContains(t, body, `"usage"`, "no usage without stream_options.include_usage")
			}
			assert.Equal(t, "[DONE]", evs[len(evs)-1])
			up := s.last()
			assert.NotContains(t, up, "x_padding", "fields LocalAI does not read are dropped")
			assert.Equal(t, map[string]any{"include_usage": true}, up["stream_options"], "the relay always asks for the counts")
			assert.Equal(t, 0.15, up["temperature"], "the model config's temperature when the request sets none")
		})
	}
}

// TestLocalAIStreamPassesEachEvent: an event reaches the client before llama-server sends
// the next one (the relay flushes per event, as LocalAI does).
func TestLocalAIStreamPassesEachEvent(t *testing.T) {
	t.Parallel()
	next := make(chan struct{})
	s := &standIn{answer: func(w http.ResponseWriter, _ map[string]any) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"first\"}}]}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-time.After(10 * time.Second):
		}
		fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"finish_reason\":\"stop\",\"delta\":{}}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n")
	}}
	url := newRelay(t, s, "")
	req, err := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(`{"stream":true,"messages":[]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	seen := ""
	for !strings.Contains(seen, `"content":"first"`) {
		line, err := rd.ReadString('\n')
		require.NoError(t, err, "the first piece did not arrive before the second was generated: %q", seen)
		seen += line
	}
	close(next)
	rest, err := io.ReadAll(rd)
	require.NoError(t, err)
	assert.Contains(t, string(rest), `"finish_reason":"stop"`)
}

// TestLocalAIFailedGeneration: LocalAI's shapes of a generation the backend refuses.
func TestLocalAIFailedGeneration(t *testing.T) {
	t.Parallel()
	s := &standIn{answer: func(w http.ResponseWriter, _ map[string]any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}`)
	}}
	url := newRelay(t, s, "")
	auth := []string{"Authorization", "Bearer " + testKey}
	const refusal = "the request exceeds the available context size"
	// Streamed chat: 200; llama.cpp's message as content, then an error event and [DONE].
	resp, body := do(t, http.MethodPost, url+"/v1/chat/completions", `{"stream":true,"messages":[]}`, auth...)
	assert.Equal(t, 200, resp.StatusCode)
	evs := events(t, body)
	require.Len(t, evs, 4, body)
	assert.Contains(t, evs[0], `"delta":{"role":"assistant","content":null}`)
	assert.Contains(t, evs[1], `"delta":{"content":"`+refusal+`"}`)
	assert.Equal(t, `{"error":{"code":"server_error","message":"rpc error: code = Internal desc = `+refusal+`","type":"server_error"}}`, evs[2])
	assert.Equal(t, "[DONE]", evs[3])
	// Chat: the error handler's 500.
	resp, body = do(t, http.MethodPost, url+"/v1/chat/completions", `{"messages":[]}`, auth...)
	assert.Equal(t, 500, resp.StatusCode)
	assert.Equal(t, `{"error":{"code":500,"message":"rpc error: code = Internal desc = `+refusal+`","type":""}}`+"\n", body)
	// Streamed completion: the message as a token, then the error as the text of a stop
	// chunk ("Internal error: ..."), no [DONE] (completion.go).
	resp, body = do(t, http.MethodPost, url+"/v1/completions", `{"stream":true,"prompt":"hi"}`, auth...)
	assert.Equal(t, 200, resp.StatusCode)
	evs = events(t, body)
	require.Len(t, evs, 2, body)
	assert.Contains(t, evs[0], `"choices":[{"index":0,"finish_reason":null,"text":"`+refusal+`"}]`)
	assert.Contains(t, evs[1], `"choices":[{"index":0,"finish_reason":"stop","text":"Internal error: rpc error: code = Internal desc = `+refusal+`"}]`)
}

// TestLocalAIUploadLimit: LOCALAI_UPLOAD_LIMIT (15 MB unless set) refuses larger bodies
// before anything else, authentication included.
func TestLocalAIUploadLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env    string
		size   int
		status int
	}{{"", 15<<20 + 1, 413}, {"LOCALAI_UPLOAD_LIMIT=50\n", 15<<20 + 1, 401}} {
		url := newRelay(t, &standIn{}, tc.env)
		resp, body := do(t, http.MethodPost, url+"/v1/chat/completions", strings.Repeat("a", tc.size))
		assert.Equal(t, tc.status, resp.StatusCode, "%q: %s", tc.env, body)
		if tc.status == 413 {
			assert.Equal(t, `{"error":{"code":413,"message":"code=413, message=Request Entity Too Large","type":""}}`+"\n", body)
		}
	}
}

// TestLocalAIToolCalls: streamed tool calls go out at the end, one name chunk and one
// arguments chunk per call (chat_emit.go buildDeferredToolCallChunks), finish reason tool_calls.
func TestLocalAIToolCalls(t *testing.T) {
	t.Parallel()
	s := &standIn{answer: func(w http.ResponseWriter, _ map[string]any) {
		ev := func(s string) { fmt.Fprintf(w, "data: %s\n\n", s) }
		ev(`{"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}`)
		ev(`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"read_file","arguments":""}}]}}]}`)
		ev(`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"path\":"}}]}}]}`)
		ev(`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"a.go\"}"}}]}}]}`)
		ev(`{"choices":[{"index":0,"finish_reason":"tool_calls","delta":{}}]}`)
		ev(`{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":5}}`)
		ev("[DONE]")
	}}
	url := newRelay(t, s, "")
	req := `{"stream":true,"tool_choice":"required","tools":[{"type":"function","function":{"name":"read_file","parameters":{"type":"object"}}}],"messages":[{"role":"user","content":"hi"}]}`
	_, body := do(t, http.MethodPost, url+"/v1/chat/completions", req, "Authorization", "Bearer "+testKey)
	evs := events(t, body)
	require.Len(t, evs, 4, body)
	assert.Contains(t, evs[0], `"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"read_file","arguments":""}}]}`)
	assert.Contains(t, evs[1], `"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"arguments":"{\"path\":\"a.go\"}"}}]}`)
	assert.Contains(t, evs[2], `"finish_reason":"tool_calls","delta":{"content":null}`)
	assert.Equal(t, "[DONE]", evs[3])
	assert.Equal(t, "required", s.last()["tool_choice"])
}

// TestLocalAIClientLeaves: a client that hangs up ends the generation behind the relay
// (LocalAI cancels its backend request: chat.go's input.Cancel()).
func TestLocalAIClientLeaves(t *testing.T) {
	t.Parallel()
	cancelled := make(chan struct{})
	s := &standIn{answer: func(w http.ResponseWriter, _ map[string]any) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t%d\"}}]}\n\n", i); err != nil {
				close(cancelled)
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(10 * time.Millisecond)
		}
	}}
	url := newRelay(t, s, "")
	req, err := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(`{"stream":true,"messages":[]}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, line, `"role":"assistant"`)
	resp.Body.Close()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the generation behind the relay went on after the client left")
	}
}

// TestLocalAIToolCallAnswer: a non-streamed tool call is LocalAI's tool-call choice: the
// calls at index 0, the text beside them as content, finish reason tool_calls.
func TestLocalAIToolCallAnswer(t *testing.T) {
	t.Parallel()
	s := &standIn{answer: func(w http.ResponseWriter, _ map[string]any) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"choices":[{"finish_reason":"tool_calls","index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"type":"function","function":{"name":"read_file","arguments":"{\"path\":\"a.go\"}"},"id":"call_1"}]}}],"usage":{"completion_tokens":5,"prompt_tokens":9,"total_tokens":14}}`)
	}}
	url := newRelay(t, s, "")
	_, body := do(t, http.MethodPost, url+"/v1/chat/completions", `{"tools":[{"type":"function","function":{"name":"read_file"}}],"messages":[{"role":"user","content":"hi"}]}`, "Authorization", "Bearer "+testKey)
	assert.Contains(t, body, `"choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":"","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"read_file","arguments":"{\"path\":\"a.go\"}"}}]}}],"usage":{"prompt_tokens":9,"completion_tokens":5,"total_tokens":14}}`)
}
