package reference

// LocalAI personality: a relay that answers the front door as LocalAI v4.9.0 answers (the
// engine appliance.sh installs), while llama-server does the generation behind it. Each
// shape below is read from LocalAI's source at tag v4.9.0 (github.com/mudler/LocalAI,
// commit f7ad3f70eb5d8a0ddf80e08557f0d7df28cf032e); the file is named next to the code
// that depends on it. What the relay does not reproduce is said where it matters.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Engine is the engine the front door talks to in a reference appliance.
type Engine string

const (
	// EngineLlamaServer puts the front door straight in front of llama-server (the default).
	EngineLlamaServer Engine = "llama-server"
	// EngineLocalAI puts it in front of a relay that answers as LocalAI v4.9.0, the
	// appliance's engine, with llama-server generating behind the relay.
	EngineLocalAI Engine = "localai"
)

// ParseEngine reads an engine name as given to -reference-engine ("" is llama-server).
func ParseEngine(s string) (Engine, error) {
	switch Engine(s) {
	case "", EngineLlamaServer:
		return EngineLlamaServer, nil
	case EngineLocalAI:
		return EngineLocalAI, nil
	}
	return "", fmt.Errorf("unknown reference engine %q: want %s or %s", s, EngineLlamaServer, EngineLocalAI)
}

const (
	// localAIVersion is what LocalAI's /version says: internal/version.go PrintableVersion.
	localAIVersion = "v4.9.0 (f7ad3f70eb5d8a0ddf80e08557f0d7df28cf032e)"
	// localAIUploadLimitMB is LOCALAI_UPLOAD_LIMIT's default (core/cli/run.go).
	localAIUploadLimitMB = 15
	// localAICompressionMinLength is LOCALAI_HTTP_COMPRESSION_MIN_LENGTH's default (core/cli/run.go).
	localAICompressionMinLength = 1024
)

// localAIConfig is what LocalAI reads at start: its environment file (written by
// appliance.sh's configure) and the model YAMLs of its models directory.
type localAIConfig struct {
	keys        []string // LOCALAI_API_KEY, comma-separated (kong splits slices on commas)
	uploadLimit int64    // LOCALAI_UPLOAD_LIMIT in MB, as echo's BodyLimit "15M" (MiB)
	webUI       bool     // !LOCALAI_DISABLE_WEBUI
	models      []modelConfig
}

// modelConfig is the part of a model YAML (core/config/model_config.go) the relay uses.
type modelConfig struct {
	name        string
	temperature string // parameters.temperature, the default when a request sets none
	parallel    int    // options "parallel:N" (backend/cpp/llama-cpp/grpc-server.cpp; default 1)
	contextSize int    // context_size
}

// readLocalAIConfig reads LocalAI's settings as local-ai.service would get them.
func readLocalAIConfig(envFile, modelsDir string) (localAIConfig, error) {
	env, err := readEnvFile(envFile)
	if err != nil {
		return localAIConfig{}, err
	}
	cfg := localAIConfig{uploadLimit: localAIUploadLimitMB << 20}
	for _, k := range strings.Split(env["LOCALAI_API_KEY"], ",") {
		if k = strings.TrimSpace(k); k != "" {
			cfg.keys = append(cfg.keys, k)
		}
	}
	if v := env["LOCALAI_UPLOAD_LIMIT"]; v != "" {
		mb, err := strconv.Atoi(v)
		if err != nil {
			return cfg, fmt.Errorf("LOCALAI_UPLOAD_LIMIT=%q: %w", v, err)
		}
		cfg.uploadLimit = int64(mb) << 20
	}
	cfg.webUI = !isTrue(env["LOCALAI_DISABLE_WEBUI"])
	yamls, _ := filepath.Glob(filepath.Join(modelsDir, "*.yaml"))
	for _, y := range yamls {
		m, err := readModelConfig(y)
		if err != nil {
			return cfg, err
		}
		if m.name != "" {
			cfg.models = append(cfg.models, m)
		}
	}
	// core/services/galleryop ListModels: configured names, sorted.
	sort.Slice(cfg.models, func(i, j int) bool { return cfg.models[i].name < cfg.models[j].name })
	return cfg, nil
}

func isTrue(s string) bool {
	b, _ := strconv.ParseBool(s)
	return b
}

// readEnvFile reads KEY=VALUE lines as systemd's EnvironmentFile does (no quoting used here).
func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("LocalAI's environment: %w", err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env, nil
}

// readModelConfig reads the few keys the relay needs from the flat YAML appliance.sh writes.
func readModelConfig(path string) (modelConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return modelConfig{}, fmt.Errorf("model config: %w", err)
	}
	m := modelConfig{parallel: 1}
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			section = ""
		}
		key, value, _ := strings.Cut(trimmed, ":")
		value = strings.Trim(strings.TrimSpace(value), `"'`)
		switch {
		case section == "" && key == "name":
			m.name = value
		case section == "" && key == "context_size":
			m.contextSize, _ = strconv.Atoi(value)
		case section == "" && value == "":
			section = key
		case section == "parameters" && key == "temperature":
			m.temperature = value
		case section == "options" && strings.HasPrefix(trimmed, "- "):
			opt := strings.Trim(strings.TrimPrefix(trimmed, "- "), `"'`)
			if k, v, ok := strings.Cut(opt, ":"); ok && (k == "parallel" || k == "n_parallel") {
				m.parallel, _ = strconv.Atoi(v)
			}
		}
	}
	return m, nil
}

// localAI is the relay. It serves on loopback where LOCALAI_ADDRESS says and asks
// llama-server (llamaURL, with llamaKey) for every generation.
type localAI struct {
	cfg      localAIConfig
	llamaURL string
	llamaKey string
	client   *http.Client
	ready    atomic.Bool // the startup preload is done (core/http/routes/health.go)
	srv      *http.Server
	done     chan struct{}
}

