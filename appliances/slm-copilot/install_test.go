package slmcopilot_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
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
	cut    map[string]bool // cut the next download of this path halfway
	ranges []string        // Range headers seen
}

func newMirror(t *testing.T) *mirror {
	t.Helper()
	m := &mirror{files: map[string][]byte{}, cut: map[string]bool{}}
	m.Server = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.Close)
	return m
}

func (m *mirror) serve(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	body, ok := m.files[r.URL.Path]
	cut := m.cut[r.URL.Path]
	delete(m.cut, r.URL.Path)
	if rg := r.Header.Get("Range"); rg != "" {
		m.ranges = append(m.ranges, rg)
	}
	m.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
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
		wantErr string
	}{
		{name: "verified", sha: sha(model), size: strconv.Itoa(len(model))},
		{name: "size_unknown", sha: sha(model)},
		{name: "checksum_mismatch", sha: sha([]byte("other")), size: strconv.Itoa(len(model)), wantErr: "does not match"},
		{name: "size_mismatch", sha: sha(model), size: "12345", wantErr: "want 12345"},
		{name: "no_checksum", sha: "", wantErr: "no valid sha256"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newMirror(t)
			m.files["/model.gguf"] = model
			root := sandboxRoot(t)
			dest := filepath.Join(root, "opt/local-ai/models/model.gguf")
			out, err := stage(t, root, "download_verified", nil, m.URL+"/model.gguf", dest, tc.sha, tc.size)
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
		{name: "verified", sums: sha(binary) + "  local-ai-v3.9.0-linux-amd64\n" + sha([]byte("x")) + "  local-ai-v3.9.0-darwin-arm64\n"},
		{name: "mismatch", sums: sha([]byte("tampered")) + "  local-ai-v3.9.0-linux-amd64\n", wantErr: "does not match"},
		{name: "not_listed", sums: sha(binary) + "  local-ai-v3.9.0-darwin-arm64\n", wantErr: "list no local-ai-v3.9.0-linux-amd64"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newMirror(t)
			m.files["/v3.9.0/local-ai-v3.9.0-linux-amd64"] = binary
			m.files["/v3.9.0/LocalAI-v3.9.0-checksums.txt"] = []byte(tc.sums)
			root := sandboxRoot(t)
			out, err := stage(t, root, "install_localai", []string{"LOCALAI_VERSION=v3.9.0", "LOCALAI_BASE_URL=" + m.URL + "/v3.9.0"})
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

// TestModelMetadataFromServer: an unpinned model takes its sha256 and size from the
// server's LFS headers, as Hugging Face sends them.
func TestModelMetadataFromServer(t *testing.T) {
	t.Parallel()
	model := tinyModel(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Linked-Etag", `"`+sha(model)+`"`)
		w.Header().Set("X-Linked-Size", strconv.Itoa(len(model)))
		http.ServeContent(w, r, "m.gguf", time.Time{}, bytes.NewReader(model))
	}))
	t.Cleanup(srv.Close)
	root := sandboxRoot(t)
	out, err := stage(t, root, "install_model", []string{"MODEL_URL=" + srv.URL + "/m.gguf", "MODEL_FILE=m.gguf"})
	require.NoError(t, err, out)
	assert.Contains(t, out, "sha256 "+sha(model))
	got, err := os.ReadFile(filepath.Join(root, "opt/local-ai/models/m.gguf"))
	require.NoError(t, err)
	assert.Equal(t, model, got)
}
