package acceptance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
)

// What Cline sends, read in cline/cline at v3.89.2 (the VS Code extension's
// OpenAI-compatible provider):
//   - apps/vscode/src/core/api/providers/openai.ts, OpenAiHandler.createMessage: the OpenAI
//     SDK (openai ^6.21) POSTs <Base URL>/chat/completions with Authorization: Bearer <API
//     key> and {model, messages, temperature, max_tokens, stream: true, stream_options:
//     {include_usage: true}} (plus tools when native tool calls are on: tools_test.go).
//     max_tokens is only sent when the model info sets one; the default
//     (openAiModelInfoSaneDefaults in src/shared/api.ts: maxTokens -1) sends none.
//     temperature is the model info's; the default is 0 and is sent as 0 (a configured 0
//     is sent as undefined, i.e. left out). From every chunk that carries usage it takes
//     prompt_tokens and completion_tokens: that is how Cline tracks its context window.
//   - apps/vscode/src/core/api/transform/openai-format.ts, convertToOpenAiMessages:
//     messages are [{role: "system", content: <the system prompt, one string>}, ...history];
//     user turns carry content as an array of {type: "text", text} parts (images as
//     image_url parts), assistant turns one string (their text parts joined by "\n").
//   - apps/vscode/src/core/prompts/system-prompt/variants/devstral: for model ids with
//     "devstral" the system prompt describes every tool in XML ("## read_file ... Usage:
//     <read_file><path>...</path></read_file>"), and the model answers with XML tool uses in
//     its text; __tests__/__snapshots__/cline_devstral-basic.snap is 59 kB (~15k tokens).
//   - apps/vscode/src/core/controller/models/refreshOpenAiModels.ts: the model-list refresh
//     is axios.get(`${baseUrl}/models`) with the Bearer header only, so a Base URL ending
//     in "/" asks for /v1//models.
//
// go-openai leaves a zero temperature out (omitempty), so these checks send raw JSON.

// clineRole opens Cline's system prompt.
const clineRole = `You are Cline, a highly skilled software engineer with extensive knowledge in many programming languages, frameworks, design patterns, and best practices.

TOOL USE

You have access to a set of tools that are executed upon the user's approval. You can use one tool per message, and will receive the result of that tool use in the user's response. You use tools step-by-step to accomplish a given task, with each tool use informed by the result of the previous tool use.

# Tool Use Formatting

Tool use is formatted using XML-style tags. The tool name is enclosed in opening and closing tags, and each parameter is similarly enclosed within its own set of tags.
`

// clineTools is one section of tool descriptions in Cline's XML style; the system prompt
// repeats it to reach the size a check needs.
const clineTools = `
# Tools

## execute_command
Description: Request to execute a CLI command on the system. Use this when you need to perform system operations or run specific commands to accomplish any step in the user's task. Commands will be executed in the current working directory: /home/dev/project
Parameters:
- command: (required) The CLI command to execute. This should be valid for the current operating system.
- requires_approval: (required) A boolean indicating whether this command requires explicit user approval before execution.
Usage:
<execute_command>
<command>Your command here</command>
<requires_approval>true or false</requires_approval>
</execute_command>

## read_file
Description: Request to read the contents of a file at the specified path. Use this when you need to examine the contents of an existing file you do not know the contents of.
Parameters:
- path: (required) The path of the file to read (relative to the current working directory /home/dev/project)
Usage:
<read_file>
<path>File path here</path>
</read_file>

## replace_in_file
Description: Request to replace sections of content in an existing file using SEARCH/REPLACE blocks that define exact changes to specific parts of the file.
Parameters:
- path: (required) The path of the file to modify
- diff: (required) One or more SEARCH/REPLACE blocks:
  ------- SEARCH
  [exact content to find]
  =======
  [new content to replace with]
  +++++++ REPLACE
Usage:
<replace_in_file>
<path>File path here</path>
<diff>Search and replace blocks here</diff>
</replace_in_file>

## attempt_completion
Description: After each tool use, the user will respond with the result of that tool use. Once you've received the results of tool uses and can confirm that the task is complete, use this tool to present the result of your work to the user.
Usage:
<attempt_completion>
<result>Your final result description here</result>
</attempt_completion>
`

// clinePrompt is Cline's role and tool-use rules followed by sections tool
// descriptions: deterministic, and as long as a check needs.
func clinePrompt(sections int) string {
	return clineRole + strings.Repeat(clineTools, sections)
}

// clineSystemPrompt is the shortest of them, for checks of other things than its size.
var clineSystemPrompt = clinePrompt(1)

