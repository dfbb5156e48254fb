package faults

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/fixtures/gguf"
	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

// The acceptance suite's native tool-call leaves (acceptance/tools_test.go).
const (
	toolCallStreamed = "TestClineToolCall/tool_call_streamed"
	toolCallArgs     = "TestClineToolCall/arguments_parse"
	toolCallID       = "TestClineToolCall/call_id"
	toolResult       = "TestClineToolCall/tool_result_accepted"
)

// toolFaults break, one each, what Cline's native tool calls need. The reference engine
// streams a call as deltas like {"index":0,"id":"…","type":"function","function":
// {"name":"read_file","arguments":"{"}}, then one delta per argument token
// ({"index":0,"function":{"arguments":"\""}}), the last being "}".
func toolFaults() []fault {
	refuseTool := &requestRelay{refuse: func(body []byte) bool { return bytes.Contains(body, []byte(`"role":"tool"`)) }}
	// Leaves that cannot judge once no call is streamed: they skip.
	noCall := []string{toolCallArgs, toolCallID}
	return []fault{
		{
			// The engine got the tools but its template cannot render them: the model chats.
			name:    "template_without_tools",
			tamper:  plainTemplate,
			fails:   map[string]string{toolCallStreamed: "the model answered in text instead"},
			mayFail: noCall,
		},
		{
			name:    "tool_calls_dropped",
			tamper:  rewriteBodies(`"tool_calls":[`, `"tool_calls_dropped":[`, "text/event-stream"),
			fails:   map[string]string{toolCallStreamed: "neither delta.tool_calls nor content"},
			mayFail: noCall,
		},
		{
			name:   "tool_call_other_function",
			tamper: rewriteBodies(`"name":"read_file"`, `"name":"write_to_file"`, "text/event-stream"),
			fails:  map[string]string{toolCallStreamed: `names function "write_to_file", not the offered "read_file"`},
		},
		{
			// Every argument fragment gains a character: the joined text is no JSON.
			name:   "tool_arguments_mangled",
			tamper: rewriteBodies(`"arguments":"`, `"arguments":"#`, "text/event-stream"),
			fails:  map[string]string{toolCallArgs: "are not a JSON object"},
		},
		{
			// Valid JSON, but the arguments are wrapped one level down: no "path" on top.
			name: "tool_arguments_without_required_key",
			tamper: rewriteBodiesEach("text/event-stream",
				`"arguments":"{"`, `"arguments":"{\\"wrapped\\":{"`,
				`"arguments":"}"`, `"arguments":"}}"`),
			fails: map[string]string{toolCallArgs: `lack the schema's required string "path"`},
		},
		{
			name:   "tool_call_id_dropped",
			tamper: rewriteBodies(`{"index":0,"id":"`, `{"index":0,"dropped_id":"`, "text/event-stream"),
			fails:  map[string]string{toolCallID: "carried no id"},
		},
		{
			// Each later delta claims an id of its own.
			name:   "tool_call_id_changes",
			tamper: rewriteBodies(`{"index":0,"function":{`, `{"index":0,"id":"call_other","function":{`, "text/event-stream"),
			fails:  map[string]string{toolCallID: "carry different ids"},
		},
		{
			// A filter on the way that refuses role "tool" messages, as a proxy or engine
			// without tool support does.
			name:   "tool_message_refused",
			tamper: refuseTool.tamper,
			after:  refuseTool.stopWithTest,
			fails:  map[string]string{toolResult: `(role "tool") was refused with 400`},
		},
	}
}

// plainTemplate makes the engine render chats with the fixture's template from before
// tool support, which ignores tools.
func plainTemplate(f *reference.Files) error {
	path := filepath.Join(f.Dir, "plain-template.jinja")
	if err := os.WriteFile(path, []byte(gguf.PlainChatTemplate()), 0o644); err != nil {
		return err
	}
	f.Engine = append(f.Engine, "--chat-template-file", path)
	return nil
}

// rewriteBodiesEach is rewriteBodies for several from, to pairs at once.
func rewriteBodiesEach(types string, pairs ...string) func(*reference.Files) error {
	var filters strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(&filters, "sub_filter '%s' '%s';\n", pairs[i], pairs[i+1])
	}
	return filterEngine(fmt.Sprintf("%ssub_filter_once off;\nsub_filter_types %s;", filters.String(), types))
}

// requestRelay passes every request on to the engine, except that it answers 400 with an
// OpenAI-style error to a chat request whose body refuse matches.
type requestRelay struct {
	refuse func(body []byte) bool
	srv    *http.Server
}

// tamper starts the relay and points the front door's upstream at it.
func (r *requestRelay) tamper(f *reference.Files) error {
	engineAddr := f.Upstream
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	proxy := engineProxy(engineAddr)
	r.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(io.LimitReader(req.Body, 64<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if r.refuse(body) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"code":400,"message":"unsupported message role: tool","type":"invalid_request_error"}}`)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		proxy.ServeHTTP(w, req)
	})}
	go func() { _ = r.srv.Serve(l) }()
	return replace(f.Site, "server "+engineAddr+";", "server "+l.Addr().String()+";")
}

// stopWithTest stops the relay when the test ends.
func (r *requestRelay) stopWithTest(t *testing.T, _ *reference.Instance) {
	require.NotNil(t, r.srv, "the relay's tamper did not run")
	t.Cleanup(func() { _ = r.srv.Close() })
}
