package slmcopilot_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/slm-copilot/slm-copilot/fixtures/oned/simulator"
	"github.com/slm-copilot/slm-copilot/helpers/one"
	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

// sandbox is a root where appliance.sh's configure stage runs as on a VM.
type sandbox struct {
	root, mainConf string
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, os.Chmod(root, 0o711), "nginx's workers must reach the sandbox")
	mainConf, err := reference.PrepareSandbox(root)
	require.NoError(t, err)
	return &sandbox{root: root, mainConf: mainConf}
}

// configure runs the configure stage with the VM at 10.0.0.5 and fd00::5, plus env.
func (s *sandbox) configure(t *testing.T, env ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := reference.ConfigureCommand(ctx, s.root, s.mainConf, append([]string{"SLM_ADDRESSES=10.0.0.5 fd00::5", "TMPDIR=" + s.path("tmp")}, env...)...)
	out, err := cmd.CombinedOutput()
	staged, _ := filepath.Glob(s.path("tmp/slm-copilot-stage.*"))
	assert.Empty(t, staged, "configure must not leave its staging directory (it can hold a decoded private key)")
	return string(out), err
}

func (s *sandbox) path(rel string) string { return filepath.Join(s.root, rel) }

// snapshot reads every file configure writes (not its log, nor the unpacked appliance).
func (s *sandbox) snapshot(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, top := range []string{"etc", "var/lib", "opt"} {
		_ = filepath.WalkDir(s.path(top), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if d.Type()&fs.ModeSymlink != 0 {
				target, _ := os.Readlink(p)
				files[p] = "-> " + target
				return nil
			}
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			info, _ := d.Info()
			files[p] = info.Mode().String() + "\n" + string(b)
			return nil
		})
	}
	require.NotEmpty(t, files, "configure wrote nothing")
	return files
}

// reportValue reads one "key = value" line of the report file.
func reportValue(t *testing.T, report, key string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `\s*=\s*(.*)$`).FindStringSubmatch(report)
	require.NotNil(t, m, "report has no %q line:\n%s", key, report)
	return strings.TrimSpace(m[1])
}

func TestConfigureIsIdempotent(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	out, err := s.configure(t)
	require.NoError(t, err, out)
	first := s.snapshot(t)
	report := readFile(t, s.path("etc/one-appliance/config"))
	password := reportValue(t, report, "password")
	assert.GreaterOrEqual(t, len(password), 16, "a generated password has at least 16 characters")

	out, err = s.configure(t)
	require.NoError(t, err, out)
	assert.Equal(t, first, s.snapshot(t), "a second configure run must leave every file byte-identical")
	assert.Equal(t, password, reportValue(t, readFile(t, s.path("etc/one-appliance/config")), "password"), "the generated password must survive a reboot")
	assert.NotContains(t, out, password, "configure must not print the password")
	assert.NotContains(t, readFile(t, s.path("var/log/one-appliance/slm-copilot.log")), password, "the log must not hold the password")
}

func TestConfigureReport(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	const password = "report-canary-Pa55word"
	out, err := s.configure(t, "ONEAPP_COPILOT_PASSWORD="+password, "ONEAPP_COPILOT_CONTEXT_SIZE=16384", "ONEAPP_COPILOT_THREADS=3")
	require.NoError(t, err, out)
	reportPath := s.path("etc/one-appliance/config")
	report := readFile(t, reportPath)
	for key, want := range map[string]string{
		"endpoint": "https://10.0.0.5", "username": "copilot", "password": password, "model": "devstral-small-2",
		"context_size": "16384", "threads": "3", "tls_mode": "self-signed",
		"base_url": "https://10.0.0.5/v1", "api_key": password, "model_id": "devstral-small-2", "context_window": "16384",
	} {
		assert.Equal(t, want, reportValue(t, report, key), "report field %s", key)
	}
	assert.Contains(t, report, "NODE_EXTRA_CA_CERTS", "the report must say how to trust the self-signed certificate")
	assert.Equal(t, os.FileMode(0o600), mode(t, reportPath))

	// Every file that holds the password (or its Basic form) is root-only.
	basic := base64.StdEncoding.EncodeToString([]byte("copilot:" + password))
	err = filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), password) || strings.Contains(string(b), basic) {
			assert.Zero(t, mode(t, p)&0o077, "%s holds the password but is readable by others (%v)", p, mode(t, p))
		}
		return nil
	})
	require.NoError(t, err)

	model := readFile(t, s.path("opt/local-ai/models/devstral-small-2.yaml"))
	assert.Contains(t, model, "context_size: 16384", "the model YAML must always set context_size")
	assert.Contains(t, model, "threads: 3")
	env := readFile(t, s.path("etc/slm-copilot/local-ai.env"))
	assert.Contains(t, env, "LOCALAI_ADDRESS=127.0.0.1:8080", "the engine listens on loopback only")
	assert.Equal(t, os.FileMode(0o600), mode(t, s.path("etc/slm-copilot/local-ai.env")))
}

