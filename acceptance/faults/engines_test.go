package faults

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

// localAIOrigin is how the suite reports LocalAI's own Access-Control-Allow-Origin (echo's
// default CORS, "*" for any origin: core/http/app.go) beside the front door's "*".
const localAIOrigin = `got ["*" "*"]`

// engineFaults are the faults whose outcome depends on what the engine answers: its
// shapes (chunks, usage, finish reason, model list, errors), its key, its routes, its
// speed and its limits. TestEveryCheckCanFail runs each again against the reference's
// LocalAI personality (name + "_localai"), the appliance's real engine, with the phrases
// that differ because LocalAI answers differently. Faults that only break the front door
// (TLS, redirects, credentials, CORS of the site) behave the same behind either engine.
var engineFaults = map[string]map[string]string{
	"engine_down":                   nil,
	"client_credentials_forwarded":  nil, // LocalAI's 401 has no Basic challenge either (auth/middleware.go authError)
	"engine_cors_not_hidden":        {"TestCORS/headers_authorized": localAIOrigin, "TestCORS/headers_health": localAIOrigin},
	"stream_buffered":               nil, // LocalAI sends no X-Accel-Buffering: only the site's proxy_buffering decides
	"stream_terminator_missing":     nil,
	"stream_content_type_wrong":     nil,
	"engine_error_as_content":       nil,
	"model_id_wrong":                nil, // LocalAI refuses the unlisted model with 404 (middleware/request.go)
	"stream_without_content":        nil,
	"finish_reason_missing":         nil,
	"usage_missing":                 nil,
	"read_timeout_too_short":        nil,
	"chat_content_empty":            nil,
	"chat_without_choices":          nil,
	"chat_completion_tokens_zero":   nil,
	"model_list_empty":              nil,
	"engine_hangs_up_on_large_body": nil,
	// Open routes reach LocalAI's own routes (with the engine's key, as nginx sends it).
	"auth_on_exact_paths_only":     nil,
	"methods_skip_auth":            nil,
	"metrics_open":                 nil,
	"engine_reachable_without_key": nil, // LocalAI without LOCALAI_API_KEY on the usual ports
	// Tool calls: LocalAI sends each call whole at the end of the stream (a name chunk, then
	// an arguments chunk, both with the id: chat_emit.go buildDeferredToolCallChunks), so
	// the faults that rewrite llama-server's incremental pieces (a later delta without id,
	// an arguments piece that is exactly "{") have nothing to act on behind LocalAI.
	"template_without_tools":   nil,
	"tool_calls_dropped":       nil,
	"tool_call_other_function": nil,
	"tool_arguments_mangled":   nil,
	"tool_call_id_dropped":     nil,
	"tool_message_refused":     nil,
}

// faultRuns are the fault runs of TestEveryCheckCanFail: every fault against the default
// reference, and each engine fault again against the LocalAI personality.
func faultRuns() []fault {
	runs := faults()
	// A second call: faults carrying state (a relay) must not share it between runs.
	for _, f := range faults() {
		phrases, ok := engineFaults[f.name]
		if !ok {
			continue
		}
		opts := f.opts
		f.name += "_localai"
		f.fails = merge(f.fails, phrases)
		f.opts = func(o *reference.Options) {
			if opts != nil {
				opts(o)
			}
			o.Engine = reference.EngineLocalAI
		}
		runs = append(runs, f)
	}
	return append(runs, localAIOnlyFaults()...)
}

// localAIOnlyFaults break what only LocalAI's personality has.
func localAIOnlyFaults() []fault {
	localAI := func(o *reference.Options) { o.Engine = reference.EngineLocalAI }
	return []fault{
		{
			// The front door without its context guard: chat completions go straight to
			// LocalAI, which answers a prompt over the context with a 200 stream whose last
			// event is an error (core/http/endpoints/openai/chat.go). (llama-server refuses
			// it itself with a 400 Cline recognises: "request (N tokens) exceeds the
			// available context size".)
			name:   "context_guard_missing",
			opts:   localAI,
			tamper: withoutGuard,
			fails:  map[string]string{"TestClineRequest/context_window/prompt_over_context_refused": "was answered 200 with the error in the stream"},
		},
		{
			// The health locations ask LocalAI's /system (with the engine's key, as nginx sends
			// it) instead of /readyz: the public answer names the backend and the model.
			name: "health_shows_localai_system",
			opts: localAI,
			tamper: func(f *reference.Files) error {
				return replaceN(f.Site, "slm_copilot_engine/readyz;", "slm_copilot_engine/system;", 2)
			},
			fails: map[string]string{"TestPublicEndpointsLeakNothing/GET_readyz/body": `it names the engine or model ("llama")`,
				"TestPublicEndpointsLeakNothing/GET_health/body": `it names the engine or model ("llama")`},
		},
	}
}

// TestEngineFaultsExist: every name in engineFaults is a fault, so a renamed fault
// cannot silently stop running against LocalAI.
func TestEngineFaultsExist(t *testing.T) {
	t.Parallel()
	names := map[string]bool{}
	for _, f := range faults() {
		names[f.name] = true
	}
	for name := range engineFaults {
		assert.True(t, names[name], "engineFaults names %q, which is no fault", name)
	}
}

// TestCorrectLocalAIApplianceAlwaysPasses: the whole suite passes against the reference
// appliance with the engine the appliance runs (LocalAI v4.9.0's personality), as a user
// runs it and verifying the chain with -ca-cert. Repetition against flakes is
// TestCorrectApplianceAlwaysPasses' (LocalAI's one slot makes each run minutes long).
func TestCorrectLocalAIApplianceAlwaysPasses(t *testing.T) {
	t.Parallel()
	in := startInstance(t, reference.Options{Engine: reference.EngineLocalAI})
	passedEveryTime(t, dropUnjudgeable(t, runSuite(t, in)), 1)
	passedEveryTime(t, runSuite(t, in, "-ca-cert", in.CACert), 1)
}
