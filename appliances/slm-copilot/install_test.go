package slmcopilot_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	slmcopilot "github.com/slm-copilot/slm-copilot/appliances/slm-copilot"
	"github.com/slm-copilot/slm-copilot/fixtures/gguf"
	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

// mirror serves release files over loopback HTTP, standing in for GitHub and Hugging Face.
// It honours Range requests, and can cut the first download of a file halfway.
type mirror struct {
	*httptest.Server
	mu     sync.Mutex
	files  map[string][]byte
	cut    map[string]bool   // cut the next download of this path halfway
	hold   map[string]func() // run halfway through the next full download of this path
	ranges []string          // Range headers seen
}

func newMirror(t *testing.T) *mirror {
	t.Helper()
	m := &mirror{files: map[string][]byte{}, cut: map[string]bool{}, hold: map[string]func(){}}
	m.Server = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.Close)
	return m
}

// newTLSMirror is a mirror on https; CURL_CA_BUNDLE=<the returned file> makes curl trust it.
func newTLSMirror(t *testing.T) (*mirror, string) {
	t.Helper()
	m := &mirror{files: map[string][]byte{}, cut: map[string]bool{}, hold: map[string]func(){}}
	m.Server = httptest.NewTLSServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.Certificate().Raw}), 0o644))
	return m, ca
}

func (m *mirror) serve(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	body, ok := m.files[r.URL.Path]
	cut := m.cut[r.URL.Path]
	delete(m.cut, r.URL.Path)
	hold := m.hold[r.URL.Path]
	if rg := r.Header.Get("Range"); rg != "" {
		m.ranges = append(m.ranges, rg)
	} else {
		delete(m.hold, r.URL.Path)
	}
	m.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if hold != nil && r.Header.Get("Range") == "" {
		// Send half, let the test look at the downloader mid-way, then the rest.
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		hold()
		_, _ = w.Write(body[len(body)/2:])
		return
	}
	if cut {
		// Promise the whole file, send half, drop the connection: a cut download.
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	http.ServeContent(w, r, filepath.Base(r.URL.Path), time.Time{}, bytes.NewReader(body))
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// stage runs one appliance.sh function in a fresh sandbox root.
func stage(t *testing.T, root, function string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := slmcopilot.Command(ctx, root, function, env, args...).CombinedOutput()
	return string(out), err
}

func sandboxRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	_, err := reference.PrepareSandbox(root)
	require.NoError(t, err)
	return root
}

func tinyModel(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, gguf.Write(&b, gguf.Spec{Seed: 9, Embedding: 32, Blocks: 1, Heads: 2, FeedForward: 64, Context: 256}))
	return b.Bytes()
}

func TestDownloadVerified(t *testing.T) {
	t.Parallel()
	model := tinyModel(t)
	cases := []struct {
		name    string
		sha     string
		size    string
		env     []string
		wantErr string
	}{
		{name: "verified", sha: sha(model), size: strconv.Itoa(len(model))},
		{name: "size_unknown", sha: sha(model)},
		{name: "checksum_mismatch", sha: sha([]byte("other")), size: strconv.Itoa(len(model)), wantErr: "does not match"},
		{name: "size_mismatch", sha: sha(model), size: "12345", wantErr: "want 12345"},
		{name: "no_checksum", sha: "", wantErr: "no valid sha256"},
		{name: "progress_interval_invalid", sha: sha(model), env: []string{"SLM_PROGRESS_SECONDS=soon"}, wantErr: "SLM_PROGRESS_SECONDS='soon' is invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newMirror(t)
			m.files["/model.gguf"] = model
			root := sandboxRoot(t)
			dest := filepath.Join(root, "opt/local-ai/models/model.gguf")
			out, err := stage(t, root, "download_verified", tc.env, m.URL+"/model.gguf", dest, tc.sha, tc.size)
			if tc.wantErr == "" {
				require.NoError(t, err, out)
				got, err := os.ReadFile(dest)
				require.NoError(t, err)
				assert.Equal(t, model, got)
				return
			}
			require.Error(t, err, out)
			assert.Contains(t, out, tc.wantErr)
			assert.NoFileExists(t, dest, "a failed verification must install nothing")
			assert.NoFileExists(t, dest+".part", "a corrupt download must not be kept for resuming")
		})
	}
}