// clineHistory is a task two turns in, as Cline sends it: the user's task and environment
// as text parts, the model's earlier answer (an XML tool use) as one string, the tool's
// result as text parts.
var clineHistory = []map[string]any{
	{"role": "user", "content": []map[string]string{
		{"type": "text", "text": "<task>\nAdd a unit test for the add function.\n</task>"},
		{"type": "text", "text": "<environment_details>\n# Current Working Directory (/home/dev/project) Files\nadd.go\ngo.mod\n</environment_details>"},
	}},
	{"role": "assistant", "content": "I will read the file first.\n\n<read_file>\n<path>add.go</path>\n</read_file>"},
	{"role": "user", "content": []map[string]string{
		{"type": "text", "text": "[read_file for 'add.go'] Result:"},
		{"type": "text", "text": "package calc\n\n// Add returns a + b.\nfunc Add(a, b int) int { return a + b }\n"},
		{"type": "text", "text": "<environment_details>\n# Current Time\n2026-11-27 12:00:00 UTC\n</environment_details>"},
	}},
}

// clineBody is a request as Cline sends it: the system prompt and history, streamed with
// usage, temperature 0 and no max_tokens. extra adds or overrides fields.
func clineBody(system string, extra map[string]any) map[string]any {
	body := map[string]any{
		"model":          target.Model,
		"messages":       append([]map[string]any{{"role": "system", "content": system}}, clineHistory...),
		"temperature":    0,
		"stream":         true,
		"stream_options": map[string]any{"include_usage": true},
	}
	for k, v := range extra {
		body[k] = v
	}
	return body
}

// Sizes of the context-window checks.
const (
	clineSizedTokens   = 10000 // Cline's first request, system prompt and a short history
	promptTolerance    = 0.10  // how far usage.prompt_tokens may be from the expected count
	overContextFactor  = 1.25  // the over-context prompt, relative to -context-size
	calibrationMaxToks = 1     // calibration requests need the prompt count, not an answer
)

// TestClineRequest: the requests Cline sends, as it sends them, succeed and stream back
// what Cline reads: the model-list refresh with the Bearer token only; a task as a stream
// whose deltas, id, finish_reason and usage are well formed; a base URL ending in "/"; a
// ~10k-token prompt inside the context the instance must serve, and a prompt over it
// refused at once; two streams at once; a stream the user stops, freeing the engine.
// It runs alone, before the parallel checks: its timings compare the engine with itself
// and its ~10k-token prefill would slow everything else.
func TestClineRequest(t *testing.T) {
	t.Run("model_list_refresh", func(t *testing.T) {
		tap := &copilot.Tap{}
		list, err := target.OpenAI(target.HTTPClient(tap)).ListModels(requestContext(t))
		recordCapture(t, requestLine(http.MethodGet, "/v1/models"), tap.Last(), err)
		require.NoError(t, err, "Cline's model-list refresh (GET /v1/models, Bearer only): %s", redactErr(err))
		assert.NotEmpty(t, list.Models, "Cline would show an empty model list")
	})

	// The task's prompt, one tool section long, is also the first calibration of the
	// context-window checks (and its prefix is in the engine's cache for them).
	task := postStream(requestContext(t), "/v1/chat/completions", clineBody(clineSystemPrompt, nil), nil)
	task.record(t, true)
	t.Run("task", func(t *testing.T) {
		task.requireOK(t, "Cline's request")
		text := strings.TrimSpace(task.content())
		assert.NotEmpty(t, text, "Cline's request produced no content")
		assert.False(t, strings.HasPrefix(text, engineErrorPrefix), "the engine reported an error as content: %q", target.Redact(text))
		task.assertDone(t)
	})
	t.Run("usage", func(t *testing.T) { task.assertUsage(t) })
	t.Run("role_first", func(t *testing.T) {
		chunks := task.choiceChunks(t)
		role := chunks[0].delta["role"]
		assert.JSONEq(t, `"assistant"`, orNull(role), "the stream's first delta carries no role \"assistant\" (got %s); OpenAI clients take the message's role from it", truncate(chunks[0].raw, 300))
	})
	t.Run("one_id", func(t *testing.T) {
		chunks := task.chunks(t)
		for i, c := range chunks {
			if !assert.Equal(t, chunks[0].ID, c.ID, "the stream changes its id: chunk %d has %q, chunk 0 had %q", i, c.ID, chunks[0].ID) {
				break
			}
		}
		assert.NotEmpty(t, chunks[0].ID, "the stream's chunks carry no id")
	})
	t.Run("deltas_carry_content", func(t *testing.T) {
		for i, c := range task.choiceChunks(t) {
			_, content := c.delta["content"]
			_, calls := c.delta["tool_calls"]
			if c.finish == "" && !content && !calls {
				assert.Fail(t, "a delta without text", "chunk %d's delta has neither content nor tool_calls: %s", i, truncate(c.raw, 300))
				break
			}
		}
	})
	t.Run("finish_reason_last", func(t *testing.T) {
		chunks := task.choiceChunks(t)
		for i, c := range chunks[:len(chunks)-1] {
			if !assert.Empty(t, c.finish, "chunk %d of %d carries finish_reason %q before the stream's end: clients stop reading there", i, len(chunks), c.finish) {
				break
			}
		}
	})
	t.Run("no_control_tokens", func(t *testing.T) {
		if leaked := controlToken.FindString(task.content()); leaked != "" {
			assert.Fail(t, "chat-template control token in the answer", "control token %q leaked into the content: the engine renders or decodes the model's chat template wrongly (look at its template settings, e.g. use_tokenizer_template / jinja): %q",
				leaked, truncate(target.Redact(task.content()), 300))
		}
	})

	t.Run("trailing_slash_base_url", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, path string
			body               any
		}{
			{"models", http.MethodGet, "/v1//models", nil},
			{"chat_completions", http.MethodPost, "/v1//chat/completions", map[string]any{"model": target.Model, "max_tokens": 2,
				"messages": []map[string]string{{"role": "user", "content": "Say OK."}}}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var body string
				if tc.body != nil {
					b, err := json.Marshal(tc.body)
					require.NoError(t, err)
					body = string(b)
				}
				req := newRequest(t, tc.method, tc.path, body)
				bearerAuth(req)
				ex := send(t, target.HTTPClient(nil), req)
				assert.Equal(t, http.StatusOK, ex.resp.StatusCode,
					"%s %s with credentials got %d %s: Cline builds its URLs as <Base URL>/models and <Base URL>/chat/completions, so users whose Base URL ends in '/' (https://host/v1/) get an empty model list and failing tasks; "+
						"the front door must pass the path to the engine with its slashes merged (nginx: merge_slashes on, proxying the normalised $uri)",
					tc.method, tc.path, ex.resp.StatusCode, snippet(ex.body))
			})
		}
	})

	t.Run("context_window", func(t *testing.T) { testContextWindow(t, task) })
	t.Run("concurrency", func(t *testing.T) { testConcurrency(t) })
}

