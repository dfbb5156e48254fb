package reference_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

// openAINodeModules is where `make deps` installs the OpenAI Node SDK.
var openAINodeModules = filepath.Join(reference.CacheDir(), "node", "current", "node_modules")

// serveEnv starts `make serve`'s program and returns the variables it prints.
func serveEnv(t *testing.T) (map[string]string, *exec.Cmd) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(t.TempDir(), "serve")
	build := exec.Command("go", "build", "-o", bin, "./fixtures/serve")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build serve: %s", out)

	cmd := exec.Command(bin)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	env := map[string]string{}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		k, v, ok := strings.Cut(lines.Text(), "=")
		require.True(t, ok, "serve printed %q, want NAME=VALUE lines", lines.Text())
		env[k] = v
		if k == "SLM_COPILOT_CA_CERT" {
			break
		}
	}
	for _, k := range []string{"SLM_COPILOT_ENDPOINT", "SLM_COPILOT_PASSWORD", "SLM_COPILOT_MODEL", "SLM_COPILOT_CA_CERT"} {
		if env[k] == "" {
			_ = cmd.Wait()
			t.Fatalf("serve did not print %s; its stderr:\n%s", k, stderr.String())
		}
	}
	return env, cmd
}

// TestServeWorksWithIndependentClients: the endpoint `make serve` prints works end to end
// with curl and the official OpenAI Node SDK, and Ctrl-C leaves nothing behind.
func TestServeWorksWithIndependentClients(t *testing.T) {
	t.Parallel()
	env, cmd := serveEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("curl", func(t *testing.T) {
		// The header comes from a config on stdin, so the password stays out of argv.
		curl := exec.CommandContext(ctx, "curl", "-sS", "--fail-with-body", "--cacert", env["SLM_COPILOT_CA_CERT"], "-K", "-",
			"-H", "Content-Type: application/json", "-N",
			"-d", `{"model":"`+env["SLM_COPILOT_MODEL"]+`","stream":true,"max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`,
			env["SLM_COPILOT_ENDPOINT"]+"/v1/chat/completions")
		curl.Stdin = strings.NewReader(`header = "Authorization: Bearer ` + env["SLM_COPILOT_PASSWORD"] + `"` + "\n")
		out, err := curl.CombinedOutput()
		require.NoError(t, err, "curl: %s", out)
		assert.Contains(t, string(out), `"delta"`, "no stream chunks")
		assert.True(t, strings.HasSuffix(strings.TrimSpace(string(out)), "data: [DONE]"), "stream must end with data: [DONE]")
	})

	t.Run("openai_node", func(t *testing.T) {
		_, err := os.Stat(openAINodeModules + "/openai/package.json")
		require.NoError(t, err, "the OpenAI Node SDK is missing: run `make deps`")
		node := exec.CommandContext(ctx, "node", "testdata/openai_node.js")
		node.Env = append(os.Environ(),
			"OPENAI_NODE_MODULES="+openAINodeModules,
			"NODE_EXTRA_CA_CERTS="+env["SLM_COPILOT_CA_CERT"],
			"SLM_COPILOT_ENDPOINT="+env["SLM_COPILOT_ENDPOINT"],
			"SLM_COPILOT_PASSWORD="+env["SLM_COPILOT_PASSWORD"],
			"SLM_COPILOT_MODEL="+env["SLM_COPILOT_MODEL"])
		out, err := node.CombinedOutput()
		require.NoError(t, err, "node: %s", out)
		var got struct {
			IDs     []string `json:"ids"`
			Chunks  int      `json:"chunks"`
			Content int      `json:"content"`
		}
		require.NoError(t, json.Unmarshal(out, &got), "node printed %s", out)
		assert.Contains(t, got.IDs, env["SLM_COPILOT_MODEL"])
		assert.Positive(t, got.Chunks, "no streamed content")
		assert.Positive(t, got.Content, "no content")
	})

	dir := filepath.Dir(filepath.Dir(env["SLM_COPILOT_CA_CERT"]))
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	require.NoError(t, cmd.Wait(), "serve must exit cleanly on Ctrl-C")
	_, err := os.Stat(dir)
	assert.True(t, os.IsNotExist(err), "serve must remove %s on Ctrl-C", dir)
	assert.Empty(t, processesUsing(t, dir), "serve must stop nginx and the engine on Ctrl-C")
}

// processesUsing lists processes whose command line mentions dir.
func processesUsing(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), dir) {
			found = append(found, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// TestSweepRemovesKilledInstances: what a killed `make serve` (or a test binary killed by
// its timeout) leaves behind is removed by the next start's sweep.
func TestSweepRemovesKilledInstances(t *testing.T) {
	t.Parallel()
	env, cmd := serveEnv(t)
	dir := filepath.Dir(filepath.Dir(env["SLM_COPILOT_CA_CERT"]))
	require.NoError(t, cmd.Process.Kill(), "kill -9 serve: no chance to clean up")
	_ = cmd.Wait()
	_, err := os.Stat(dir)
	require.NoError(t, err, "a killed serve leaves its directory")

	reference.SweepStale()
	_, err = os.Stat(dir)
	assert.True(t, os.IsNotExist(err), "the sweep must remove %s", dir)
	assert.Empty(t, processesUsing(t, dir), "the sweep must stop what the killed instance left running")
	assert.Empty(t, orphanedNginxWorkers(t), "the sweep must stop the killed instance's nginx workers")
}

// orphanedNginxWorkers lists nginx workers whose master is gone.
func orphanedNginxWorkers(t *testing.T) []string {
	t.Helper()
	var found []string
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, stat := range stats {
		b, err := os.ReadFile(stat)
		if err != nil || !strings.Contains(string(b), "(nginx)") {
			continue
		}
		fields := strings.Fields(string(b[strings.LastIndex(string(b), ")")+1:]))
		cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(stat), "cmdline"))
		if len(fields) > 1 && fields[1] == "1" && strings.HasPrefix(string(cmdline), "nginx: worker process") {
			found = append(found, stat)
		}
	}
	return found
}