// serveLocalAI serves the relay on addr until close.
func serveLocalAI(addr, llamaURL, llamaKey string, cfg localAIConfig) (*localAI, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("LocalAI relay: %w", err)
	}
	r := &localAI{cfg: cfg, llamaURL: llamaURL, llamaKey: llamaKey, done: make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}}
	r.srv = &http.Server{Addr: l.Addr().String(), Handler: r, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		defer close(r.done)
		_ = r.srv.Serve(l)
	}()
	go r.preload()
	return r, nil
}

// preload stands for LOCALAI_LOAD_TO_MEMORY: /readyz says 503 until the model answers its
// health, then 200 for good (a backend that dies later does not flip readiness back).
func (r *localAI) preload() {
	for {
		select {
		case <-r.done:
			return
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, r.llamaURL+"/health", nil)
		if resp, err := r.client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				r.ready.Store(true)
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// close stops the relay as a stopped local-ai.service: connections drop.
func (r *localAI) close() {
	_ = r.srv.Close()
	<-r.done
	r.client.CloseIdleConnections()
}

// LocalAI's wire types, copied with their JSON tags so the bytes match: core/schema/openai.go
// (APIError, ErrorResponse, OpenAIUsage, OpenAIResponse, Choice, OpenAIModel,
// ModelsDataResponse) and core/schema/message.go (Message, ToolCall, FunctionCall).
type (
	apiError struct {
		Code    any     `json:"code,omitempty"`
		Message string  `json:"message"`
		Param   *string `json:"param,omitempty"`
		Type    string  `json:"type"`
	}
	errorResponse struct {
		Error *apiError `json:"error,omitempty"`
	}
	openAIUsage struct {
		PromptTokens           int     `json:"prompt_tokens"`
		CompletionTokens       int     `json:"completion_tokens"`
		TotalTokens            int     `json:"total_tokens"`
		TimingPromptProcessing float64 `json:"timing_prompt_processing,omitempty"`
		TimingTokenGeneration  float64 `json:"timing_token_generation,omitempty"`
	}
	item struct {
		Embedding []float32 `json:"embedding,omitempty"`
		Index     int       `json:"index"`
		Object    string    `json:"object,omitempty"`
	}
	openAIResponse struct {
		Created int          `json:"created,omitempty"`
		Object  string       `json:"object,omitempty"`
		ID      string       `json:"id,omitempty"`
		Model   string       `json:"model,omitempty"`
		Choices []choice     `json:"choices,omitempty"`
		Data    []item       `json:"data,omitempty"`
		Usage   *openAIUsage `json:"usage,omitempty"`
	}
	choice struct {
		Index        int      `json:"index"`
		FinishReason *string  `json:"finish_reason"`
		Message      *message `json:"message,omitempty"`
		Delta        *message `json:"delta,omitempty"`
		Text         string   `json:"text,omitempty"`
	}
	message struct {
		Role      string     `json:"role,omitempty"`
		Content   any        `json:"content"`
		ToolCalls []toolCall `json:"tool_calls,omitempty"`
		Reasoning *string    `json:"reasoning,omitempty"`
	}
	toolCall struct {
		Index        int          `json:"index"`
		ID           string       `json:"id"`
		Type         string       `json:"type"`
		FunctionCall functionCall `json:"function"`
	}
	functionCall struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	}
	openAIModel struct {
		ID     string `json:"id"`
		Object string `json:"object"`
	}
	modelsDataResponse struct {
		Object string        `json:"object"`
		Data   []openAIModel `json:"data"`
	}
)

// usageTrailer is the include_usage chunk: core/http/endpoints/openai/chat_emit.go
// streamUsageTrailerJSON ("choices" an empty array, never absent).
type usageTrailer struct {
	ID      string      `json:"id"`
	Created int         `json:"created"`
	Model   string      `json:"model"`
	Object  string      `json:"object"`
	Choices []choice    `json:"choices"`
	Usage   openAIUsage `json:"usage"`
}

// Finish reasons: core/http/endpoints/openai/constants.go.
const (
	finishStop      = "stop"
	finishLength    = "length"
	finishToolCalls = "tool_calls"
)

// route is one of LocalAI's routes the relay answers.
type route struct {
	method, path string
	handle       func(*localAI, http.ResponseWriter, *http.Request)
}

// localAIRoutes: core/http/routes/{health,openai,localai,ollama,openresponses,anthropic}.go.
// Routes LocalAI has but the relay cannot serve for real answer with what LocalAI says
// for a request it cannot serve; see each handler.
var localAIRoutes = []route{
	{http.MethodGet, "/healthz", (*localAI).healthz},
	{http.MethodGet, "/readyz", (*localAI).readyz},
	{http.MethodGet, "/v1/models", (*localAI).listModels},
	{http.MethodGet, "/models", (*localAI).listModels},
	{http.MethodPost, "/v1/chat/completions", (*localAI).chat},
	{http.MethodPost, "/chat/completions", (*localAI).chat},
	{http.MethodPost, "/v1/completions", (*localAI).completion},
	{http.MethodPost, "/completions", (*localAI).completion},
	{http.MethodPost, "/v1/embeddings", (*localAI).embeddings},
	{http.MethodPost, "/v1/tokenize", (*localAI).tokenize},
	{http.MethodPost, "/embeddings", (*localAI).embeddings},
	{http.MethodGet, "/version", (*localAI).version},
	{http.MethodGet, "/.well-known/localai.json", (*localAI).wellKnown},
	{http.MethodGet, "/system", (*localAI).system},
	{http.MethodGet, "/metrics", (*localAI).metrics},
	{http.MethodGet, "/backends", (*localAI).backends},
	{http.MethodGet, "/models/available", (*localAI).emptyList},
	{http.MethodGet, "/api/traces", (*localAI).emptyList},
	{http.MethodGet, "/api/p2p", (*localAI).emptyList},
	{http.MethodGet, "/api/tags", (*localAI).ollamaTags},
	{http.MethodPost, "/models/apply", (*localAI).galleryApply},
	{http.MethodPost, "/backends/apply", (*localAI).galleryApply},
	{http.MethodPost, "/v1/responses", (*localAI).unservedGeneration},
	{http.MethodPost, "/v1/messages", (*localAI).unservedGeneration},
}

// publicRoutes need no key: core/http/auth/public_routes.go (the prefix rules
// /api/instructions/, /swagger/, /app/, /assets/ ... lead nowhere the relay serves).
var publicRoutes = map[string]bool{
	"GET /healthz": true, "GET /readyz": true, "GET /.well-known/localai.json": true,
	"GET /": true, "HEAD /": true, "GET /app": true, "GET /browse": true, "GET /login": true,
	"GET /explorer": true, "GET /favicon.svg": true, "GET /swagger": true, "GET /api/instructions": true,
	"GET /api/branding": true, "GET /api/auth/status": true,
}

// ServeHTTP runs LocalAI's middleware chain in core/http/app.go's order, then the route.
func (r *localAI) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	// e.Pre(middleware.RemoveTrailingSlash()); echo routes on the raw path when there is one.
	path := req.URL.RawPath
	if path == "" {
		path = req.URL.Path
	}
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	// BodyLimitWithConfig(UploadLimitMB): by Content-Length first, before authentication.
	if req.ContentLength > r.cfg.uploadLimit {
		httpError(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		return
	}
	req.Body = http.MaxBytesReader(w, req.Body, r.cfg.uploadLimit)
	// middleware.SecurityHeaders (core/http/middleware/security_headers.go), on every answer.
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval' blob:; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob: https:; media-src 'self' data: blob:; font-src 'self' data:; connect-src 'self' ws: wss: https: blob:; frame-src 'self' blob:; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
	// middleware.Compression (core/http/middleware/compress.go): gzip unless streaming.
	if !streamingPath(path) {
		h.Add("Vary", "Accept-Encoding")
		if strings.Contains(req.Header.Get("Accept-Encoding"), "gzip") {
			gw := &gzipWriter{ResponseWriter: w}
			defer gw.finish()
			w = gw
		}
	}
	// auth.Middleware (core/http/auth/middleware.go).
	if !r.authenticated(req) && !publicRoutes[req.Method+" "+path] && !strings.HasPrefix(path, "/api/node/") {
		h.Set("WWW-Authenticate", "Bearer")
		writeJSON(w, http.StatusUnauthorized, errorResponse{Error: &apiError{Message: "An authentication key is required", Code: http.StatusUnauthorized, Type: "invalid_request_error"}})
		return
	}
	// middleware.CORS() with its defaults (echo v4.15.1 middleware/cors.go): any origin.
	h.Add("Vary", "Origin")
	if req.Header.Get("Origin") != "" {
		h.Set("Access-Control-Allow-Origin", "*")
	}
	var allowed []string
	for _, rt := range localAIRoutes {
		if rt.path != path {
			continue
		}
		if rt.method == req.Method {
			rt.handle(r, w, req)
			return
		}
		allowed = append(allowed, rt.method)
	}
	switch {
	case req.Method == http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
	case len(allowed) > 0:
		// echo's router: the path exists for other methods (no implicit HEAD).
		h.Set("Allow", strings.Join(append(allowed, http.MethodOptions), ", "))
		httpError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	case path == "/" && r.cfg.webUI:
		http.Redirect(w, req, "/app", http.StatusMovedPermanently)
	default:
		// core/http/render.go notFoundHandler, for clients that do not ask for HTML.
		writeJSON(w, http.StatusNotFound, errorResponse{Error: &apiError{Message: "Resource not found", Code: http.StatusNotFound}})
	}
}

// authenticated checks the key the way auth.Middleware's legacy-key path does: extractKey
// (Authorization with "Bearer " stripped, any other Authorization as it is, then
// x-api-key, xi-api-key, the token cookie) against each key in constant time. No key
// configured: everything passes.
func (r *localAI) authenticated(req *http.Request) bool {
	if len(r.cfg.keys) == 0 {
		return true
	}
	key := ""
	if auth := req.Header.Get("Authorization"); strings.HasPrefix(auth, "Bearer ") {
		key = strings.TrimPrefix(auth, "Bearer ")
	} else if auth != "" {
		key = auth
	} else if k := req.Header.Get("x-api-key"); k != "" {
		key = k
	} else if k := req.Header.Get("xi-api-key"); k != "" {
		key = k
	} else if c, err := req.Cookie("token"); err == nil {
		key = c.Value
	}
	if key == "" {
		return false
	}
	for _, k := range r.cfg.keys {
		if subtle.ConstantTimeCompare([]byte(key), []byte(k)) == 1 {
			return true
		}
	}
	return false
}

// streamingPath is compress.go's skipCompression by path.
func streamingPath(path string) bool {
	for _, p := range []string{"/v1/chat/completions", "/chat/completions", "/v1/completions", "/completions", "/v1/engines/",
		"/v1/responses", "/v1/messages", "/v1/realtime", "/v1/audio/speech", "/audio/speech", "/v1/audio/transcriptions",
		"/audio/transcriptions", "/api/chat", "/api/generate", "/api/agent/jobs", "/api/backend-logs", "/api/node-backend-logs", "/ws/"} {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	for _, s := range []string{"/sse", "/progress", "/stream", "/events"} {
		if strings.Contains(path, s) {
			return true
		}
	}
	return false
}

// gzipWriter is echo's gzip middleware with MinLength: bodies below the minimum go out as
// they are, longer ones compressed.
type gzipWriter struct {
	http.ResponseWriter
	code int
	buf  bytes.Buffer
}

func (g *gzipWriter) WriteHeader(code int) { g.code = code }
func (g *gzipWriter) Write(p []byte) (int, error) {
	return g.buf.Write(p)
}

func (g *gzipWriter) finish() {
	if g.code == 0 {
		g.code = http.StatusOK
	}
	if g.buf.Len() < localAICompressionMinLength {
		g.ResponseWriter.WriteHeader(g.code)
		_, _ = g.buf.WriteTo(g.ResponseWriter)
		return
	}
	g.Header().Set("Content-Encoding", "gzip")
	g.Header().Del("Content-Length")
	g.ResponseWriter.WriteHeader(g.code)
	zw := gzip.NewWriter(g.ResponseWriter)
	_, _ = g.buf.WriteTo(zw)
	_ = zw.Close()
}

// writeJSON is echo's c.JSON: Content-Type application/json (echo v4.15.1, no charset) and
// json.Encoder's output, trailing newline included.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// httpError is what LocalAI's HTTPErrorHandler (core/http/app.go) makes of an
// echo.HTTPError: its Error() text, the code, an empty type.
func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorResponse{Error: &apiError{Message: fmt.Sprintf("code=%d, message=%s", code, msg), Code: code}})
}