func TestConfigureSelfSignedCertificate(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	out, err := s.configure(t, "ONEAPP_COPILOT_DOMAIN=copilot.example.com")
	require.NoError(t, err, out)
	c := parseCert(t, readFile(t, s.path("etc/nginx/slm-copilot/tls/cert.pem")))
	assert.Equal(t, []string{"copilot.example.com"}, c.DNSNames)
	require.Len(t, c.IPAddresses, 2)
	assert.True(t, c.IPAddresses[0].Equal(net.ParseIP("10.0.0.5")))
	assert.True(t, c.IPAddresses[1].Equal(net.ParseIP("fd00::5")))
	assert.Equal(t, "https://copilot.example.com", reportValue(t, readFile(t, s.path("etc/one-appliance/config")), "endpoint"))
	site := readFile(t, s.path("etc/nginx/sites-available/slm-copilot.conf"))
	assert.Contains(t, site, "listen 443 ssl;")
	assert.Contains(t, site, "listen 80;")
	assert.NotRegexp(t, `@[A-Z_]+@`, site, "no placeholder may remain in the site")
	link, err := os.Readlink(s.path("etc/nginx/sites-enabled/slm-copilot.conf"))
	require.NoError(t, err)
	assert.Equal(t, s.path("etc/nginx/sites-available/slm-copilot.conf"), link)
	nginx := exec.Command("nginx", "-t", "-q", "-c", s.mainConf)
	nginxOut, err := nginx.CombinedOutput()
	assert.NoError(t, err, "nginx -t: %s", nginxOut)
}

func TestConfigureUserCertificate(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	dir := t.TempDir()
	certA, keyA := filepath.Join(dir, "a.pem"), filepath.Join(dir, "a.key")
	out, err := frontdoor(t, "", "tls", certA, keyA, "copilot.example.com")
	require.NoError(t, err, out)
	b64 := func(p string) string { return base64.StdEncoding.EncodeToString([]byte(readFile(t, p))) }
	out, err = s.configure(t, "ONEAPP_COPILOT_TLS_CERT="+b64(certA), "ONEAPP_COPILOT_TLS_KEY="+b64(keyA))
	require.NoError(t, err, out)
	assert.Equal(t, readFile(t, certA), readFile(t, s.path("etc/nginx/slm-copilot/tls/user-cert.pem")))
	assert.Equal(t, os.FileMode(0o600), mode(t, s.path("etc/nginx/slm-copilot/tls/user-key.pem")))
	assert.Contains(t, readFile(t, s.path("etc/nginx/sites-available/slm-copilot.conf")), "user-cert.pem")
	assert.Equal(t, "user", reportValue(t, readFile(t, s.path("etc/one-appliance/config")), "tls_mode"))
}