func TestDownloadResumesAfterCut(t *testing.T) {
	t.Parallel()
	model := tinyModel(t)
	m := newMirror(t)
	m.files["/model.gguf"] = model
	m.cut["/model.gguf"] = true
	root := sandboxRoot(t)
	dest := filepath.Join(root, "opt/local-ai/models/model.gguf")
	args := []string{m.URL + "/model.gguf", dest, sha(model), strconv.Itoa(len(model))}

	out, err := stage(t, root, "download_verified", nil, args...)
	require.Error(t, err, "a cut download must fail:\n%s", out)
	assert.Contains(t, out, "the next run resumes it")
	assert.NoFileExists(t, dest)
	part, err := os.Stat(dest + ".part")
	require.NoError(t, err, "the partial file is kept for resuming")
	assert.Equal(t, int64(len(model)/2), part.Size())

	out, err = stage(t, root, "download_verified", nil, args...)
	require.NoError(t, err, out)
	got, err := os.ReadFile(dest)
	require.NoError(t, err)
	assert.Equal(t, model, got)
	assert.Contains(t, m.ranges, fmt.Sprintf("bytes=%d-", len(model)/2), "the second run must resume where the first stopped")
}

func TestInstallLocalAIVerifiesReleaseChecksum(t *testing.T) {
	t.Parallel()
	binary := []byte("#!/bin/sh\necho stand-in for local-ai\n")
	cases := []struct {
		name, sums, wantErr string
	}{
		{name: "verified", sums: sha(binary) + "  local-ai-v4.9.0-linux-amd64\n" + sha([]byte("x")) + "  local-ai-v4.9.0-darwin-arm64\n"},
		{name: "mismatch", sums: sha([]byte("tampered")) + "  local-ai-v4.9.0-linux-amd64\n", wantErr: "does not match"},
		{name: "not_listed", sums: sha(binary) + "  local-ai-v4.9.0-darwin-arm64\n", wantErr: "list no local-ai-v4.9.0-linux-amd64"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newMirror(t)
			m.files["/v4.9.0/local-ai-v4.9.0-linux-amd64"] = binary
			m.files["/v4.9.0/LocalAI-v4.9.0-checksums.txt"] = []byte(tc.sums)
			root := sandboxRoot(t)
			out, err := stage(t, root, "install_localai", []string{"LOCALAI_VERSION=v4.9.0", "LOCALAI_BASE_URL=" + m.URL + "/v4.9.0"})
			installed := filepath.Join(root, "usr/local/bin/local-ai")
			if tc.wantErr != "" {
				require.Error(t, err, out)
				assert.Contains(t, out, tc.wantErr)
				assert.NoFileExists(t, installed, "nothing may be installed")
				return
			}
			require.NoError(t, err, out)
			got, err := os.ReadFile(installed)
			require.NoError(t, err)
			assert.Equal(t, binary, got)
			assert.Equal(t, os.FileMode(0o755), mode(t, installed))
		})
	}
}

// localAIv490 are the names LocalAI's v4.9.0 release publishes, read at tag v4.9.0 (commit
// f7ad3f70eb5d8a0ddf80e08557f0d7df28cf032e).
var localAIv490 = map[string]string{
	// .goreleaser.yaml: archives name_template local-ai-{{ .Tag }}-{{ .Os }}-{{ .Arch }}
	"LOCALAI_ASSET": "local-ai-v4.9.0-linux-amd64",
	// .goreleaser.yaml: checksum name_template '{{ .ProjectName }}-{{ .Tag }}-checksums.txt'
	// (ProjectName defaults to the repository name, LocalAI)
	"LOCALAI_CHECKSUMS_ASSET": "LocalAI-v4.9.0-checksums.txt",
	// .github/workflows/backend_merge.yml: images quay.io/go-skynet/local-ai-backends, tags
	// type=semver,pattern={{raw}} with suffix=<tag-suffix>; .github/backend-matrix.yml:
	// llama-cpp on linux/amd64 has tag-suffix '-cpu-llama-cpp'
	"LOCALAI_BACKEND_IMAGE": "quay.io/go-skynet/local-ai-backends:v4.9.0-cpu-llama-cpp",
	"LOCALAI_VERSION":       "v4.9.0",
	// backend/index.yaml: the llama-cpp meta backend's name, the model YAML's backend:
	"LOCALAI_BACKEND_NAME": "llama-cpp",
}

// sources runs print_sources with env and parses its NAME=VALUE lines.
func sources(t *testing.T, env ...string) map[string]string {
	t.Helper()
	out, err := stage(t, sandboxRoot(t), "print_sources", env)
	require.NoError(t, err, out)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "print_sources line %q", line)
		got[k] = v
	}
	return got
}

