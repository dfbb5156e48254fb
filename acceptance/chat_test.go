package acceptance

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"testing"
	"time"

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
	tap := &copilot.Tap{}
	resp, err := target.OpenAI(target.HTTPClient(tap)).CreateChatCompletion(requestContext(t), openai.ChatCompletionRequest{
		Model:     target.Model,
		MaxTokens: 24,
		Messages:  []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Write a Go function that adds two integers."}},
	})
	recordCapture(t, requestLine(http.MethodPost, "/v1/chat/completions"), tap.Last(), err)
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

// streamChat runs a streamed chat completion through go-openai, recording the raw stream,
// and measures it for the report however it ends.
func streamChat(t *testing.T, req openai.ChatCompletionRequest) *streamed {
	t.Helper()
	tap := &copilot.Tap{}
	req.Stream = true
	request := requestLine(http.MethodPost, "/v1/chat/completions")
	defer func() { recordStream(t, request, tap.Last(), true) }()
	stream, err := target.OpenAI(target.HTTPClient(tap)).CreateChatCompletionStream(requestContext(t), req)
	if err != nil && tap.Last() == nil {
		recordNoResponse(t, request, err)
	}
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
//
// It does not run in parallel: "incremental" judges when content arrives against the
// stream's own duration, and a one-slot engine (LocalAI's default) would queue this
// stream behind other checks' generations, which delays its first content like a
// buffer does. Sequential tests run before every parallel one, so the engine is idle.
func TestChatStream(t *testing.T) {
	req := openai.ChatCompletionRequest{
		Model:     target.Model,
		MaxTokens: 48,
		Messages:  []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Write a long Go function that parses a CSV file, with comments."}},
	}
	s := streamChat(t, req)
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
		assertIncremental(t, s, req)
	})
	t.Run("finish_reason", func(t *testing.T) {
		assert.NotEmpty(t, s.finish, "no chunk carried a finish_reason")
	})
	t.Run("done_terminator", func(t *testing.T) {
		assertDone(t, s.capture)
	})
}

// Judging whether a stream's content reaches the client as it is generated. The client
// sees no generation, only when content arrives, and the engine reports no timings
// (LocalAI sends none), so every judgement is relative to the stream itself: a front
// door that passes events on delivers the first content about a prefill after the
// request, and the rest over the generation; one that buffers delivers it all when the
// generation ends; one that holds the output and then replays it event by event, however
// paced, delivers the first content only after the whole generation, so at least half
// way through the stream. Counting reads would not tell: a relay in front of a fast
// engine coalesces many events into one read, and a replay sends each in its own.
const (
	// A stream shorter than this is too fast to judge: a relay that passes the stream on
	// every few tens of milliseconds, or one scheduling hiccup, would be a large part of
	// it. The check then asks again for more tokens. The reference's default model
	// streams the test's 48 tokens in 140-300 ms, so a buffered front door is judged at
	// that size, which its buffers hold whole.
	minJudgeable = 150 * time.Millisecond
	// judgeTarget is how long a stream asked again for more tokens aims to last.
	judgeTarget = time.Second
	// maxJudgeTokens bounds a stream asked again (the reference's slots hold 4096 tokens,
	// prompt included).
	maxJudgeTokens = 2048
	// maxJudgeStreams bounds the streams one judgement uses, the test's own included.
	maxJudgeStreams = 6
	// burstWindow: content events this close to the first one came with it, as a buffer
	// flushes them; an engine on CPU, and a replay of it, write the default model's
	// events several milliseconds apart.
	burstWindow = 20 * time.Millisecond
)

// contentTiming is when one stream's content reached the client, from the moment the
// request was sent.
type contentTiming struct {
	maxTokens   int
	events      int           // content events
	first, last time.Duration // first and last content event
	end         time.Duration // the stream's last event ([DONE] on a complete stream)
	withFirst   int           // content events that arrived within burstWindow of the first one
}

// timeContent reads c's content timing; false when it has too few content events to time.
func timeContent(c *copilot.Capture, maxTokens int) (contentTiming, bool) {
	events, all := contentEvents(c), c.Events()
	tm := contentTiming{maxTokens: maxTokens, events: len(events)}
	if len(events) < minChunks {
		return tm, false
	}
	tm.first, tm.last = events[0].At.Sub(c.Sent), events[len(events)-1].At.Sub(c.Sent)
	tm.end = all[len(all)-1].At.Sub(c.Sent)
	for _, e := range events {
		if e.At.Sub(events[0].At) <= burstWindow {
			tm.withFirst++
		}
	}
	return tm, true
}

// judgeable: long enough that a coalescing relay or a hiccup is a small part of it.
func (tm contentTiming) judgeable() bool { return tm.end >= minJudgeable }

// late: the first content came after a third of the stream. A front door that passes
// events on delivers it after the prefill, a small part of a stream of this length; a
// buffered or replayed stream delivers it after the whole generation.
func (tm contentTiming) late() bool { return tm.first > tm.end/3 }

