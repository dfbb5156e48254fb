package acceptance

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
)

// What Cline sends for native tool calls, read in cline/cline at v3.89.2:
// apps/vscode/src/core/api/providers/openai.ts (the OpenAI-compatible provider) always
// streams, with stream_options.include_usage, and adds getOpenAIToolParams(tools)
// (transform/tool-call-processor.ts): the tools, tool_choice "auto" and
// parallel_tool_calls false. Its ToolCallProcessor accumulates delta.tool_calls by index
// and uses a call only once it has seen an id, a function name and argument text.
// transform/openai-format.ts sends the call back as an assistant message with content ""
// and tool_calls [{id, type: "function", function: {name, arguments}}], followed by a
// role "tool" message whose tool_call_id is that id. (From v4 Cline sends the same wire
// format through @ai-sdk/openai-compatible: sdk/packages/llms/src/providers/vendors/
// openai-compatible.ts.) The check asks for tool_choice "required" instead of "auto", so
// that a real model must call the tool rather than may. On the appliance, Devstral's
// model YAML disables LocalAI's own function grammar (appliances/slm-copilot/appliance.sh),
// so the tools reach the model's chat template and llama.cpp's tool-call parser.

// readFileTool is Cline's native read_file tool (the schema in
// apps/vscode/src/core/prompts/system-prompt/__tests__/__snapshots__/
// openai_gpt_5_native.tools.snap at v3.89.2, descriptions shortened).
var readFileTool = openai.Tool{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{
	Name:        "read_file",
	Description: "Request to read the contents of a file at the specified path.",
	Parameters: json.RawMessage(`{"type":"object","properties":{` +
		`"path":{"type":"string","description":"The path of the file to read (relative to the current working directory /home/dev/project)"},` +
		`"start_line":{"type":"integer","description":"The 1-based line number to start reading from (inclusive). Defaults to 1."},` +
		`"end_line":{"type":"integer","description":"The 1-based line number to stop reading at (inclusive)."},` +
		`"task_progress":{"type":"string","description":"A checklist showing task progress after this tool use is completed."}` +
		`},"required":["path"],"additionalProperties":false}`),
}}

// toolCallMaxTokens bounds a tool-call answer: the call itself is a few dozen tokens.
// followUpMaxTokens bounds the answer to the tool's result, of which only the end matters.
const (
	toolCallMaxTokens = 128
	followUpMaxTokens = 32
)

// toolCall is one tool call as its stream's deltas built it up.
type toolCall struct {
	ids       []string // every id a delta carried, in order
	name      string
	arguments strings.Builder
}