// testContextWindow: a Cline-sized prompt is served whole inside -context-size, and a
// prompt over it is refused at once with a JSON error, never answered from a truncated
// prompt and never left hanging.
func testContextWindow(t *testing.T, task *clineStream) {
	// The instance's own tokenizer decides how many tokens a text is (the reference's is
	// near char-level, Devstral's ~4 characters a token): two prompts, one tool section long
	// (the task's) and two, give the cost of the fixed part and of a section.
	one, err := calibration(task)
	require.NoError(t, err, "calibration: Cline's task (its prompt with one tool section)")
	sized := func(sections int) (counted, *clineStream, error) {
		s := postStream(requestContext(t), "/v1/chat/completions",
			clineBody(clinePrompt(sections), map[string]any{"max_tokens": calibrationMaxToks}), nil)
		s.record(t, false) // a prefill sized on purpose, not interactive service
		c, err := calibration(s)
		return c, s, err
	}
	two, _, err := sized(2)
	require.NoError(t, err, "calibration request (Cline's prompt with two tool sections)")
	perSection, fixed := 0, 0
	fit := func(n int, c counted) {
		perSection = (c.prompt - one.prompt) / (n - 1)
		fixed = one.prompt - perSection
	}
	fit(2, two)
	require.Positive(t, perSection, "usage.prompt_tokens did not grow with the prompt (%d tokens for one tool section, %d for two): the engine does not count the prompt it got", one.prompt, two.prompt)
	sectionsFor := func(tokens float64) int { return max(1, int(math.Ceil((tokens-float64(fixed))/float64(perSection)))) }
	bound := max(one.wall, two.wall)
	// Prompts on the way there fill the engine's prompt cache, as Cline's earlier requests
	// do (its system prompt is the same in every task): no single request then prefills more
	// than a third of the ~10k tokens, which keeps each within -request-timeout on a CPU.
	// They also measure the cost of a section over a longer stretch.
	goal := sectionsFor(clineSizedTokens)
	step := max(1, (goal-2+2)/3)
	for n := 2 + step; n < goal; n += step {
		c, s, err := sized(n)
		if s.status >= 400 && s.status < 500 {
			break // the instance's context is smaller still: cline_sized_prompt says so
		}
		require.NoError(t, err, "calibration request (Cline's prompt with %d tool sections)", n)
		fit(n, c)
		require.Positive(t, perSection, "usage.prompt_tokens did not grow with the prompt (%d tokens for one tool section, %d for %d): the engine does not count the prompt it got", one.prompt, c.prompt, n)
		bound = max(bound, c.wall)
	}

	t.Run("cline_sized_prompt", func(t *testing.T) {
		sections := sectionsFor(clineSizedTokens)
		expected := fixed + sections*perSection
		require.Less(t, expected, *contextSizeFlag, "-context-size %d is smaller than Cline's first request (~%d tokens)", *contextSizeFlag, clineSizedTokens)
		s := postStream(requestContext(t), "/v1/chat/completions", clineBody(clinePrompt(sections), nil), nil)
		s.record(t, false) // a ~10k-token prefill: evidence, not a latency sample
		bound = max(bound, s.wall())
		if s.status >= 400 && s.status < 500 {
			assert.Fail(t, "Cline's first request refused", "the instance refused Cline's ~%d-token prompt (%d tokens expected, -context-size %d) with %d: %s; it serves a smaller context than -context-size: look at ONEAPP_COPILOT_CONTEXT_SIZE and the engine's context_size",
				clineSizedTokens, expected, *contextSizeFlag, s.status, snippet(s.body))
			return
		}
		s.requireOK(t, "Cline's ~10k-token request")
		s.assertDone(t)
		u := s.usage()
		require.NotNil(t, u, "the stream of Cline's ~10k-token request carried no usage chunk, so its prompt count cannot be judged (see TestClineRequest/usage)")
		assert.InDelta(t, expected, u.PromptTokens, promptTolerance*float64(expected),
			"usage.prompt_tokens is %d, but the prompt is %d tokens (±%.0f%%, from the instance's own count of smaller prompts): the engine served a cut prompt (silent truncation: Cline's tools and task are lost) or counts wrongly",
			u.PromptTokens, expected, 100*promptTolerance)
		prefill := u.PromptTokens - u.cached()
		t.Logf("Cline-sized request: %d prompt tokens (%d from the engine's cache), %d completion tokens, finish_reason %q, %s until [DONE]; %.0f prompt tokens/s including the answer%s",
			u.PromptTokens, u.cached(), u.CompletionTokens, s.finish(), s.wall().Round(time.Millisecond),
			float64(prefill)/s.wall().Seconds(), s.engineTimings())
	})

	t.Run("prompt_over_context_refused", func(t *testing.T) {
		sections := sectionsFor(overContextFactor * float64(*contextSizeFlag))
		expected := fixed + sections*perSection
		// A refusal needs no prefill: it must come faster than the ~10k-token prompt's
		// answer (or the calibrations), and is cut at twice that as a hang.
		ctx, cancel := context.WithTimeout(requestContext(t), 2*bound)
		defer cancel()
		s := postStream(ctx, "/v1/chat/completions", clineBody(clinePrompt(sections), nil), nil)
		s.record(t, false)
		switch {
		case s.err != nil && errors.Is(s.err, context.DeadlineExceeded):
			assert.Fail(t, "hang", "a prompt of ~%d tokens (over -context-size %d) got no answer within %s (a ~%d-token prompt was answered in %s): an engine must refuse what does not fit at once",
				expected, *contextSizeFlag, 2*bound, clineSizedTokens, bound)
		case s.err != nil:
			assert.Fail(t, "no answer", "a prompt of ~%d tokens (over -context-size %d): %s", expected, *contextSizeFlag, target.Redact(s.err.Error()))
		case s.status == http.StatusOK && s.errorEvent() != "":
			// LocalAI v4.9 answers so (core/http/endpoints/openai/chat.go). Cline v3.89.2 compacts
			// its history only on a 400 naming tokens or the context length
			// (apps/vscode/src/core/context/context-management/context-error-handling.ts).
			assert.Fail(t, "error inside a 200", "a prompt of ~%d tokens (over -context-size %d) was answered 200 with the error in the stream (%s): Cline recognises a context overflow only as a 400 naming tokens or the context length, so it cannot compact its history; it must be refused with a 4xx JSON error",
				expected, *contextSizeFlag, target.Redact(truncate(s.errorEvent(), 200)))
		case s.status == http.StatusOK:
			u := s.usage()
			count := "no usage"
			if u != nil {
				count = fmt.Sprintf("usage.prompt_tokens %d", u.PromptTokens)
			}
			assert.Fail(t, "truncated", "a prompt of ~%d tokens (over -context-size %d) was answered 200 (%s): the engine cut the prompt silently; it must refuse it with a 4xx JSON error so that Cline can compact its history",
				expected, *contextSizeFlag, count)
		default:
			ct, _, _ := mime.ParseMediaType(s.header.Get("Content-Type"))
			assert.True(t, s.status >= 400 && s.status < 500, "a prompt of ~%d tokens (over -context-size %d) got %d %s: expected a 4xx refusal (the client's prompt is too long, not a server fault)",
				expected, *contextSizeFlag, s.status, snippet(s.body))
			assert.True(t, ct == "application/json" && bytes.Contains(s.body, []byte(`"error"`)), "the refusal of a prompt over the context is %q %s, not a JSON error object", ct, snippet(s.body))
			assert.True(t, clineSeesOverflow(s.status, s.body), "the refusal %d %s is not one Cline takes for a context overflow: it compacts its history on a 400 whose error message names the context length or tokens, and otherwise shows the error and stops",
				s.status, snippet(s.body))
			assert.LessOrEqual(t, s.wall(), bound, "the refusal of a prompt over the context took %s, longer than answering a ~%d-token prompt (%s): the engine processed what it had to refuse",
				s.wall().Round(time.Millisecond), clineSizedTokens, bound.Round(time.Millisecond))
			t.Logf("~%d-token prompt refused in %s with %d %s", expected, s.wall().Round(time.Millisecond), s.status, snippet(s.body))
		}
	})
}