// TestConfigureRejectsInvalidValues: each bad value fails with a message naming the variable
// and what is allowed, and leaves the previous working configuration untouched.
func TestConfigureRejectsInvalidValues(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certA, keyA := filepath.Join(dir, "a.pem"), filepath.Join(dir, "a.key")
	certB, keyB := filepath.Join(dir, "b.pem"), filepath.Join(dir, "b.key")
	for _, pair := range [][2]string{{certA, keyA}, {certB, keyB}} {
		out, err := frontdoor(t, "", "tls", pair[0], pair[1], "copilot.example.com")
		require.NoError(t, err, out)
	}
	b64 := func(p string) string { return base64.StdEncoding.EncodeToString([]byte(readFile(t, p))) }
	cases := []struct {
		name string
		env  []string
		want []string
	}{
		{"context_not_a_number", []string{"ONEAPP_COPILOT_CONTEXT_SIZE=lots"}, []string{"ONEAPP_COPILOT_CONTEXT_SIZE='lots'", "2048 to 131072"}},
		{"context_too_small", []string{"ONEAPP_COPILOT_CONTEXT_SIZE=1024"}, []string{"ONEAPP_COPILOT_CONTEXT_SIZE='1024'", "2048 to 131072"}},
		{"context_too_large", []string{"ONEAPP_COPILOT_CONTEXT_SIZE=262144"}, []string{"ONEAPP_COPILOT_CONTEXT_SIZE='262144'", "2048 to 131072"}},
		{"threads_negative", []string{"ONEAPP_COPILOT_THREADS=-1"}, []string{"ONEAPP_COPILOT_THREADS='-1'", "0 to 256"}},
		{"threads_too_many", []string{"ONEAPP_COPILOT_THREADS=512"}, []string{"ONEAPP_COPILOT_THREADS='512'", "0 to 256"}},
		{"password_too_short", []string{"ONEAPP_COPILOT_PASSWORD=short"}, []string{"ONEAPP_COPILOT_PASSWORD is invalid", "8 to 72"}},
		{"password_too_long_for_bcrypt", []string{"ONEAPP_COPILOT_PASSWORD=" + strings.Repeat("a", 73)}, []string{"ONEAPP_COPILOT_PASSWORD is invalid", "8 to 72"}},
		{"password_control_char", []string{"ONEAPP_COPILOT_PASSWORD=pass\tword-long"}, []string{"ONEAPP_COPILOT_PASSWORD is invalid", "printable ASCII"}},
		{"domain_underscore", []string{"ONEAPP_COPILOT_DOMAIN=bad_name.example.com"}, []string{"ONEAPP_COPILOT_DOMAIN='bad_name.example.com'", "fully qualified DNS name"}},
		{"domain_unqualified", []string{"ONEAPP_COPILOT_DOMAIN=copilot"}, []string{"ONEAPP_COPILOT_DOMAIN='copilot'", "fully qualified DNS name"}},
		{"email", []string{"ONEAPP_COPILOT_LETSENCRYPT_EMAIL=nobody"}, []string{"ONEAPP_COPILOT_LETSENCRYPT_EMAIL='nobody'", "e-mail address"}},
		{"cert_without_key", []string{"ONEAPP_COPILOT_TLS_CERT=" + b64(certA)}, []string{"ONEAPP_COPILOT_TLS_CERT and ONEAPP_COPILOT_TLS_KEY go together"}},
		{"cert_not_pem", []string{"ONEAPP_COPILOT_TLS_CERT=bm90IGEgY2VydA==", "ONEAPP_COPILOT_TLS_KEY=" + b64(keyA)}, []string{"ONEAPP_COPILOT_TLS_CERT is invalid", "base64-encoded PEM certificate"}},
		{"key_not_pem", []string{"ONEAPP_COPILOT_TLS_CERT=" + b64(certA), "ONEAPP_COPILOT_TLS_KEY=%%%"}, []string{"ONEAPP_COPILOT_TLS_KEY is invalid"}},
		{"key_of_another_cert", []string{"ONEAPP_COPILOT_TLS_CERT=" + b64(certA), "ONEAPP_COPILOT_TLS_KEY=" + b64(keyB)}, []string{"ONEAPP_COPILOT_TLS_KEY does not belong to ONEAPP_COPILOT_TLS_CERT"}},
		{"model_url_without_sha", []string{"ONEAPP_COPILOT_MODEL_URL=https://mirror.example.com/m.gguf"}, []string{"ONEAPP_COPILOT_MODEL_URL and ONEAPP_COPILOT_MODEL_SHA256 go together"}},
		{"model_sha_without_url", []string{"ONEAPP_COPILOT_MODEL_SHA256=" + strings.Repeat("a", 64)}, []string{"ONEAPP_COPILOT_MODEL_URL and ONEAPP_COPILOT_MODEL_SHA256 go together"}},
		{"model_url_http", []string{"ONEAPP_COPILOT_MODEL_URL=http://mirror.example.com/m.gguf", "ONEAPP_COPILOT_MODEL_SHA256=" + strings.Repeat("a", 64)}, []string{"ONEAPP_COPILOT_MODEL_URL='http://mirror.example.com/m.gguf' is invalid", "https://"}},
		{"model_sha_short", []string{"ONEAPP_COPILOT_MODEL_URL=https://mirror.example.com/m.gguf", "ONEAPP_COPILOT_MODEL_SHA256=abc123"}, []string{"ONEAPP_COPILOT_MODEL_SHA256='abc123' is invalid", "64 hex digits"}},
		{"model_sha_not_hex", []string{"ONEAPP_COPILOT_MODEL_URL=https://mirror.example.com/m.gguf", "ONEAPP_COPILOT_MODEL_SHA256=" + strings.Repeat("g", 64)}, []string{"ONEAPP_COPILOT_MODEL_SHA256=", "64 hex digits"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			out, err := s.configure(t, "ONEAPP_COPILOT_PASSWORD=previous-Password1")
			require.NoError(t, err, out)
			before := s.snapshot(t)
			out, err = s.configure(t, tc.env...)
			require.Error(t, err, "configure must fail:\n%s", out)
			for _, w := range tc.want {
				assert.Contains(t, out, w)
			}
			assert.Contains(t, out, "nothing was changed")
			assert.NotContains(t, out, "previous-Password1")
			assert.Equal(t, before, s.snapshot(t), "a rejected value must leave the previous configuration untouched")
		})
	}
}