// serverError is the same handler for a plain error (a failed generation): 500 and the text.
func serverError(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusInternalServerError, errorResponse{Error: &apiError{Message: msg, Code: http.StatusInternalServerError}})
}

func (r *localAI) healthz(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusOK) // c.NoContent(200): no body, no Content-Type
}

// readyz: core/http/routes/health.go.
func (r *localAI) readyz(w http.ResponseWriter, _ *http.Request) {
	if !r.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting", "reason": "startup preload in progress"})
		return
	}
	w.WriteHeader(http.StatusOK)
}

// listModels: core/http/endpoints/openai/list.go, every configured model as {id, object}.
func (r *localAI) listModels(w http.ResponseWriter, _ *http.Request) {
	data := []openAIModel{}
	for _, m := range r.cfg.models {
		data = append(data, openAIModel{ID: m.name, Object: "model"})
	}
	writeJSON(w, http.StatusOK, modelsDataResponse{Object: "list", Data: data})
}

func (r *localAI) version(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Version string `json:"version"`
	}{localAIVersion})
}

// wellKnown: the agent discovery document of core/http/routes/localai.go (abridged to the
// routes the relay serves).
func (r *localAI) wellKnown(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"version": localAIVersion, "endpoints": map[string]any{
		"models": "/v1/models", "chat_completions": "/v1/chat/completions", "completions": "/v1/completions",
		"embeddings": "/v1/embeddings", "metrics": "/metrics", "system": "/system", "version": "/version"}})
}