// clineOverflowPatterns: what Cline v3.89.2 takes for a context overflow in an error's
// message (apps/vscode/src/core/context/context-management/context-error-handling.ts,
// checkIsOpenRouterContextWindowError, which needs the HTTP status 400 too).
var clineOverflowPatterns = []*regexp.Regexp{
	regexp.MustCompile(`(?i)\bcontext\s*(?:length|window)\b`),
	regexp.MustCompile(`(?i)\bmaximum\s*context\b`),
	regexp.MustCompile(`(?i)\b(?:input\s*)?tokens?\s*exceed`),
	regexp.MustCompile(`(?i)\btoo\s*many\s*tokens?\b`),
}

// clineSeesOverflow tells whether Cline compacts its history on this answer: a 400 whose
// message matches clineOverflowPatterns, or whose error code is 400 and whose message
// holds "token" or "context length" (checkIsOpenAIContextWindowError, same file).
func clineSeesOverflow(status int, body []byte) bool {
	var e struct {
		Error struct {
			Code    any    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if status != http.StatusBadRequest || json.Unmarshal(body, &e) != nil {
		return false
	}
	msg := e.Error.Message
	if fmt.Sprint(e.Error.Code) == "400" && (strings.Contains(msg, "token") || strings.Contains(msg, "context length")) {
		return true
	}
	for _, p := range clineOverflowPatterns {
		if p.MatchString(msg) {
			return true
		}
	}
	return false
}

// counted is what the instance counted for a prompt, and how long its answer took.
type counted struct {
	prompt int
	wall   time.Duration
}

// calibration is what the instance counted for the prompt of s.
func calibration(s *clineStream) (counted, error) {
	if s.err != nil {
		return counted{}, s.err
	}
	if s.status != http.StatusOK {
		return counted{}, fmt.Errorf("status code: %d %s", s.status, snippet(s.body))
	}
	u := s.usage()
	if u == nil || u.PromptTokens <= 0 {
		return counted{}, fmt.Errorf("the stream carried no usage.prompt_tokens although the request asked for it (stream_options.include_usage)")
	}
	return counted{prompt: u.PromptTokens, wall: s.wall()}, nil
}

// testConcurrency: two streams at once both finish; a stream the user stops (Cline's
// cancel button closes the connection) frees the engine for the next request.
func testConcurrency(t *testing.T) {
	short := func(maxTokens int, extra map[string]any) map[string]any {
		body := map[string]any{"model": target.Model, "max_tokens": maxTokens, "temperature": 0, "stream": true,
			"messages": []map[string]any{{"role": "user", "content": []map[string]string{{"type": "text", "text": "Write a Go function that reverses a string."}}}}}
		for k, v := range extra {
			body[k] = v
		}
		return body
	}

	t.Run("two_streams_at_once", func(t *testing.T) {
		var streams [2]*clineStream
		done := make(chan int)
		for i := range streams {
			go func() {
				streams[i] = postStream(requestContext(t), "/v1/chat/completions", short(16, nil), nil)
				done <- i
			}()
		}
		<-done
		<-done
		for _, s := range streams {
			s.record(t, true)
		}
		for i, s := range streams {
			if s.err != nil || s.status != http.StatusOK {
				assert.Fail(t, "a concurrent stream failed", "of two streams started together, stream %d got %s: the instance must serve (or queue) a second request while one streams, as Cline's model-list refresh, a second window or a subagent send one",
					i+1, s.outcome())
				continue
			}
			assert.Equal(t, "[DONE]", s.lastEvent(), "of two streams started together, stream %d ended with %q, not data: [DONE]", i+1, truncate(target.Redact(s.lastEvent()), 200))
		}
		a, b := streams[0], streams[1]
		if a.firstToken.IsZero() || b.firstToken.IsZero() {
			return
		}
		if b.firstToken.Before(a.firstToken) {
			a, b = b, a
		}
		how := "queued: the second's first token came after the first had finished"
		if b.firstToken.Before(a.lastToken) {
			how = "in parallel: their tokens interleaved"
		}
		t.Logf("two streams at once were served %s (first tokens after %s and %s)", how,
			a.firstToken.Sub(a.sent).Round(time.Millisecond), b.firstToken.Sub(b.sent).Round(time.Millisecond))
	})

	t.Run("abandoned_stream_frees_engine", func(t *testing.T) {
		idle := postStream(requestContext(t), "/v1/chat/completions", short(16, nil), nil)
		idle.record(t, true)
		require.False(t, idle.firstToken.IsZero(), "the idle stream brought no token to time: %s", idle.outcome())
		// The bound on the next first token: five idle first tokens, plus sixteen tokens'
		// time and four of the idle stream's longest pauses, for a busy machine's hiccups.
		perToken := time.Duration(0)
		if n := idle.tokens; n > 1 {
			perToken = idle.lastToken.Sub(idle.firstToken) / time.Duration(n-1)
		}
		firstIdle := idle.firstToken.Sub(idle.sent)
		bound := 5*firstIdle + 16*perToken + 4*idle.longestPause
		// The abandoned answer is long enough that an engine still generating it would hold
		// the next request four times the bound; ignore_eos keeps a real model from ending it.
		abandonedTokens := 4096
		if perToken > 0 {
			abandonedTokens = min(4096, max(256, int(4*bound/perToken)))
		}
		abandonedTokens = min(abandonedTokens, *contextSizeFlag/2)
		abandoned := postStream(requestContext(t), "/v1/chat/completions",
			short(abandonedTokens, map[string]any{"ignore_eos": true}), func(*clineStream) bool { return true })
		abandoned.record(t, false) // cut on purpose after its first token
		require.False(t, abandoned.firstToken.IsZero(), "the stream to abandon brought no token: %s", abandoned.outcome())
		bound = max(bound, 5*abandoned.firstToken.Sub(abandoned.sent))

		ctx, cancel := context.WithTimeout(requestContext(t), bound)
		defer cancel()
		next := postStream(ctx, "/v1/chat/completions", short(2, nil), func(*clineStream) bool { return true })
		next.record(t, false)
		if next.firstToken.IsZero() {
			assert.Fail(t, "engine still busy", "after a stream was abandoned following its first token, the next request's first token did not come within %s (an idle first token took %s): %s; "+
				"the engine goes on generating the abandoned answer (%d tokens asked), so a user who stops Cline waits for it: the front door must pass the client's abort on (nginx: proxy_ignore_client_abort off) and the engine must stop on it",
				bound.Round(time.Millisecond), firstIdle.Round(time.Millisecond), next.outcome(), abandonedTokens)
			return
		}
		t.Logf("first token: idle %s, after an abandoned stream %s (bound %s)", firstIdle.Round(time.Millisecond),
			next.firstToken.Sub(next.sent).Round(time.Millisecond), bound.Round(time.Millisecond))
	})
}

// controlToken matches chat-template control tokens of the usual families (Mistral's
// [INST] and [TOOL_CALLS], Llama's </s>, ChatML's <|im_end|>) in generated text.
var controlToken = regexp.MustCompile(`\[/?(?:INST|SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_RESULTS|TOOL_CALLS)\]|</?s>|<\|[a-z_]+\|>`)

// clineStream is one streamed request as the client saw it.
type clineStream struct {
	request string           // its request line, for the report
	capture *copilot.Capture // the raw response, nil without one
	status  int
	header  http.Header
	body    []byte   // the body of a non-200 answer
	events  []string // the SSE data events, [DONE] included
	err     error    // no answer, or the read failed

	sent, end             time.Time
	firstToken, lastToken time.Time // events whose delta carries content or tool calls
	tokens                int
	longestPause          time.Duration // between two of those events
}

// postStream POSTs body as JSON to path and reads the answer; an SSE stream is read event
// by event until its end, or until stop returns true after an event with a token, when
// the client closes the connection as a user who stops a task does.
func postStream(ctx context.Context, path string, body any, stop func(*clineStream) bool) *clineStream {
	s := &clineStream{request: requestLine(http.MethodPost, path)}
	b, err := json.Marshal(body)
	if err != nil {
		s.err = err
		return s
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.URL(path), bytes.NewReader(b))
	if err != nil {
		s.err = err
		return s
	}
	req.Header.Set("Content-Type", "application/json")
	bearerAuth(req)
	tap := &copilot.Tap{}
	client := target.HTTPClient(tap)
	defer client.CloseIdleConnections()
	s.sent = time.Now()
	resp, err := client.Do(req)
	s.capture = tap.Last()
	if err != nil {
		s.err = err
		return s
	}
	defer resp.Body.Close()
	s.status, s.header = resp.StatusCode, resp.Header
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		s.body, s.err = readAll(resp)
		s.end = time.Now()
		return s
	}
	rd := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := rd.ReadString('\n')
		if data, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "data:"); ok {
			data = strings.TrimPrefix(data, " ")
			s.events = append(s.events, data)
			if carriesToken(data) {
				now := time.Now()
				if s.firstToken.IsZero() {
					s.firstToken = now
				} else {
					s.longestPause = max(s.longestPause, now.Sub(s.lastToken))
				}
				s.lastToken = now
				s.tokens++
				if stop != nil && stop(s) {
					s.end = now
					return s // the deferred Close hangs up mid-stream
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.err = err
			}
			s.end = time.Now()
			return s
		}
	}
}