func TestSourcesPinLocalAIRelease(t *testing.T) {
	t.Parallel()
	got := sources(t)
	for name, want := range localAIv490 {
		assert.Equal(t, want, got[name], "%s must be what LocalAI v4.9.0's release publishes", name)
	}
	for _, name := range []string{"MODEL_URL", "MODEL_COMMIT", "MODEL_SIZE", "MODEL_SHA256", "MODEL_FILE"} {
		assert.Contains(t, got, name, "the build manifest reads %s from print_sources", name)
	}
	pinned := sources(t, "MODEL_COMMIT="+strings.Repeat("ab", 20))
	assert.Equal(t, "https://huggingface.co/unsloth/Devstral-Small-2-24B-Instruct-2512-GGUF/resolve/"+strings.Repeat("ab", 20)+"/Devstral-Small-2-24B-Instruct-2512-Q4_K_M.gguf", pinned["MODEL_URL"])
	assert.Equal(t, strings.Repeat("ab", 20), pinned["MODEL_COMMIT"], "MODEL_COMMIT is the commit MODEL_URL resolves at")
}

// standinLocalAI builds testdata/standin/local-ai (LocalAI v4.9.0's CLI grammar) for one test
// (Go's build cache makes that a link, about half a second).
func standinLocalAI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "local-ai")
	out, err := exec.Command("go", "build", "-o", bin, "./testdata/standin/local-ai").CombinedOutput()
	require.NoError(t, err, "build the local-ai stand-in: %s", out)
	return bin
}

// publishedImages writes the registry the stand-in pulls from: the backend image v4.9.0 publishes.
func publishedImages(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "registry")
	require.NoError(t, os.WriteFile(p, []byte(localAIv490["LOCALAI_BACKEND_IMAGE"]+"\n"), 0o644))
	return p
}

// TestStandinRefusesWhatLocalAIRefuses: the stand-in's checks can fail, with LocalAI's messages.
func TestStandinRefusesWhatLocalAIRefuses(t *testing.T) {
	t.Parallel()
	bin := standinLocalAI(t)
	image := localAIv490["LOCALAI_BACKEND_IMAGE"]
	cases := []struct {
		name    string
		args    []string
		env     []string
		wantErr string // empty: accepted
	}{
		{"oci_with_name", []string{"backends", "install", image, "llama-cpp"}, nil, ""},
		{"oci_with_name_and_flag", []string{"--log-level", "info", "backends", "install", "--backends-path", "BACKENDS", image, "llama-cpp"}, nil, ""},
		// core/services/galleryop/backends.go
		{"oci_without_name", []string{"backends", "install", image}, nil, "specifying a name is required for OCI images"},
		{"gallery_with_name", []string{"backends", "install", "llama-cpp", "llama-cpp"}, nil, "specifying a name or alias is not supported for gallery backends"},
		{"too_many_arguments", []string{"backends", "install", image, "a", "b", "c"}, nil, "unexpected argument c"},
		{"unknown_flag", []string{"backends", "install", "--name", "x", image}, nil, "unknown flag --name"},
		{"unpublished_image", []string{"backends", "install", "quay.io/go-skynet/local-ai-backends:v3.9.9-cpu-llama-cpp", "llama-cpp"}, nil, "manifest unknown"},
		{"run_unknown_env", []string{"run"}, []string{"LOCALAI_PRELOAD_TO_MEMORY=m"}, "reads no LOCALAI_PRELOAD_TO_MEMORY"},
		{"run_threads_not_int", []string{"run"}, []string{"LOCALAI_THREADS=all"}, `expected a valid 64 bit int but got "all" (from envar LOCALAI_THREADS="all")`},
		{"run_bool_not_kong", []string{"run"}, []string{"LOCALAI_DISABLE_WEBUI=on"}, "bool value must be true, 1, yes, false, 0 or no"},
		{"run_public_without_key", []string{"run"}, []string{"LOCALAI_ADDRESS=8.8.8.8:8080"}, "refusing to start: API bound to public address"},
		{"run_preload_missing", []string{"run"}, []string{"LOCALAI_ADDRESS=127.0.0.1:8080", "LOCALAI_LOAD_TO_MEMORY=nope"}, "failed to load model nope"},
		{"run_loopback", []string{"run"}, []string{"LOCALAI_ADDRESS=127.0.0.1:8080", "LOCALAI_THREADS=4", "LOCALAI_DISABLE_WEBUI=true"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			args := slices.Clone(tc.args)
			for i := range args {
				args[i] = strings.ReplaceAll(args[i], "BACKENDS", filepath.Join(dir, "custom"))
			}
			cmd := exec.Command(bin, args...)
			cmd.Dir = dir
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "STANDIN_REGISTRY=" + publishedImages(t)}, tc.env...)
			out, err := cmd.CombinedOutput()
			if tc.wantErr != "" {
				require.Error(t, err, "the stand-in must refuse %v:\n%s", tc.args, out)
				assert.Contains(t, string(out), tc.wantErr)
				return
			}
			require.NoError(t, err, string(out))
			if tc.args[0] != "run" {
				installed, _ := filepath.Glob(filepath.Join(dir, "*", "llama-cpp", "run.sh"))
				assert.Len(t, installed, 1, "the backend lands in BACKENDS_PATH/<name>/run.sh")
			}
		})
	}
}