// system: core/http/endpoints/localai/system.go, the installed backend and the loaded model.
func (r *localAI) system(w http.ResponseWriter, _ *http.Request) {
	type sysInfoModel struct {
		ID      string `json:"id"`
		Backend string `json:"backend,omitempty"`
	}
	loaded := []sysInfoModel{}
	for _, m := range r.cfg.models {
		loaded = append(loaded, sysInfoModel{ID: m.name, Backend: "llama-cpp"})
	}
	writeJSON(w, http.StatusOK, struct {
		Backends []string       `json:"backends"`
		Models   []sysInfoModel `json:"loaded_models"`
	}{[]string{"llama-cpp"}, loaded})
}

// metrics: the Prometheus exposition LocalAI's /metrics serves (abridged).
func (r *localAI) metrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8; escaping=underscores")
	_, _ = io.WriteString(w, "# HELP target_info Target metadata\n# TYPE target_info gauge\ntarget_info{service_name=\"LocalAI\"} 1\n")
}

// backends: the installed backends (appliance.sh installs llama-cpp).
func (r *localAI) backends(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, []map[string]any{{"name": "llama-cpp", "installed": true}})
}

// emptyList answers the listing routes whose state the appliance leaves empty (no gallery
// reachable, no p2p, no traces recorded).
func (r *localAI) emptyList(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, []any{})
}

// ollamaTags: core/http/endpoints/ollama/models.go, the models in Ollama's list shape.
func (r *localAI) ollamaTags(w http.ResponseWriter, _ *http.Request) {
	models := []map[string]any{}
	for _, m := range r.cfg.models {
		models = append(models, map[string]any{"name": m.name, "model": m.name})
	}
	writeJSON(w, http.StatusOK, map[string]any{"models": models})
}

// galleryApply binds the body as echo does; the suite only ever sends what fails to bind.
// A body that binds would start a gallery job, which the relay does not: it says so.
func (r *localAI) galleryApply(w http.ResponseWriter, req *http.Request) {
	var v map[string]any
	if err := json.NewDecoder(req.Body).Decode(&v); err != nil {
		httpError(w, http.StatusBadRequest, "failed parsing request body: "+err.Error())
		return
	}
	serverError(w, "the LocalAI relay of the reference appliance runs no gallery jobs")
}

// unservedGeneration: Anthropic's /v1/messages and /v1/responses exist in LocalAI (the
// request extractor refuses unknown models with 404, core/http/middleware/request.go); the
// relay generates only through the OpenAI routes and says so for the served model.
func (r *localAI) unservedGeneration(w http.ResponseWriter, req *http.Request) {
	var v struct {
		Model string `json:"model"`
	}
	if err := json.NewDecoder(req.Body).Decode(&v); err != nil {
		httpError(w, http.StatusBadRequest, "failed parsing request body: "+err.Error())
		return
	}
	if _, ok := r.resolveModel(w, v.Model); !ok {
		return
	}
	serverError(w, "the LocalAI relay of the reference appliance serves generations on the OpenAI routes only")
}

