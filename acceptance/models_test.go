package acceptance

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
)

// TestModelListed: the configured model is listed, read the way Cline refreshes its
// model list (go-openai, Bearer only).
func TestModelListed(t *testing.T) {
	t.Parallel()
	tap := &copilot.Tap{}
	list, err := target.OpenAI(target.HTTPClient(tap)).ListModels(requestContext(t))
	recordCapture(t, requestLine(http.MethodGet, "/v1/models"), tap.Last(), err)
	require.NoError(t, err, "GET /v1/models with the password as Bearer token: %s", redactErr(err))
	var ids []string
	for _, m := range list.Models {
		ids = append(ids, m.ID)
	}
	assert.Contains(t, ids, target.Model, "model %q is not listed (got %q); look at the model YAML's name in the engine's models directory, or pass -model", target.Model, ids)
}

func redactErr(err error) string {
	if err == nil {
		return ""
	}
	return target.Redact(err.Error())
}