// streamedToolCalls collects the delta.tool_calls of a captured stream by index, the way
// Cline's ToolCallProcessor does.
func streamedToolCalls(c *copilot.Capture) map[int]*toolCall {
	calls := map[int]*toolCall{}
	for _, e := range c.Events() {
		var frame struct {
			Choices []struct {
				Delta struct {
					ToolCalls []struct {
						Index    *int   `json:"index"`
						ID       string `json:"id"`
						Function struct {
							Name      string `json:"name"`
							Arguments string `json:"arguments"`
						} `json:"function"`
					} `json:"tool_calls"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(e.Data), &frame) != nil {
			continue
		}
		for _, ch := range frame.Choices {
			for i, d := range ch.Delta.ToolCalls {
				index := i
				if d.Index != nil {
					index = *d.Index
				}
				call := calls[index]
				if call == nil {
					call = &toolCall{}
					calls[index] = call
				}
				if d.ID != "" {
					call.ids = append(call.ids, d.ID)
				}
				if d.Function.Name != "" {
					call.name = d.Function.Name
				}
				call.arguments.WriteString(d.Function.Arguments)
			}
		}
	}
	return calls
}

// TestClineToolCall: a streamed request with Cline's read_file tool gets the call as
// delta.tool_calls (one id, JSON arguments with the schema's required keys), and the next
// turn, carrying the assistant's tool call and the tool's result, is accepted.
func TestClineToolCall(t *testing.T) {
	t.Parallel()
	// A short system prompt: TestClineRequest judges the size of Cline's; this check, the
	// tool-call round trip.
	task := []openai.ChatCompletionMessage{
		{Role: openai.ChatMessageRoleSystem, Content: "You are Cline, a highly skilled software engineer. Use the tools to complete the task."},
		{Role: openai.ChatMessageRoleUser, MultiContent: []openai.ChatMessagePart{
			{Type: openai.ChatMessagePartTypeText, Text: "<task>\nRead README.md and summarise it.\n</task>"},
		}},
	}
	began := time.Now()
	s := streamChat(t, openai.ChatCompletionRequest{
		Model:             target.Model,
		MaxTokens:         toolCallMaxTokens,
		Messages:          task,
		Tools:             []openai.Tool{readFileTool},
		ToolChoice:        "required",
		ParallelToolCalls: false,
		StreamOptions:     &openai.StreamOptions{IncludeUsage: true},
	})
	calls := streamedToolCalls(s.capture)
	call := calls[0]
	t.Logf("tool-call stream took %s: %s", time.Since(began).Round(time.Millisecond), target.Redact(describeCalls(calls)))

	t.Run("tool_call_streamed", func(t *testing.T) {
		if call == nil {
			if text := strings.TrimSpace(s.content.String()); text != "" {
				t.Fatalf("no delta.tool_calls in the stream: the model answered in text instead (%q, finish_reason %q) although tool_choice was \"required\"; "+
					"the tools did not reach the model as tools: look at the model's chat template (does it support tools?) and, on LocalAI, the model YAML's function grammar settings",
					target.Redact(truncate(text, 200)), s.finish)
			}
			t.Fatalf("the stream carried neither delta.tool_calls nor content (finish_reason %q, %d events): the tool call was lost on the way; look at what rewrites responses between the engine and the client",
				s.finish, len(s.capture.Events()))
		}
		assert.Equal(t, readFileTool.Function.Name, call.name, "the streamed tool call names function %q, not the offered %q", call.name, readFileTool.Function.Name)
	})
	t.Run("arguments_parse", func(t *testing.T) {
		if call == nil {
			t.Skip("no tool call streamed, so no arguments to judge (see tool_call_streamed)")
		}
		args := call.arguments.String()
		var parsed map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(args), &parsed),
			"the tool call's arguments, joined from its deltas, are not a JSON object: %q; Cline cannot run the tool. Look at what rewrites responses between the engine and the client", target.Redact(truncate(args, 200)))
		var path string
		assert.NoError(t, json.Unmarshal(parsed["path"], &path), "the arguments %q lack the schema's required string \"path\"", target.Redact(truncate(args, 200)))
	})
	t.Run("call_id", func(t *testing.T) {
		if call == nil {
			t.Skip("no tool call streamed, so no id to judge (see tool_call_streamed)")
		}
		require.NotEmpty(t, call.ids, "the tool call's deltas carried no id; Cline ignores a call without one and cannot answer it (tool_call_id)")
		for _, id := range call.ids[1:] {
			if !assert.Equal(t, call.ids[0], id, "the tool call's deltas carry different ids (%q); a call needs one id across the stream", call.ids) {
				break
			}
		}
	})
	t.Run("tool_result_accepted", func(t *testing.T) {
		// The call as streamed when there is one, else a stand-in: this leaf judges
		// whether the turn is accepted, not the call.
		id, args := "call_0", `{"path":"README.md"}`
		if call != nil && len(call.ids) > 0 && json.Valid([]byte(call.arguments.String())) {
			id, args = call.ids[0], call.arguments.String()
		} else {
			t.Logf("no well-formed streamed call: answering a stand-in call %s(%s)", readFileTool.Function.Name, args)
		}
		turn := append(task,
			openai.ChatCompletionMessage{Role: openai.ChatMessageRoleAssistant, Content: "", ToolCalls: []openai.ToolCall{
				{ID: id, Type: openai.ToolTypeFunction, Function: openai.FunctionCall{Name: readFileTool.Function.Name, Arguments: args}},
			}},
			openai.ChatCompletionMessage{Role: openai.ChatMessageRoleTool, ToolCallID: id, Content: "1 | # Project\n2 | A small Go service."},
		)
		assertTurnAccepted(t, openai.ChatCompletionRequest{
			Model:         target.Model,
			MaxTokens:     followUpMaxTokens,
			Messages:      turn,
			Tools:         []openai.Tool{readFileTool},
			ToolChoice:    "auto", // as Cline sends it
			StreamOptions: &openai.StreamOptions{IncludeUsage: true},
		})
	})
}

// assertTurnAccepted streams req and requires a 200 whose stream answers (a finish
// reason) and ends with [DONE].
func assertTurnAccepted(t *testing.T, req openai.ChatCompletionRequest) {
	t.Helper()
	tap := &copilot.Tap{}
	req.Stream = true
	request := requestLine(http.MethodPost, "/v1/chat/completions")
	defer func() { recordStream(t, request, tap.Last(), true) }()
	stream, err := target.OpenAI(target.HTTPClient(tap)).CreateChatCompletionStream(requestContext(t), req)
	if err != nil && tap.Last() == nil {
		recordNoResponse(t, request, err)
	}
	if err != nil {
		status := errStatus(err)
		if status == 0 {
			t.Fatalf("the turn with the tool's result got no answer: %s", redactErr(err))
		}
		t.Fatalf("the turn carrying the assistant's tool_calls and the tool's result (role %q) was refused with %d: %s; Cline sends this after every tool use. Look at the engine's chat template (tool messages) and what filters requests on the way",
			openai.ChatMessageRoleTool, status, redactErr(err))
	}
	defer stream.Close()
	finish := ""
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "reading the stream that answers the tool's result: %s", redactErr(err))
		for _, c := range chunk.Choices {
			if c.FinishReason != "" {
				finish = string(c.FinishReason)
			}
		}
	}
	c := tap.Last()
	require.NotNil(t, c, "no response recorded")
	assert.NotEmpty(t, finish, "the answer to the tool's result has no finish_reason: %s", snippet(c.Body()))
	assertDone(t, c)
}

// describeCalls summarises streamed tool calls for a log line.
func describeCalls(calls map[int]*toolCall) string {
	var parts []string
	for i, c := range calls {
		parts = append(parts, fmt.Sprintf("#%d %s(%s) ids %q", i, c.name, c.arguments.String(), c.ids))
	}
	return strings.Join(parts, "; ")
}