// resolveModel is the request extractor's choice of model (core/http/middleware/request.go):
// none named means the first configured one; a name that is neither configured nor a
// HuggingFace id is refused with 404.
func (r *localAI) resolveModel(w http.ResponseWriter, name string) (modelConfig, bool) {
	if name == "" {
		if len(r.cfg.models) == 0 {
			httpError(w, http.StatusBadRequest, "Bad Request")
			return modelConfig{}, false
		}
		return r.cfg.models[0], true
	}
	for _, m := range r.cfg.models {
		if m.name == name {
			return m, true
		}
	}
	if strings.Contains(name, "/") {
		return modelConfig{name: name, parallel: 1}, true
	}
	writeJSON(w, http.StatusNotFound, errorResponse{Error: &apiError{
		Message: fmt.Sprintf("model %q not found. To see available models, call GET /v1/models", name),
		Code:    http.StatusNotFound, Type: "invalid_request_error"}})
	return modelConfig{}, false
}

// requestFields are the request fields LocalAI v4.9.0 reads and hands on to the backend
// (core/schema/openai.go OpenAIRequest, core/schema/prediction.go PredictionOptions); any
// other field a client sends is dropped, as LocalAI drops it.
var requestFields = []string{"messages", "prompt", "input", "stop", "max_tokens", "max_completion_tokens", "temperature", "top_p",
	"top_k", "min_p", "seed", "ignore_eos", "frequency_penalty", "presence_penalty", "repeat_penalty", "repeat_last_n",
	"typical_p", "n_keep", "logit_bias", "logprobs", "top_logprobs", "tools", "tool_choice", "response_format", "grammar",
	"encoding_format"}

// openAIRequest is a client's request as LocalAI parsed it, and what goes to llama-server.
type openAIRequest struct {
	model       modelConfig
	stream      bool
	usage       bool // stream_options.include_usage
	maxTokens   int  // max_completion_tokens, else max_tokens (request.go: the former wins)
	tools       bool // tools or functions given: the tool-call path (shouldUseFn)
	extraUsage  bool // the Extra-Usage header: timings in usage
	upstream    map[string]any
	correlation string
}

// parseRequest binds the body as SetModelAndConfig does and builds llama-server's request.
func (r *localAI) parseRequest(w http.ResponseWriter, req *http.Request) (*openAIRequest, bool) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			httpError(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		} else {
			httpError(w, http.StatusBadRequest, "failed parsing request body: "+err.Error())
		}
		return nil, false
	}
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil {
		httpError(w, http.StatusBadRequest, "failed parsing request body: "+err.Error())
		return nil, false
	}
	name, _ := in["model"].(string)
	m, ok := r.resolveModel(w, name)
	if !ok {
		return nil, false
	}
	o := &openAIRequest{model: m, upstream: map[string]any{"model": m.name}, extraUsage: req.Header.Get("Extra-Usage") != ""}
	for _, f := range requestFields {
		if v, ok := in[f]; ok && v != nil {
			o.upstream[f] = v
		}
	}
	if _, set := o.upstream["temperature"]; !set && m.temperature != "" {
		if t, err := strconv.ParseFloat(m.temperature, 64); err == nil {
			o.upstream["temperature"] = t // the model config's default
		}
	}
	for _, f := range []string{"max_tokens", "max_completion_tokens"} {
		if n, ok := in[f].(float64); ok && n > 0 {
			o.maxTokens = int(n)
		}
	}
	if tools, ok := in["tools"].([]any); ok && len(tools) > 0 {
		o.tools = true
	}
	if fns, ok := in["functions"].([]any); ok && len(fns) > 0 {
		o.tools = true
		if o.upstream["tools"] == nil { // request.go turns functions into tools for the backend
			var tools []any
			for _, f := range fns {
				tools = append(tools, map[string]any{"type": "function", "function": f})
			}
			o.upstream["tools"] = tools
		}
	}
	o.stream, _ = in["stream"].(bool)
	if so, ok := in["stream_options"].(map[string]any); ok {
		o.usage, _ = so["include_usage"].(bool)
	}
	o.upstream["stream"] = o.stream
	if o.stream {
		// The relay always needs the final counts; whether they reach the client is LocalAI's rule.
		o.upstream["stream_options"] = map[string]any{"include_usage": true}
	}
	return o, true
}

// finishReason is LocalAI's, not llama-server's: tool_calls when a tool was called,
// length when the completion reached max_tokens (reachedTokenBudget in inference.go),
// else stop.
func (o *openAIRequest) finishReason(completion int, toolsCalled bool) string {
	switch {
	case toolsCalled:
		return finishToolCalls
	case o.maxTokens > 0 && completion >= o.maxTokens:
		return finishLength
	}
	return finishStop
}

// ask sends the request on to llama-server.
func (r *localAI) ask(ctx context.Context, path string, body map[string]any) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.llamaURL+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.llamaKey)
	return r.client.Do(req)
}

// grpcInternal is how LocalAI's Go side sees a failed generation: the llama-cpp backend
// returns grpc INTERNAL with llama.cpp's message (backend/cpp/llama-cpp/grpc-server.cpp),
// and the error's text is grpc-go's.
func grpcInternal(msg string) string { return "rpc error: code = Internal desc = " + msg }

// llamaError is the message of a refusal from llama-server, llama.cpp's error text.
func llamaError(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	return fmt.Sprintf("backend answered %d: %s", resp.StatusCode, bytes.TrimSpace(b))
}

// llamaChoice and llamaResult are the parts of llama-server's answers the relay reads.
type (
	llamaToolCall struct {
		Index    int    `json:"index"`
		ID       string `json:"id"`
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	}
	llamaMessage struct {
		Content          *string         `json:"content"`
		ReasoningContent *string         `json:"reasoning_content"`
		ToolCalls        []llamaToolCall `json:"tool_calls"`
	}
	llamaChoice struct {
		Text    string       `json:"text"`
		Message llamaMessage `json:"message"`
		Delta   llamaMessage `json:"delta"`
	}
	llamaResult struct {
		Choices []llamaChoice `json:"choices"`
		Usage   *struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
		Timings *struct {
			PromptMS    float64 `json:"prompt_ms"`
			PredictedMS float64 `json:"predicted_ms"`
		} `json:"timings"`
		Data []struct {
			Embedding []float32 `json:"embedding"`
			Index     int       `json:"index"`
		} `json:"data"`
		Error json.RawMessage `json:"error"`
	}
)