// installEnv is a sandbox where appliance.sh's install and bootstrap stages run against a
// loopback mirror (GitHub and Hugging Face) and stand-ins for the system (systemctl,
// journalctl, apt-get, useradd, chown: testdata/standin/bin) and for LocalAI (served as the
// release binary).
type installEnv struct {
	*sandbox
	mirror *mirror
	log    string // stand-ins' record of calls
	model  []byte
	env    []string
}

// modelPath is where the mirror serves the model: a Hugging Face resolve/<commit> URL.
const modelPath = "/unsloth/Devstral-Small-2-24B-Instruct-2512-GGUF/resolve/0123456789abcdef0123456789abcdef01234567/Devstral-Small-2-24B-Instruct-2512-Q4_K_M.gguf"

func newInstallEnv(t *testing.T) *installEnv {
	t.Helper()
	s := newSandbox(t)
	bin := t.TempDir()
	standins, err := filepath.Abs("testdata/standin/bin")
	require.NoError(t, err)
	for _, name := range []string{"systemctl", "journalctl", "chown", "useradd"} {
		require.NoError(t, os.Symlink(filepath.Join(standins, name), filepath.Join(bin, name)))
	}
	require.NoError(t, os.Symlink(filepath.Join(standins, "recorder"), filepath.Join(bin, "apt-get")))
	localAI, err := os.ReadFile(standinLocalAI(t))
	require.NoError(t, err)

	m := newMirror(t)
	m.files["/releases/local-ai-v4.9.0-linux-amd64"] = localAI
	m.files["/releases/LocalAI-v4.9.0-checksums.txt"] = []byte(sha(localAI) + "  local-ai-v4.9.0-linux-amd64\n")
	model := tinyModel(t)
	m.files[modelPath] = model
	e := &installEnv{sandbox: s, mirror: m, log: filepath.Join(t.TempDir(), "calls"), model: model}
	e.env = []string{
		"PATH=" + bin + ":" + os.Getenv("PATH"),
		"STANDIN_LOG=" + e.log,
		"STANDIN_REGISTRY=" + publishedImages(t),
		"SLM_NGINX_CONF=" + s.mainConf,
		"TMPDIR=" + s.path("tmp"),
		"LOCALAI_BASE_URL=" + m.URL + "/releases",
		"MODEL_URL=" + m.URL + modelPath,
		"MODEL_SHA256=" + sha(model),
		"MODEL_SIZE=" + strconv.Itoa(len(model)),
		"SLM_PROGRESS_SECONDS=0.1",
	}
	return e
}

// run runs one appliance.sh function in the sandbox with the environment plus env.
func (e *installEnv) run(t *testing.T, function string, env ...string) (string, error) {
	t.Helper()
	return stage(t, e.root, function, append(slices.Clone(e.env), env...))
}

// calls are the stand-ins' recorded calls so far.
func (e *installEnv) calls(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(e.log)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	require.NoError(t, err)
	return string(b)
}

// installed runs the install stage, which must succeed, and forgets the calls it made.
func (e *installEnv) installed(t *testing.T, env ...string) string {
	t.Helper()
	out, err := e.run(t, "service_install", env...)
	require.NoError(t, err, out)
	require.NoError(t, os.Remove(e.log))
	return out
}