func parseCert(t *testing.T, pemText string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(pemText))
	require.NotNil(t, block, "no PEM certificate")
	c, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return c
}

// TestBootstrapPublishesEndpoint: bootstrap publishes the endpoint through OneGate in a form
// OneGate stores intact (its escaping, simulator.OneGateUpdate, breaks bracketed IPv6), and
// the deploy suite reads it back (one.PublishedEndpoint).
func TestBootstrapPublishesEndpoint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, addresses, domain string
		data, endpoint          string
	}{
		{"domain", "10.0.0.5", "copilot.example.com", "https://copilot.example.com", "https://copilot.example.com"},
		{"ipv4", "10.0.0.5", "", "https://10.0.0.5", "https://10.0.0.5"},
		{"ipv6", "2001:db8::5", "", "https://%5B2001:db8::5%5D", "https://[2001:db8::5]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t)
			env := []string{"SLM_ADDRESSES=" + tt.addresses}
			if tt.domain != "" {
				env = append(env, "ONEAPP_COPILOT_DOMAIN="+tt.domain)
			}
			out, err := s.configure(t, env...)
			require.NoError(t, err, out)
			bin := t.TempDir()
			record := filepath.Join(bin, "args")
			require.NoError(t, os.WriteFile(filepath.Join(bin, "onegate"), []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" > "+record+"\n"), 0o755))
			out, err = stage(t, s.root, "publish_endpoint", append(env,
				"PATH="+bin+":"+os.Getenv("PATH"), "ONEGATE_ENDPOINT=http://onegate.invalid:5030"))
			require.NoError(t, err, out)
			args := strings.Split(strings.TrimSuffix(readFile(t, record), "\n"), "\n")
			require.Equal(t, []string{"vm", "update", "--data", one.EndpointKey + "=" + tt.data}, args)

			stored, err := simulator.OneGateUpdate(args[3])
			require.NoError(t, err, "OneGate must store what the appliance publishes")
			endpoint, err := one.PublishedEndpoint(stored[one.EndpointKey])
			require.NoError(t, err)
			assert.Equal(t, tt.endpoint, endpoint, "the deploy suite reads back the endpoint")
		})
	}

	s := newSandbox(t)
	out, err := stage(t, s.root, "publish_endpoint", []string{"SLM_ADDRESSES=10.0.0.5"})
	require.NoError(t, err, "without OneGate, bootstrap goes on: %s", out)
	assert.Contains(t, out, "OneGate not available")
}