// usage is LocalAI's usage from llama-server's counts; timings only with Extra-Usage.
func (o *openAIRequest) usageOf(res *llamaResult) openAIUsage {
	var u openAIUsage
	if res.Usage != nil {
		u = openAIUsage{PromptTokens: res.Usage.PromptTokens, CompletionTokens: res.Usage.CompletionTokens,
			TotalTokens: res.Usage.PromptTokens + res.Usage.CompletionTokens}
	}
	if o.extraUsage && res.Timings != nil {
		u.TimingPromptProcessing, u.TimingTokenGeneration = res.Timings.PromptMS, res.Timings.PredictedMS
	}
	return u
}

func str(s string) *string { return &s }

// chat: core/http/endpoints/openai/chat.go ChatEndpoint.
func (r *localAI) chat(w http.ResponseWriter, req *http.Request) {
	o, ok := r.parseRequest(w, req)
	if !ok {
		return
	}
	id, created := newUUID(), int(time.Now().Unix())
	if o.stream {
		r.chatStream(w, req, o, id, created)
		return
	}
	resp, err := r.ask(req.Context(), "/v1/chat/completions", o.upstream)
	if err != nil {
		serverError(w, err.Error())
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		serverError(w, grpcInternal(llamaError(resp)))
		return
	}
	var res llamaResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || len(res.Choices) == 0 {
		serverError(w, fmt.Sprintf("backend answer unreadable: %v", err))
		return
	}
	usage := o.usageOf(&res)
	got := res.Choices[0].Message
	content := ""
	if got.Content != nil {
		content = *got.Content
	}
	msg := &message{Role: "assistant", Content: content, Reasoning: got.ReasoningContent}
	toolsCalled := o.tools && len(got.ToolCalls) > 0
	if toolsCalled {
		// The tool-call choice: every call at index 0, the text beside them as content.
		for _, tc := range got.ToolCalls {
			callID := tc.ID
			if callID == "" {
				callID = id
			}
			msg.ToolCalls = append(msg.ToolCalls, toolCall{ID: callID, Type: "function",
				FunctionCall: functionCall{Name: tc.Function.Name, Arguments: tc.Function.Arguments}})
		}
	}
	fr := o.finishReason(usage.CompletionTokens, toolsCalled)
	writeJSON(w, http.StatusOK, openAIResponse{ID: id, Created: created, Model: o.model.name, Object: "chat.completion",
		Choices: []choice{{Index: 0, FinishReason: &fr, Message: msg}}, Usage: &usage})
}

// sse writes LocalAI's events ("data: %s\n\n", flushed one by one as generated).
type sse struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	err error
}

func (s *sse) event(v any) {
	b, _ := json.Marshal(v)
	s.raw(b)
}

func (s *sse) raw(b []byte) {
	if s.err != nil {
		return
	}
	if _, s.err = fmt.Fprintf(s.w, "data: %s\n\n", b); s.err == nil {
		s.err = s.rc.Flush()
	}
}

// chatStream is ChatEndpoint's toStream branch with processStream (no tools) or
// processStreamWithTools (core/http/endpoints/openai/chat_stream_workers.go) as worker.
func (r *localAI) chatStream(w http.ResponseWriter, req *http.Request, o *openAIRequest, id string, created int) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Correlation-ID", id)
	s := &sse{w: w, rc: http.NewResponseController(w)}
	chunk := func(d *message) openAIResponse {
		return openAIResponse{ID: id, Created: created, Model: o.model.name, Object: "chat.completion.chunk",
			Choices: []choice{{Index: 0, Delta: d}}}
	}
	var sentRole bool
	// A failed generation: a 200 stream with an error event, then [DONE] (chat.go's
	// `ended` branch). fail is for errors before the backend answers.
	fail := func(msg string) {
		s.event(errorResponse{Error: &apiError{Message: msg, Type: "server_error", Code: "server_error"}})
		s.raw([]byte("[DONE]"))
	}
	// failed is for llama.cpp's own refusals: grpc-server.cpp's PredictStream first writes
	// the message as a reply, which core/backend/llm.go hands to the token callback, so
	// it is streamed as content (after the role chunk) before the error event.
	failed := func(msg string) {
		if !sentRole {
			s.event(chunk(&message{Role: "assistant"}))
		}
		s.event(chunk(&message{Content: &msg}))
		fail(grpcInternal(msg))
	}
	resp, err := r.ask(req.Context(), "/v1/chat/completions", o.upstream)
	if err != nil {
		if req.Context().Err() == nil {
			fail(err.Error())
		}
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		failed(llamaError(resp))
		return
	}
	var (
		final llamaResult
		calls []llamaToolCall // tool calls, merged by index, emitted at the end
	)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			break
		}
		var ev llamaResult
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			fail("backend stream unreadable: " + err.Error())
			return
		}
		if len(ev.Error) > 0 {
			var e struct {
				Message string `json:"message"`
			}
			_ = json.Unmarshal(ev.Error, &e)
			failed(e.Message)
			return
		}
		if ev.Usage != nil {
			final.Usage = ev.Usage
		}
		if ev.Timings != nil {
			final.Timings = ev.Timings
		}
		for _, c := range ev.Choices {
			d := c.Delta
			text := ""
			if d.Content != nil {
				text = *d.Content
			}
			if o.tools {
				if d.ReasoningContent != nil && *d.ReasoningContent != "" {
					s.event(chunk(&message{Reasoning: d.ReasoningContent}))
				}
				if text != "" {
					if !sentRole {
						s.event(chunk(&message{Role: "assistant"}))
						sentRole = true
					}
					s.event(chunk(&message{Content: &text}))
				}
				calls = mergeToolCalls(calls, d.ToolCalls)
				continue
			}
			// processStream: one chunk per generated piece, the role chunk before the first.
			if text == "" && (d.ReasoningContent == nil || *d.ReasoningContent == "") {
				continue
			}
			if !sentRole {
				s.event(chunk(&message{Role: "assistant"}))
				sentRole = true
			}
			delta := &message{Reasoning: d.ReasoningContent}
			if text != "" {
				delta.Content = &text
			}
			s.event(chunk(delta))
		}
		if s.err != nil {
			return // the client left: LocalAI cancels the generation (input.Cancel()), so does the relay
		}
	}
	if err := sc.Err(); err != nil {
		if req.Context().Err() == nil {
			fail(err.Error())
		}
		return
	}
	if o.tools {
		// buildNoActionFinalChunks / buildDeferredToolCallChunks (chat_emit.go).
		if len(calls) == 0 && !sentRole {
			s.event(chunk(&message{Role: "assistant"}))
			s.event(chunk(&message{Content: str("")}))
		}
		for i, tc := range calls {
			callID := tc.ID
			if callID == "" {
				callID = fmt.Sprintf("%s-%d", id, i)
			}
			s.event(chunk(&message{Role: "assistant", ToolCalls: []toolCall{{Index: i, ID: callID, Type: "function",
				FunctionCall: functionCall{Name: tc.Function.Name}}}}))
			s.event(chunk(&message{Role: "assistant", ToolCalls: []toolCall{{Index: i, ID: callID, Type: "function",
				FunctionCall: functionCall{Arguments: tc.Function.Arguments}}}}))
		}
	}
	usage := o.usageOf(&final)
	fr := o.finishReason(usage.CompletionTokens, len(calls) > 0)
	s.event(openAIResponse{ID: id, Created: created, Model: o.model.name, Object: "chat.completion.chunk",
		Choices: []choice{{Index: 0, FinishReason: &fr, Delta: &message{}}}})
	if o.usage {
		s.event(usageTrailer{ID: id, Created: created, Model: o.model.name, Object: "chat.completion.chunk", Choices: []choice{}, Usage: usage})
	}
	s.raw([]byte("[DONE]"))
}