func TestServiceInstall(t *testing.T) {
	t.Parallel()
	e := newInstallEnv(t)
	out, err := e.run(t, "service_install")
	require.NoError(t, err, out)
	calls := e.calls(t)

	assert.NotContains(t, calls, "systemctl enable", "the image must enable no unit: bootstrap starts them")
	assert.Contains(t, calls, "systemctl disable --now nginx", "Debian's nginx package enables itself: the install stage must undo it")
	assert.Equal(t, 1, strings.Count(calls, "started local-ai"), "the pre-warm starts LocalAI once:\n%s", calls)
	assert.Contains(t, calls, "started local-ai with models: devstral-small-2-Q4_K_M.gguf="+sha(e.model)+" devstral-small-2.yaml=", "the pre-warm starts LocalAI with the verified model in place")
	assert.Contains(t, out, "install: pre-warm: devstral-small-2 answered a completion")
	assert.Contains(t, out, "pre-warm: configure with a 4096-token context", "the pre-warm uses SLM_PREWARM_CONTEXT's default")
	assert.Contains(t, out, "configure: done (context 4096,")

	assert.FileExists(t, e.path("usr/local/bin/local-ai"))
	assert.NoFileExists(t, e.path("usr/local/share/slm-copilot/local-ai-v4.9.0-linux-amd64"), "one copy of the LocalAI binary")
	assert.FileExists(t, e.path("opt/local-ai/backends/llama-cpp/run.sh"), "the backend is installed under the model YAML's backend name")
	assert.Equal(t, sha(e.model), sha([]byte(readFile(t, e.path("opt/local-ai/models/devstral-small-2-Q4_K_M.gguf")))))
	assert.Equal(t, readFile(t, "local-ai.service"), readFile(t, e.path("etc/systemd/system/local-ai.service")))
	assert.FileExists(t, e.path("usr/local/sbin/slm-copilot-ready"))
	pin := readFile(t, e.path("usr/local/share/slm-copilot/model.pin"))
	assert.Contains(t, pin, "MODEL_URL="+e.mirror.URL+modelPath)
	assert.Contains(t, pin, "MODEL_SHA256="+sha(e.model))

	assert.NotRegexp(t, `prewarm-[0-9a-f]{16}`, out, "the pre-warm's password must not be printed")
	assert.NotRegexp(t, `prewarm-[0-9a-f]{16}`, readFile(t, e.path("var/log/one-appliance/slm-copilot.log")), "nor logged")
	for _, gone := range []string{"var/lib/slm-copilot", "etc/nginx/slm-copilot", "etc/slm-copilot/local-ai.env", "etc/one-appliance/config",
		"etc/nginx/sites-enabled/slm-copilot.conf", "opt/local-ai/models/devstral-small-2.yaml"} {
		assert.NoFileExists(t, e.path(gone), "the image must not ship the pre-warm's %s", gone)
		assert.NoDirExists(t, e.path(gone), "the image must not ship the pre-warm's %s", gone)
	}
}

// TestServiceInstallRefuses: every failure stops the install stage with its cause.
func TestServiceInstallRefuses(t *testing.T) {
	t.Parallel()
	const noCompletion = "slm-copilot-ready: devstral-small-2 at 127.0.0.1:8080 gave no completion within 1800s"
	cases := []struct {
		name string
		env  []string
		want []string
	}{
		{"model_without_sha256", []string{"MODEL_SHA256="}, []string{"refusing to download an unpinned model", "sha256sum model.gguf", "MODEL_SHA256=<sha256>"}},
		{"model_without_size", []string{"MODEL_SIZE="}, []string{"refusing to download an unpinned model", "stat -c %s model.gguf"}},
		{"model_at_main", []string{"MODEL_URL=https://huggingface.co/unsloth/Devstral-Small-2-24B-Instruct-2512-GGUF/resolve/main/Devstral-Small-2-24B-Instruct-2512-Q4_K_M.gguf"},
			[]string{"refusing to download an unpinned model", "resolve/<40-hex commit>/", "api/models/unsloth/Devstral-Small-2-24B-Instruct-2512-GGUF/revision/main"}},
		{"model_sha_mismatch", []string{"MODEL_SHA256=" + strings.Repeat("0", 64)}, []string{"does not match " + strings.Repeat("0", 64)}},
		{"unpublished_backend", []string{"LOCALAI_BACKEND_IMAGE=quay.io/go-skynet/local-ai-backends:v9.9.9-cpu-llama-cpp"}, []string{"did not install", "manifest unknown"}},
		{"bake_model_not_boolean", []string{"SLM_BAKE_MODEL=yes"}, []string{"SLM_BAKE_MODEL='yes' is invalid"}},
		{"prewarm_context_too_small", []string{"SLM_PREWARM_CONTEXT=512"}, []string{"SLM_PREWARM_CONTEXT='512' is invalid"}},
		{"prewarm_configure_fails", []string{"SLM_NGINX_CONF=/nonexistent/nginx.conf"}, []string{"nginx rejects the configuration", "pre-warm failed: the configure stage failed"}},
		{"prewarm_no_completion", []string{"STANDIN_FAIL_UNITS=local-ai", "STANDIN_FAIL_REASON=" + noCompletion}, []string{"install: pre-warm: LocalAI gave no completion", noCompletion}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newInstallEnv(t)
			out, err := e.run(t, "service_install", tc.env...)
			require.Error(t, err, "service_install must fail:\n%s", out)
			for _, w := range tc.want {
				assert.Contains(t, out, w)
			}
			assert.NotContains(t, out, "install: done")
			assert.NoFileExists(t, e.path("etc/slm-copilot/local-ai.env"), "a failed pre-warm must not leave its settings")
		})
	}
}

