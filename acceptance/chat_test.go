package acceptance

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
)

// engineErrorPrefix starts the content LocalAI streams, with HTTP 200, when generation fails.
const engineErrorPrefix = "Internal error"

// TestChatCompletion: a non-streamed chat completion returns content, a finish reason and
// token usage.
func TestChatCompletion(t *testing.T) {
	t.Parallel()
	resp, err := target.OpenAI(target.HTTPClient(nil)).CreateChatCompletion(requestContext(t), openai.ChatCompletionRequest{
		Model:     target.Model,
		MaxTokens: 24,
		Messages:  []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Write a Go function that adds two integers."}},
	})
	if status := errStatus(err); status == http.StatusGatewayTimeout {
		t.Fatalf("POST /v1/chat/completions: %s: the front door gave up waiting for the generation; its proxy_read_timeout is shorter than the generation", redactErr(err))
	}
	require.NoError(t, err, "POST /v1/chat/completions: %s", redactErr(err))
	require.NotEmpty(t, resp.Choices, "no choices in the response")
	content := resp.Choices[0].Message.Content
	assert.NotEmpty(t, strings.TrimSpace(content), "empty content (finish_reason %q, usage.completion_tokens %d); look at the engine's log",
		resp.Choices[0].FinishReason, resp.Usage.CompletionTokens)
	assert.False(t, strings.HasPrefix(strings.TrimSpace(content), engineErrorPrefix), "the engine reported an error as content: %q; look at the engine's log", target.Redact(content))
	assert.NotEmpty(t, resp.Choices[0].FinishReason, "no finish_reason")
	assert.Positive(t, resp.Usage.PromptTokens, "usage.prompt_tokens missing or zero: %+v", resp.Usage)
	assert.Positive(t, resp.Usage.CompletionTokens, "usage.completion_tokens missing or zero: %+v", resp.Usage)
}

// errStatus is the HTTP status go-openai saw with err, or 0 when none came back.
func errStatus(err error) int {
	var reqErr *openai.RequestError
	var apiErr *openai.APIError
	switch {
	case errors.As(err, &reqErr):
		return reqErr.HTTPStatusCode
	case errors.As(err, &apiErr):
		return apiErr.HTTPStatusCode
	}
	return 0
}

// streamed is what one streamed chat completion delivered.
type streamed struct {
	chunks  int // chunks with non-empty content, as go-openai decoded them
	content strings.Builder
	finish  string
	usage   *openai.Usage
	capture *copilot.Capture
}

// streamChat runs a streamed chat completion through go-openai, recording the raw stream.
func streamChat(t *testing.T, req openai.ChatCompletionRequest) *streamed {
	t.Helper()
	tap := &copilot.Tap{}
	req.Stream = true
	stream, err := target.OpenAI(target.HTTPClient(tap)).CreateChatCompletionStream(requestContext(t), req)
	require.NoError(t, err, "streamed POST /v1/chat/completions: %s", redactErr(err))
	defer stream.Close()
	out := &streamed{capture: tap.Last()}
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "reading the stream after %d chunks: %s", out.chunks, redactErr(err))
		if chunk.Usage != nil && chunk.Usage.TotalTokens > 0 {
			out.usage = chunk.Usage
		}
		for _, c := range chunk.Choices {
			if c.Delta.Content != "" {
				out.chunks++
				out.content.WriteString(c.Delta.Content)
			}
			if c.FinishReason != "" {
				out.finish = string(c.FinishReason)
			}
		}
	}
	return out
}

// contentEvents are the stream's events that carry generated text.
func contentEvents(c *copilot.Capture) []copilot.Event {
	var out []copilot.Event
	for _, e := range c.Events() {
		var frame struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if json.Unmarshal([]byte(e.Data), &frame) == nil && len(frame.Choices) > 0 && frame.Choices[0].Delta.Content != "" {
			out = append(out, e)
		}
	}
	return out
}

// minChunks is how many content chunks make a stream "several".
const minChunks = 3

// TestChatStream: a streamed chat completion is an SSE stream whose content arrives
// chunk by chunk as it is generated, with a finish reason and the closing [DONE].
func TestChatStream(t *testing.T) {
	t.Parallel()
	s := streamChat(t, openai.ChatCompletionRequest{
		Model:     target.Model,
		MaxTokens: 48,
		Messages:  []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Write a long Go function that parses a CSV file, with comments."}},
	})
	t.Run("content_type", func(t *testing.T) {
		ct := s.capture.Header.Get("Content-Type")
		mt, _, _ := mime.ParseMediaType(ct)
		assert.Equal(t, "text/event-stream", mt, "streamed response has Content-Type %q; clients need text/event-stream (look at proxy settings that rewrite headers)", ct)
	})
	t.Run("several_chunks", func(t *testing.T) {
		assert.GreaterOrEqual(t, s.chunks, minChunks, "expected at least %d content chunks, got %d (content %q)", minChunks, s.chunks, target.Redact(s.content.String()))
	})
	t.Run("no_engine_error", func(t *testing.T) {
		text := strings.TrimSpace(s.content.String())
		assert.False(t, strings.HasPrefix(text, engineErrorPrefix), "the engine reported an error inside a 200 stream: %q; look at the engine's log", target.Redact(text))
	})
	t.Run("incremental", func(t *testing.T) {
		assertIncremental(t, s.capture)
	})
	t.Run("finish_reason", func(t *testing.T) {
		assert.NotEmpty(t, s.finish, "no chunk carried a finish_reason")
	})
	t.Run("done_terminator", func(t *testing.T) {
		assertDone(t, s.capture)
	})
}

// assertIncremental checks that content events reached the client in many separate reads.
// A buffering proxy holds events until a buffer of several kilobytes fills and delivers
// them in a few large bursts; an unbuffered one passes each event on as it comes, so
// reads carry one or a few events. The bound is relative to the stream itself.
func assertIncremental(t *testing.T, c *copilot.Capture) {
	t.Helper()
	events := contentEvents(c)
	reads := map[int]bool{}
	for _, e := range events {
		reads[e.Read] = true
	}
	want := max(minChunks, len(events)/4)
	assert.GreaterOrEqual(t, len(reads), want,
		"%d content events arrived in only %d separate reads (want at least %d): the stream is buffered on the way; the nginx site must set proxy_buffering off (the engine may not send X-Accel-Buffering)",
		len(events), len(reads), want)
}

// assertDone checks the stream's last event is the [DONE] terminator; go-openai treats a
// cut stream as a clean end, so only the raw stream tells.
func assertDone(t *testing.T, c *copilot.Capture) {
	t.Helper()
	events := c.Events()
	require.NotEmpty(t, events, "no complete SSE event in the stream: %s", snippet(c.Body()))
	last := events[len(events)-1].Data
	assert.Equal(t, "[DONE]", last, "the stream's last event is %q, not the terminator data: [DONE]; the stream was cut or rewritten on the way", target.Redact(truncate(last, 200)))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