// carriesToken tells whether an event's delta carries text or a tool call (the role-only
// opening delta does not).
func carriesToken(data string) bool {
	var c struct {
		Choices []struct {
			Delta map[string]json.RawMessage `json:"delta"`
		} `json:"choices"`
	}
	if json.Unmarshal([]byte(data), &c) != nil || len(c.Choices) == 0 {
		return false
	}
	d := c.Choices[0].Delta
	_, calls := d["tool_calls"]
	return (d["content"] != nil && string(d["content"]) != "null") || calls
}

func (s *clineStream) wall() time.Duration { return s.end.Sub(s.sent) }

// record attaches s to t's record for the report, measured or as evidence only (see
// recordStream).
func (s *clineStream) record(t *testing.T, measured bool) {
	t.Helper()
	if s.capture == nil && s.err != nil {
		recordNoResponse(t, s.request, s.err)
		return
	}
	recordStream(t, s.request, s.capture, measured)
}

// errorEvent is the first event of the stream that carries an "error" object, or "".
func (s *clineStream) errorEvent() string {
	for _, e := range s.events {
		var frame struct {
			Error json.RawMessage `json:"error"`
		}
		if json.Unmarshal([]byte(e), &frame) == nil && len(frame.Error) > 0 && string(frame.Error) != "null" {
			return e
		}
	}
	return ""
}