// TestServiceInstallWithoutModel: the small image has everything but the weights.
func TestServiceInstallWithoutModel(t *testing.T) {
	t.Parallel()
	e := newInstallEnv(t)
	out, err := e.run(t, "service_install", "SLM_BAKE_MODEL=false")
	require.NoError(t, err, out)
	calls := e.calls(t)
	assert.NotContains(t, calls, "started local-ai", "without weights there is nothing to pre-warm")
	assert.NotContains(t, calls, "systemctl enable")
	assert.Contains(t, out, "pre-warm: no completion (SLM_BAKE_MODEL=false")
	assert.Contains(t, out, "configure: done", "the configuration is still checked")
	assert.NoFileExists(t, e.path("opt/local-ai/models/devstral-small-2-Q4_K_M.gguf"))
	assert.FileExists(t, e.path("opt/local-ai/backends/llama-cpp/run.sh"))
	assert.FileExists(t, e.path("usr/local/bin/local-ai"))
	assert.Contains(t, readFile(t, e.path("usr/local/share/slm-copilot/model.pin")), "MODEL_SHA256="+sha(e.model), "the first boot needs the pin")
}

// booted runs configure as at boot (the VM at 10.0.0.5).
func (e *installEnv) booted(t *testing.T, env ...string) {
	t.Helper()
	out, err := e.run(t, "service_configure", append([]string{"SLM_ADDRESSES=10.0.0.5"}, env...)...)
	require.NoError(t, err, out)
}

// TestFirstBootDownload: the small image downloads the pinned model at first boot, resumes
// after a cut, shows progress in the log and the report, and starts LocalAI only once the
// file is verified.
func TestFirstBootDownload(t *testing.T) {
	t.Parallel()
	e := newInstallEnv(t)
	e.installed(t, "SLM_BAKE_MODEL=false")
	e.booted(t)
	model := e.path("opt/local-ai/models/devstral-small-2-Q4_K_M.gguf")
	report := e.path("etc/one-appliance/config")

	e.mirror.cut[modelPath] = true
	out, err := e.run(t, "service_bootstrap")
	require.Error(t, err, "a cut download must fail the bootstrap:\n%s", out)
	assert.Contains(t, out, "the next run resumes it")
	assert.NotContains(t, e.calls(t), "local-ai", "LocalAI must not start before the model is verified")
	assert.Contains(t, reportValue(t, readFile(t, report), "status"), "failed: the model download")
	assert.NoFileExists(t, model)

	// The next boot resumes where the cut left the file.
	half := len(e.model) / 2
	e.booted(t)
	out, err = e.run(t, "service_bootstrap")
	require.NoError(t, err, out)
	assert.Contains(t, e.mirror.ranges, fmt.Sprintf("bytes=%d-", half), "the second boot must resume where the first stopped")
	assert.Contains(t, out, fmt.Sprintf("resuming at %d bytes", half))
	assert.Contains(t, out, fmt.Sprintf("download: %d of %d bytes (100%%)", len(e.model), len(e.model)))
	calls := e.calls(t)
	assert.Contains(t, calls, "started local-ai with models: devstral-small-2-Q4_K_M.gguf="+sha(e.model), "LocalAI starts with the verified model")
	assert.Less(t, strings.Index(calls, "started local-ai"), strings.Index(calls, "restart nginx"), "nginx follows the engine")
	assert.Equal(t, "ready", reportValue(t, readFile(t, report), "status"))
	assert.Equal(t, os.FileMode(0o644), mode(t, model), "LocalAI's user must read the model")
	assert.Contains(t, calls, "chown local-ai:local-ai "+model)

	// Later boots do not download (nor hash 14 GB) again.
	require.NoError(t, os.Remove(e.log))
	e.booted(t)
	out, err = e.run(t, "service_bootstrap")
	require.NoError(t, err, out)
	assert.Contains(t, out, "verified earlier")
	assert.NotContains(t, out, "download:")
}

