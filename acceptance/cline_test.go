package acceptance

import (
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clineSystemPrompt is shaped like the start of Cline's system prompt (Cline's real one is
// about 10k tokens; a sample keeps the check quick on a CPU).
var clineSystemPrompt = strings.Repeat(`You are Cline, a highly skilled software engineer with extensive knowledge in many programming languages, frameworks, design patterns, and best practices.

TOOL USE
You have access to a set of tools that are executed upon the user's approval. You can use one tool per message.
<read_file><path>src/main.go</path></read_file>
`, 2)

// TestClineRequest: the request Cline sends (system prompt, structured user content,
// stream with usage, the password as API key) succeeds, after the model-list refresh
// Cline does with the Bearer token only.
func TestClineRequest(t *testing.T) {
	t.Parallel()
	t.Run("model_list_refresh", func(t *testing.T) {
		t.Parallel()
		list, err := target.OpenAI(target.HTTPClient(nil)).ListModels(requestContext(t))
		require.NoError(t, err, "Cline's model-list refresh (GET /v1/models, Bearer only): %s", redactErr(err))
		assert.NotEmpty(t, list.Models, "Cline would show an empty model list")
	})
	t.Run("task", func(t *testing.T) {
		t.Parallel()
		s := streamChat(t, openai.ChatCompletionRequest{
			Model:       target.Model,
			MaxTokens:   16,
			Temperature: 0,
			StreamOptions: &openai.StreamOptions{
				IncludeUsage: true,
			},
			Messages: []openai.ChatCompletionMessage{
				{Role: openai.ChatMessageRoleSystem, Content: clineSystemPrompt},
				{Role: openai.ChatMessageRoleUser, MultiContent: []openai.ChatMessagePart{
					{Type: openai.ChatMessagePartTypeText, Text: "<task>\nAdd a unit test for the add function.\n</task>"},
					{Type: openai.ChatMessagePartTypeText, Text: "<environment_details>\n# Current Working Directory\n/home/dev/project\n</environment_details>"},
				}},
			},
		})
		text := strings.TrimSpace(s.content.String())
		assert.NotEmpty(t, text, "Cline's request produced no content")
		assert.False(t, strings.HasPrefix(text, engineErrorPrefix), "the engine reported an error as content: %q", target.Redact(text))
		assertDone(t, s.capture)
		if s.usage == nil {
			t.Logf("no usage chunk: engines before LocalAI v4.2.5 ignore stream_options; Cline then shows no token counts")
		}
	})
}