// outcome says in a few words what came back, for failure messages.
func (s *clineStream) outcome() string {
	switch {
	case s.err != nil:
		return "no answer: " + target.Redact(s.err.Error())
	case s.status != http.StatusOK:
		return fmt.Sprintf("status code: %d %s", s.status, snippet(s.body))
	case s.tokens == 0:
		return fmt.Sprintf("a stream of %d events without a token", len(s.events))
	}
	return fmt.Sprintf("a stream of %d events", len(s.events))
}

// requireOK stops the check unless what came back is a 200 event stream.
func (s *clineStream) requireOK(t *testing.T, what string) {
	t.Helper()
	if s.err != nil && s.status == 0 {
		t.Fatalf("%s: POST /v1/chat/completions: no answer: %s", what, target.Redact(s.err.Error()))
	}
	if s.status != http.StatusOK {
		t.Fatalf("%s: POST /v1/chat/completions: status code: %d %s", what, s.status, snippet(s.body))
	}
	if s.body != nil {
		t.Fatalf("%s: POST /v1/chat/completions: 200 but Content-Type %q, not an event stream: %s", what, s.header.Get("Content-Type"), snippet(s.body))
	}
	require.NoError(t, s.err, "%s: reading the stream after %d events", what, len(s.events))
}

func (s *clineStream) lastEvent() string {
	if len(s.events) == 0 {
		return ""
	}
	return s.events[len(s.events)-1]
}