// TestBootstrapReportsEngineFailure: when LocalAI cannot load the model, bootstrap fails with
// LocalAI's own words and the report says so.
func TestBootstrapReportsEngineFailure(t *testing.T) {
	t.Parallel()
	e := newInstallEnv(t)
	e.installed(t)
	require.NoError(t, os.RemoveAll(e.path("opt/local-ai/backends/llama-cpp")))
	e.booted(t)
	out, err := e.run(t, "service_bootstrap")
	require.Error(t, err, out)
	assert.Contains(t, out, "bootstrap: LocalAI gave no completion")
	assert.Contains(t, out, "backend not found: llama-cpp", "the cause, from LocalAI's journal")
	assert.Contains(t, reportValue(t, readFile(t, e.path("etc/one-appliance/config")), "status"), "failed: LocalAI gave no completion")
	assert.NotContains(t, e.calls(t), "restart nginx", "nothing is served without the engine")
}

// TestFirstBootProgress: while the download runs, the log and the report say how far it is.
func TestFirstBootProgress(t *testing.T) {
	t.Parallel()
	e := newInstallEnv(t)
	e.installed(t, "SLM_BAKE_MODEL=false")
	e.booted(t)
	total := len(e.model)
	progress := regexp.MustCompile(fmt.Sprintf(`download: ([0-9]+) of %d bytes \(([0-9]+)%%\)`, total))
	var midway []string
	var report string
	// Halfway through the mirror waits until the downloader logs a partial count.
	e.mirror.hold[modelPath] = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for ctx.Err() == nil {
			b, _ := os.ReadFile(e.path("var/log/one-appliance/slm-copilot.log"))
			for _, m := range progress.FindAllStringSubmatch(string(b), -1) {
				if n, _ := strconv.Atoi(m[1]); n > 0 && n < total {
					midway = m
				}
			}
			if midway != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		b, _ := os.ReadFile(e.path("etc/one-appliance/config"))
		report = string(b)
	}
	out, err := e.run(t, "service_bootstrap")
	require.NoError(t, err, out)
	require.NotNil(t, midway, "the appliance log must show the download's progress while it runs")
	assert.Contains(t, report, fmt.Sprintf("status       = downloading the model: %s%% (%s of %d bytes)", midway[2], midway[1], total), "the report shows the progress")
	assert.Contains(t, out, fmt.Sprintf("download: %d of %d bytes (100%%)", total, total))
	assert.Contains(t, e.calls(t), "started local-ai with models: devstral-small-2-Q4_K_M.gguf="+sha(e.model))
}

// TestFirstBootRefusesCorruptModel: a mirror serving other bytes never gets LocalAI started.
func TestFirstBootRefusesCorruptModel(t *testing.T) {
	t.Parallel()
	e := newInstallEnv(t)
	e.installed(t, "SLM_BAKE_MODEL=false")
	e.booted(t)
	e.mirror.files[modelPath] = bytes.Repeat([]byte{'x'}, len(e.model))
	out, err := e.run(t, "service_bootstrap")
	require.Error(t, err, out)
	assert.Contains(t, out, "does not match "+sha(e.model))
	assert.NotContains(t, e.calls(t), "local-ai")
	assert.NoFileExists(t, e.path("opt/local-ai/models/devstral-small-2-Q4_K_M.gguf"))
	assert.NoFileExists(t, e.path("opt/local-ai/models/devstral-small-2-Q4_K_M.gguf.part"), "a corrupt download is not kept for resuming")
}