// mergeToolCalls is chat.go's mergeToolCallDeltas: deltas of one call share its index.
func mergeToolCalls(calls, deltas []llamaToolCall) []llamaToolCall {
	for _, d := range deltas {
		i := sort.Search(len(calls), func(i int) bool { return calls[i].Index >= d.Index })
		if i == len(calls) || calls[i].Index != d.Index {
			calls = append(calls, llamaToolCall{})
			copy(calls[i+1:], calls[i:])
			calls[i] = llamaToolCall{Index: d.Index}
		}
		if d.ID != "" {
			calls[i].ID = d.ID
		}
		if d.Function.Name != "" {
			calls[i].Function.Name = d.Function.Name
		}
		calls[i].Function.Arguments += d.Function.Arguments
	}
	return calls
}

// completion: core/http/endpoints/openai/completion.go. A failed streamed generation is
// the one place LocalAI v4.9.0 still reports an error as content: "Internal error: ..."
// as the text of a stop chunk, and no [DONE].
func (r *localAI) completion(w http.ResponseWriter, req *http.Request) {
	o, ok := r.parseRequest(w, req)
	if !ok {
		return
	}
	id := req.Header.Get("X-Correlation-ID")
	if id == "" {
		id = newUUID()
	}
	created := int(time.Now().Unix())
	resp, err := r.ask(req.Context(), "/v1/completions", o.upstream)
	refusal := "" // llama.cpp's own message, streamed as a token first (see chatStream)
	if err == nil && resp.StatusCode != http.StatusOK {
		refusal = llamaError(resp)
		err = errors.New(grpcInternal(refusal))
		resp.Body.Close()
	}
	if !o.stream {
		if err != nil {
			serverError(w, err.Error())
			return
		}
		defer resp.Body.Close()
		var res llamaResult
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || len(res.Choices) == 0 {
			serverError(w, fmt.Sprintf("backend answer unreadable: %v", err))
			return
		}
		usage := o.usageOf(&res)
		fr := o.finishReason(usage.CompletionTokens, false)
		writeJSON(w, http.StatusOK, openAIResponse{ID: id, Created: created, Model: o.model.name, Object: "text_completion",
			Choices: []choice{{Index: 0, FinishReason: &fr, Text: res.Choices[0].Text}}, Usage: &usage})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	s := &sse{w: w, rc: http.NewResponseController(w)}
	stop := finishStop
	fail := func(msg string) {
		s.event(openAIResponse{ID: id, Created: created, Model: o.model.name, Object: "text_completion",
			Choices: []choice{{Index: 0, FinishReason: &stop, Text: "Internal error: " + msg}}})
	}
	if err != nil {
		if refusal != "" {
			s.event(openAIResponse{ID: id, Created: created, Model: o.model.name, Object: "text_completion",
				Choices: []choice{{Index: 0, Text: refusal}}})
		}
		fail(err.Error())
		return
	}
	defer resp.Body.Close()
	var final llamaResult
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var ev llamaResult
		if json.Unmarshal([]byte(data), &ev) != nil || len(ev.Error) > 0 {
			fail("backend stream: " + data)
			return
		}
		if ev.Usage != nil {
			final.Usage = ev.Usage
		}
		for _, c := range ev.Choices {
			if c.Text != "" {
				s.event(openAIResponse{ID: id, Created: created, Model: o.model.name, Object: "text_completion",
					Choices: []choice{{Index: 0, Text: c.Text}}})
			}
		}
		if s.err != nil {
			return
		}
	}
	s.event(openAIResponse{ID: id, Created: created, Model: o.model.name, Object: "text_completion",
		Choices: []choice{{Index: 0, FinishReason: &stop}}})
	if o.usage && final.Usage != nil {
		s.event(usageTrailer{ID: id, Created: created, Model: o.model.name, Object: "chat.completion.chunk", Choices: []choice{}, Usage: o.usageOf(&final)})
	}
	s.raw([]byte("[DONE]"))
}