// A bracketed IPv6 URL is what OneGate breaks: the form above exists for a reason.
func TestOneGateBreaksBracketedIPv6(t *testing.T) {
	t.Parallel()
	_, err := simulator.OneGateUpdate(one.EndpointKey + "=https://[2001:db8::5]")
	assert.Error(t, err)
}

// modelConfigV490 is LocalAI v4.9.0's model config schema for the mappings the appliance writes:
// for each YAML path, the keys its Go struct declares (yaml tags read at tag v4.9.0). LocalAI's
// loader ignores unknown keys, so a misspelt or stale key is a setting that silently never applies.
var modelConfigV490 = map[string]struct {
	source string
	keys   string
}{
	"": {"core/config/model_config.go: ModelConfig and its inline LLMConfig",
		"agent alias artifacts backend chat_template_kwargs compression concurrency_groups cuda debug description diffusers disabled " +
			"download_files embeddings f16 feature_flags function grpc known_input_modalities known_output_modalities known_usecases limits " +
			"mcp mitm name options overrides parameters pii pii_detection pinned pipeline proxy reasoning reasoning_effort roles router step " +
			"template threads tts usage " +
			"cache_type_k cache_type_v cfg_scale context_size cutstrings disable_log_stats draft_model dtype enforce_eager engine_args " +
			"extract_regex flash_attention gpu_layers gpu_memory_utilization grammar limit_mm_per_prompt load_format lora_adapter lora_adapters " +
			"lora_base lora_scale lora_scales low_vram main_gpu max_model_len mirostat mirostat_eta mirostat_tau mmap mmlock mmproj n_draft " +
			"ngqa no_kv_offloading no_mulmatq numa prompt_cache_all prompt_cache_path prompt_cache_ro quantization reranking rms_norm_eps " +
			"rope_scaling stopwords swap_space system_prompt tensor_parallel_size tensor_split trimspace trimsuffix trust_remote_code type " +
			"yarn_attn_factor yarn_beta_fast yarn_beta_slow yarn_ext_factor"},
	"parameters": {"core/schema/prediction.go: PredictionOptions and its inline BasicModelRequest (core/schema/request.go)",
		"model batch clip_skip echo encoding_format frequency_penalty ignore_eos language logit_bias logprobs max_tokens min_p n n_keep " +
			"negative_prompt negative_prompt_scale pooling pooling_half_life_tokens presence_penalty repeat_last_n repeat_penalty " +
			"rope_freq_base rope_freq_scale seed temperature tfz tokenizer top_k top_logprobs top_p translate typical_p"},
	"template": {"core/config/model_config.go: TemplateConfig",
		"chat chat_message completion edit function join_chat_messages_by_character multimodal reply_prefix use_tokenizer_template"},
	"function": {"pkg/functions/parse.go: FunctionsConfig",
		"argument_regex argument_regex_key_name argument_regex_value_name automatic_tool_parsing_fallback capture_llm_results " +
			"disable_no_action disable_peg_parser function_arguments_key function_name_key grammar json_regex_match " +
			"no_action_description_name no_action_function_name replace_function_results replace_llm_results response_regex xml_format " +
			"xml_format_preset"},
	"function.grammar": {"pkg/functions/parse.go: GrammarConfig",
		"disable disable_parallel_new_lines expect_strings_after_json mixed_mode no_mixed_free_string parallel_calls prefix properties_order " +
			"schema_type triggers"},
}

// schemaViolations lists the keys of the mapping at path (recursively) that the v4.9.0 schema lacks.
func schemaViolations(path string, node map[string]any) []string {
	schema, ok := modelConfigV490[path]
	if !ok {
		return []string{fmt.Sprintf("%s: no v4.9.0 schema recorded for this mapping: read LocalAI's struct for it and add it to modelConfigV490", path)}
	}
	var out []string
	for key, value := range node {
		child := strings.TrimPrefix(path+"."+key, ".")
		if !slices.Contains(strings.Fields(schema.keys), key) {
			out = append(out, fmt.Sprintf("%s: not a key of %s at v4.9.0", child, schema.source))
			continue
		}
		if m, ok := value.(map[string]any); ok {
			out = append(out, schemaViolations(child, m)...)
		}
	}
	return out
}