// assertDone checks the stream's last event is the [DONE] terminator.
func (s *clineStream) assertDone(t *testing.T) {
	t.Helper()
	require.NotEmpty(t, s.events, "no SSE event in the stream")
	assert.Equal(t, "[DONE]", s.lastEvent(), "the stream's last event is %q, not the terminator data: [DONE]; the stream was cut or rewritten on the way", truncate(target.Redact(s.lastEvent()), 200))
}

// clineChunk is one decoded event of a chat completion stream.
type clineChunk struct {
	raw     string
	ID      string `json:"id"`
	Choices []struct {
		Delta        map[string]json.RawMessage `json:"delta"`
		FinishReason *string                    `json:"finish_reason"`
	} `json:"choices"`
	Usage *clineUsage `json:"usage"`

	delta  map[string]json.RawMessage // the first choice's
	finish string
}

type clineUsage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

func (u *clineUsage) cached() int {
	if u.PromptTokensDetails == nil {
		return 0
	}
	return u.PromptTokensDetails.CachedTokens
}

// decode parses the stream's events up to [DONE]; undecodable ones are skipped.
func (s *clineStream) decode() []clineChunk {
	var out []clineChunk
	for _, e := range s.events {
		if e == "[DONE]" {
			break
		}
		c := clineChunk{raw: target.Redact(e)}
		if json.Unmarshal([]byte(e), &c) != nil {
			continue
		}
		if len(c.Choices) > 0 {
			c.delta = c.Choices[0].Delta
			if f := c.Choices[0].FinishReason; f != nil {
				c.finish = *f
			}
		}
		out = append(out, c)
	}
	return out
}