// embeddings: core/http/endpoints/openai/embeddings.go; a backend that refuses (the chat
// model was not loaded for embeddings) is a 500 with its reason.
func (r *localAI) embeddings(w http.ResponseWriter, req *http.Request) {
	o, ok := r.parseRequest(w, req)
	if !ok {
		return
	}
	resp, err := r.ask(req.Context(), "/v1/embeddings", o.upstream)
	if err != nil {
		serverError(w, err.Error())
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		serverError(w, grpcInternal(llamaError(resp)))
		return
	}
	var res llamaResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		serverError(w, err.Error())
		return
	}
	out := openAIResponse{ID: newUUID(), Created: int(time.Now().Unix()), Model: o.model.name, Object: "list", Usage: &openAIUsage{}}
	for _, d := range res.Data {
		out.Data = append(out.Data, item{Embedding: d.Embedding, Index: d.Index, Object: "embedding"})
	}
	if res.Usage != nil {
		out.Usage.PromptTokens, out.Usage.TotalTokens = res.Usage.PromptTokens, res.Usage.PromptTokens
	}
	writeJSON(w, http.StatusOK, out)
}

// tokenize is TokenizeEndpoint (core/http/endpoints/localai/tokenize.go): the model's
// tokenizer on "content" (the llama-cpp backend's TokenizeString: no special tokens, no
// slot taken), {"tokens": [...]} back; a request naming no model is a bare 400.
func (r *localAI) tokenize(w http.ResponseWriter, req *http.Request) {
	var in struct {
		Model   string `json:"model"`
		Content string `json:"content"`
	}
	if err := json.NewDecoder(req.Body).Decode(&in); err != nil {
		httpError(w, http.StatusBadRequest, "failed parsing request body: "+err.Error())
		return
	}
	if in.Model == "" {
		httpError(w, http.StatusBadRequest, "Bad Request")
		return
	}
	if _, ok := r.resolveModel(w, in.Model); !ok {
		return
	}
	resp, err := r.ask(req.Context(), "/tokenize", map[string]any{"content": in.Content, "add_special": false})
	if err != nil {
		serverError(w, err.Error())
		return
	}
	defer resp.Body.Close()
	var out struct {
		Tokens []int32 `json:"tokens"`
	}
	if resp.StatusCode != http.StatusOK {
		serverError(w, grpcInternal(llamaError(resp)))
		return
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		serverError(w, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// newUUID is a random (version 4) UUID, as github.com/google/uuid's New.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// localAIRelays tracks the relays of an instance, so StopEngine and Close stop them.
type localAIRelays struct {
	mu     sync.Mutex
	relays []*localAI
}

func (l *localAIRelays) add(r *localAI) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.relays = append(l.relays, r)
}

func (l *localAIRelays) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.relays {
		r.close()
	}
	l.relays = nil
}

// localAIEngineArgs starts llama-server the way LocalAI's llama-cpp backend loads the model
// configure wrote: the YAML's context_size, one slot unless its options say parallel:N
// (backend/cpp/llama-cpp/grpc-server.cpp: n_parallel defaults to 1, so LocalAI queues
// concurrent requests for one model).
func (in *Instance) localAIEngineArgs() error {
	m, err := readModelConfig(filepath.Join(in.Files.Dir, "opt", "local-ai", "models", in.Model+".yaml"))
	if err != nil {
		return fmt.Errorf("reference appliance: %w", err)
	}
	for i := 0; i+1 < len(in.Files.Engine); i++ {
		switch in.Files.Engine[i] {
		case "--ctx-size":
			if m.contextSize > 0 {
				in.Files.Engine[i+1] = strconv.Itoa(m.contextSize)
			}
		case "--parallel":
			in.Files.Engine[i+1] = strconv.Itoa(max(m.parallel, 1))
		}
	}
	return nil
}

// startLocalAI starts the relay where LocalAI would listen (LOCALAI_ADDRESS), configured
// from what configure wrote, in front of llama-server on llamaPort.
func (in *Instance) startLocalAI(llamaPort int) error {
	env, err := readEnvFile(in.Files.EngineEnv)
	if err != nil {
		return fmt.Errorf("reference appliance: %w", err)
	}
	cfg, err := readLocalAIConfig(in.Files.EngineEnv, filepath.Join(in.Files.Dir, "opt", "local-ai", "models"))
	if err != nil {
		return fmt.Errorf("reference appliance: %w", err)
	}
	key, err := os.ReadFile(in.Files.EngineKey)
	if err != nil {
		return fmt.Errorf("reference appliance: %w", err)
	}
	in.llamaURL, in.llamaKey = fmt.Sprintf("http://127.0.0.1:%d", llamaPort), strings.TrimSpace(string(key))
	r, err := serveLocalAI(env["LOCALAI_ADDRESS"], in.llamaURL, in.llamaKey, cfg)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("reference appliance: LocalAI relay on %s: %w", env["LOCALAI_ADDRESS"], errPortTaken)
	}
	if err != nil {
		return fmt.Errorf("reference appliance: %w", err)
	}
	in.relays.add(r)
	return nil
}

// exposeLocalAI serves a second LocalAI on host:port with no key, in front of the instance's
// llama-server: LocalAI bound to a public address without LOCALAI_API_KEY.
func (in *Instance) exposeLocalAI(host string, port int) error {
	cfg, err := readLocalAIConfig(in.Files.EngineEnv, filepath.Join(in.Files.Dir, "opt", "local-ai", "models"))
	if err != nil {
		return fmt.Errorf("reference appliance: %w", err)
	}
	cfg.keys = nil
	r, err := serveLocalAI(net.JoinHostPort(host, strconv.Itoa(port)), in.llamaURL, in.llamaKey, cfg)
	if err != nil {
		return fmt.Errorf("reference appliance: expose LocalAI: %w", err)
	}
	in.relays.add(r)
	return nil
}