// burst: a quarter of the content or more came at once with the first, as a buffer
// flushed; a replay passes events on one by one.
func (tm contentTiming) burst() bool { return tm.withFirst*4 >= tm.events }

func (tm contentTiming) String() string {
	return fmt.Sprintf("first content at %s of a %s stream (max_tokens %d: %d content events, %d of them within %s of the first, the last at %s)",
		ms(tm.first), ms(tm.end), tm.maxTokens, tm.events, tm.withFirst, burstWindow, ms(tm.last))
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

// next is the max_tokens of the stream to ask for after tm, given the streams judged
// late so far (a stream on time ends the judgement); 0 means stop asking.
func (tm contentTiming) next(judgedLate []contentTiming) int {
	if !tm.judgeable() {
		if n := len(judgedLate); n > 0 && judgedLate[n-1].burst() && tm.late() && tm.burst() {
			// Asked the same again after a late burst, it came too fast to judge alone but
			// again whole at the end: a buffer holds streams of this size. A longer one
			// would overflow it and come in pieces, the first of them early.
			return 0
		}
		// Too fast to judge: ask for as many tokens as should last judgeTarget.
		if tm.maxTokens >= maxJudgeTokens {
			return 0
		}
		scale := min(max(int(judgeTarget/max(tm.end, time.Millisecond))+1, 2), 16)
		if tm.withFirst == tm.events {
			// It came whole: a buffer may have held it. Double it at most: a buffer that
			// held this stream whole flushes one twice as long half way at the earliest,
			// which is late; a longer one it would flush early, in pieces.
			scale = 2
		}
		return min(tm.maxTokens*scale, maxJudgeTokens)
	}
	if len(judgedLate) >= 2 {
		return 0
	}
	if tm.burst() {
		// Late in one burst: the same again, in case the machine stalled. Not longer: a
		// buffer that held this stream whole flushes a longer one in pieces, the first
		// of them early.
		return tm.maxTokens
	}
	// Late, then event by event: ask for a longer stream, as long as it fits well in
	// -request-timeout. A busy machine may have stalled this one's start, and a large
	// model's prefill on CPU may be long against this generation; a longer generation
	// shrinks both shares. A replay is late at any length.
	scale := min(4, int(*requestTimeout/(2*max(tm.end, time.Millisecond))))
	if scale < 2 {
		return 0
	}
	return min(tm.maxTokens*scale, maxJudgeTokens)
}

// assertIncremental checks that the stream's content reached the client while it was
// generated, judged by time (see minJudgeable): s is the test's stream, req its request,
// asked again with more tokens when s was too fast to judge or late.
func assertIncremental(t *testing.T, s *streamed, req openai.ChatCompletionRequest) {
	t.Helper()
	tm, ok := timeContent(s.capture, req.MaxTokens)
	var judged []contentTiming // judgeable and late
	var before []string        // the streams asked before the current one
	for streams := 1; ; streams++ {
		if !ok {
			assert.Fail(t, "too few content events to time", "the stream (max_tokens %d) carried %d content events, want at least %d to tell whether content arrives as it is generated (content %q)",
				tm.maxTokens, tm.events, minChunks, target.Redact(truncate(s.content.String(), 200)))
			return
		}
		if tm.judgeable() {
			if !tm.late() {
				t.Logf("content arrived as generated: %s, %.0f content events/s", tm, float64(tm.events-1)/max(tm.last-tm.first, time.Millisecond).Seconds())
				if len(before) > 0 {
					t.Logf("streams asked before: %s", strings.Join(before, "; "))
				}
				return
			}
			judged = append(judged, tm)
		}
		next := tm.next(judged)
		if next == 0 || streams == maxJudgeStreams {
			break
		}
		before = append(before, tm.String())
		req.MaxTokens = next
		s = streamChat(t, req)
		tm, ok = timeContent(s.capture, next)
	}
	if len(judged) == 0 {
		t.Skipf("cannot judge whether content arrives as it is generated: the longest stream asked for lasted only %s (%s), under the %s a judgement needs; the engine is too fast, or stops early",
			ms(tm.end), tm, ms(minJudgeable))
	}
	var seen []string
	for _, j := range judged {
		seen = append(seen, j.String())
	}
	if !tm.judgeable() {
		seen = append(seen, tm.String()+" (too short to judge alone)")
	}
	last := judged[len(judged)-1]
	if last.burst() {
		assert.Fail(t, "content arrived only when the generation ended",
			"the content reached the client only when the generation had ended, in one burst: %s; the stream is buffered on the way: the nginx site must set proxy_buffering off (the engine may not send X-Accel-Buffering)",
			strings.Join(seen, "; asked again: "))
		return
	}
	assert.Fail(t, "content held back, then replayed",
		"the content was held back until after the generation, then passed on event by event: %s; something between the client and the engine holds the stream until the generation ends: look at proxy_buffering off in the nginx site and at any relay or proxy in front of the engine",
		strings.Join(seen, "; asked again: "))
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