func TestModelConfigIsValidForLocalAIv490(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	out, err := s.configure(t)
	require.NoError(t, err, out)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(readFile(t, s.path("opt/local-ai/models/devstral-small-2.yaml"))), &cfg))
	assert.Empty(t, schemaViolations("", cfg), "every key the appliance writes must exist in LocalAI v4.9.0's model config")

	var typed struct {
		Name        string `yaml:"name"`
		Backend     string `yaml:"backend"`
		ContextSize int    `yaml:"context_size"`
		Parameters  struct {
			Model string `yaml:"model"`
		} `yaml:"parameters"`
		Template struct {
			UseTokenizerTemplate bool `yaml:"use_tokenizer_template"`
		} `yaml:"template"`
		Function struct {
			Grammar struct {
				Disable bool `yaml:"disable"`
			} `yaml:"grammar"`
		} `yaml:"function"`
		Options []string `yaml:"options"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(readFile(t, s.path("opt/local-ai/models/devstral-small-2.yaml"))), &typed))
	assert.Equal(t, "devstral-small-2", typed.Name)
	assert.Equal(t, "llama-cpp", typed.Backend, "the name the backend is installed under")
	assert.Equal(t, 32768, typed.ContextSize)
	assert.Equal(t, "devstral-small-2-Q4_K_M.gguf", typed.Parameters.Model)
	// core/gallery/importers/llama-cpp.go writes these three together for GGUF chat models.
	assert.True(t, typed.Template.UseTokenizerTemplate)
	assert.Contains(t, typed.Options, "use_jinja:true")
	assert.True(t, typed.Function.Grammar.Disable, "tools must reach the model's template, not LocalAI's JSON grammar")
}

// TestSchemaCheckCatchesUnknownKeys: the schema check fails on a key LocalAI does not know.
func TestSchemaCheckCatchesUnknownKeys(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{"context_length: 4096", "parameters: {temprature: 0.1}", "function: {grammar: {disabled: true}}", "template: {chat: {x: 1}}"} {
		var cfg map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(doc), &cfg))
		assert.NotEmpty(t, schemaViolations("", cfg), "%s must be refused", doc)
	}
}

// TestEngineEnvIsKnownToLocalAIv490: every LOCALAI_* setting configure writes is one LocalAI
// v4.9.0 reads (core/cli/run.go; the list the local-ai stand-in also enforces).
func TestEngineEnvIsKnownToLocalAIv490(t *testing.T) {
	t.Parallel()
	s := newSandbox(t)
	out, err := s.configure(t, "ONEAPP_COPILOT_THREADS=3")
	require.NoError(t, err, out)
	known := map[string]bool{}
	for _, line := range strings.Split(readFile(t, "testdata/standin/local-ai/run-env-v4.9.0.txt"), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			known[line] = true
		}
	}
	settings := map[string]string{}
	for _, line := range strings.Split(readFile(t, s.path("etc/slm-copilot/local-ai.env")), "\n") {
		if name, value, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			settings[name] = value
			if strings.HasPrefix(name, "LOCALAI_") {
				assert.True(t, known[name], "LocalAI v4.9.0 reads no %s: it would be ignored", name)
			}
		}
	}
	assert.Equal(t, "3", settings["LOCALAI_THREADS"])
	assert.Equal(t, "32768", settings["LOCALAI_CONTEXT_SIZE"])
	assert.Equal(t, "devstral-small-2", settings["LOCALAI_LOAD_TO_MEMORY"], "preloaded before LocalAI serves (core/application/startup.go)")
	assert.Equal(t, "true", settings["LOCALAI_DISABLE_WEBUI"])
	assert.Regexp(t, `^[0-9a-f]{32,}$`, settings["LOCALAI_API_KEY"])
}