// chunks are the stream's decoded chunks; the check stops when there are none.
func (s *clineStream) chunks(t *testing.T) []clineChunk {
	t.Helper()
	s.requireOK(t, "Cline's request")
	chunks := s.decode()
	require.NotEmpty(t, chunks, "no chat completion chunk in the stream: %d events", len(s.events))
	return chunks
}

// choiceChunks are the chunks that carry a choice (the usage trailer carries none).
func (s *clineStream) choiceChunks(t *testing.T) []clineChunk {
	t.Helper()
	var out []clineChunk
	for _, c := range s.chunks(t) {
		if len(c.Choices) > 0 {
			out = append(out, c)
		}
	}
	require.NotEmpty(t, out, "no chunk in the stream carries a choice")
	return out
}

func (s *clineStream) content() string {
	var b strings.Builder
	for _, c := range s.decode() {
		var text string
		if json.Unmarshal(c.delta["content"], &text) == nil {
			b.WriteString(text)
		}
	}
	return b.String()
}

func (s *clineStream) finish() string {
	f := ""
	for _, c := range s.decode() {
		if c.finish != "" {
			f = c.finish
		}
	}
	return f
}

// usage is the last usage the stream carried, or nil.
func (s *clineStream) usage() *clineUsage {
	var u *clineUsage
	for _, c := range s.decode() {
		if c.Usage != nil {
			u = c.Usage
		}
	}
	return u
}

// assertUsage checks the stream ends with the usage chunk stream_options.include_usage
// asks for, with real counts: Cline tracks its context window from it.
func (s *clineStream) assertUsage(t *testing.T) {
	t.Helper()
	chunks := s.chunks(t)
	last := chunks[len(chunks)-1]
	if s.usage() == nil {
		assert.Fail(t, "no usage", "the stream carried no usage chunk although the request asked for one (stream_options.include_usage): Cline then cannot track its context window; LocalAI before v4.2.5 ignores stream_options (look at the engine's version)")
		return
	}
	require.NotNil(t, last.Usage, "the usage chunk is not the stream's last chunk before [DONE] (the last is %s)", truncate(last.raw, 300))
	u := last.Usage
	assert.Positive(t, u.PromptTokens, "the usage chunk's prompt_tokens is %d: %s", u.PromptTokens, truncate(last.raw, 300))
	assert.Positive(t, u.CompletionTokens, "the usage chunk's completion_tokens is %d: %s", u.CompletionTokens, truncate(last.raw, 300))
	assert.Equal(t, u.PromptTokens+u.CompletionTokens, u.TotalTokens, "the usage chunk's total_tokens is not prompt_tokens + completion_tokens: %s", truncate(last.raw, 300))
}

// engineTimings reports llama.cpp's own prefill timing when the stream's last chunk
// carries it (llama-server does; LocalAI does not).
func (s *clineStream) engineTimings() string {
	for i := len(s.events) - 1; i >= 0; i-- {
		var c struct {
			Timings *struct {
				PromptN         int     `json:"prompt_n"`
				PromptPerSecond float64 `json:"prompt_per_second"`
				PredictedN      int     `json:"predicted_n"`
				PredictedPerSec float64 `json:"predicted_per_second"`
			} `json:"timings"`
		}
		if json.Unmarshal([]byte(s.events[i]), &c) == nil && c.Timings != nil {
			return fmt.Sprintf(" (engine: prefill %d tokens at %.0f tokens/s, %d generated at %.1f tokens/s)",
				c.Timings.PromptN, c.Timings.PromptPerSecond, c.Timings.PredictedN, c.Timings.PredictedPerSec)
		}
	}
	return ""
}

// orNull is a raw JSON value, or null when absent.
func orNull(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "null"
	}
	return string(raw)
}