// TestFirstBootModelOverride: ONEAPP_COPILOT_MODEL_URL/_SHA256 replace the pinned source.
func TestFirstBootModelOverride(t *testing.T) {
	t.Parallel()
	e := newInstallEnv(t)
	e.installed(t, "SLM_BAKE_MODEL=false")
	other, ca := newTLSMirror(t)
	var b bytes.Buffer
	require.NoError(t, gguf.Write(&b, gguf.Spec{Seed: 10, Embedding: 32, Blocks: 1, Heads: 2, FeedForward: 64, Context: 256}))
	other.files["/mine.gguf"] = b.Bytes()
	override := []string{"ONEAPP_COPILOT_MODEL_URL=" + other.URL + "/mine.gguf", "ONEAPP_COPILOT_MODEL_SHA256=" + strings.ToUpper(sha(b.Bytes())), "CURL_CA_BUNDLE=" + ca}
	e.booted(t, override...)
	out, err := e.run(t, "service_bootstrap", override...)
	require.NoError(t, err, out)
	assert.Contains(t, e.calls(t), "started local-ai with models: devstral-small-2-Q4_K_M.gguf="+sha(b.Bytes()))
	assert.Empty(t, e.mirror.ranges, "the pinned mirror is not used")
}

// TestUnitFileVerifies: systemd's own parser accepts local-ai.service. systemd-analyze verify
// runs against a root holding the unit, executables at its Exec paths and the host's
// targets; it exits 0 on mere warnings, so any output fails too.
func TestUnitFileVerifies(t *testing.T) {
	t.Parallel()
	unit := readFile(t, "local-ai.service")
	cases := []struct {
		name, unit string
		wantErr    bool
	}{
		{name: "as_shipped", unit: unit},
		{name: "typo_rejected", unit: strings.Replace(unit, "Restart=on-failure", "Restart=on-failur", 1), wantErr: true},
		{name: "missing_program_rejected", unit: strings.Replace(unit, "/usr/local/sbin/slm-copilot-ready", "/usr/local/sbin/slm-copilot-readyness", 1), wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			for _, exe := range []string{"usr/local/bin/local-ai", "usr/local/sbin/slm-copilot-ready", "bin/rm"} {
				require.NoError(t, os.MkdirAll(filepath.Join(root, filepath.Dir(exe)), 0o755))
				require.NoError(t, os.WriteFile(filepath.Join(root, exe), []byte("#!/bin/sh\n"), 0o755))
			}
			require.NoError(t, os.MkdirAll(filepath.Join(root, "etc/systemd/system"), 0o755))
			require.NoError(t, os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755))
			require.NoError(t, os.Symlink("/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/system")))
			require.NoError(t, os.WriteFile(filepath.Join(root, "etc/systemd/system/local-ai.service"), []byte(tc.unit), 0o644))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, "systemd-analyze", "verify", "--root="+root, "/etc/systemd/system/local-ai.service").CombinedOutput()
			if tc.wantErr {
				assert.True(t, err != nil || len(out) > 0, "systemd-analyze must object")
				return
			}
			require.NoError(t, err, "systemd-analyze verify: %s", out)
			assert.Empty(t, string(out), "systemd-analyze verify must have nothing to say")
		})
	}
	assert.NotRegexp(t, `(?m)^\[Install\]`, unit, "a unit without [Install] cannot be enabled: bootstrap starts it")
}

// TestUnitOutlastsReadinessCheck: systemd must not kill local-ai while slm-copilot-ready (its
// ExecStartPost) still waits: TimeoutStartSec exceeds the script's deadline plus one attempt.
func TestUnitOutlastsReadinessCheck(t *testing.T) {
	t.Parallel()
	number := func(text, pattern string) int {
		m := regexp.MustCompile(pattern).FindStringSubmatch(text)
		require.NotNil(t, m, "no %s", pattern)
		n, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		return n
	}
	unit := readFile(t, "local-ai.service")
	ready := readFile(t, "slm-copilot-ready")
	timeout := number(unit, `(?m)^TimeoutStartSec=([0-9]+)$`)
	deadline := number(ready, `TIMEOUT="\$\{SLM_READY_TIMEOUT:-([0-9]+)\}"`)
	attempt := number(ready, `--max-time ([0-9]+)`)
	retry := number(ready, `RETRY_SECONDS=([0-9]+)`)
	assert.Greater(t, timeout, deadline+attempt+retry, "TimeoutStartSec=%d must exceed slm-copilot-ready's %d s deadline + %d s attempt + %d s retry", timeout, deadline, attempt, retry)
	assert.Contains(t, unit, "ExecStartPost=+/usr/local/sbin/slm-copilot-ready")
}
