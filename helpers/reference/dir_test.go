package reference_test

import (
	"crypto/sha256"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

// fingerprint is the SHA-256 of the instance's certificate.
func fingerprint(t *testing.T, in *reference.Instance) [32]byte {
	t.Helper()
	b, err := os.ReadFile(in.Files.Cert)
	require.NoError(t, err)
	block, _ := pem.Decode(b)
	require.NotNil(t, block, "no PEM in %s", in.Files.Cert)
	return sha256.Sum256(block.Bytes)
}

// TestDirIsConfiguredAgain: an instance started again in its Options.Dir, as a VM
// reboots with its disk, runs the appliance's configure stage again over the same files:
// the self-signed certificate (same names) is kept, a new password replaces the old one,
// and Close leaves the directory.
func TestDirIsConfiguredAgain(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "slm-copilot-ref-kept-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })

	first := start(t, reference.Options{Dir: dir, Password: "first-password"})
	require.Equal(t, dir, first.Files.Dir)
	url := first.Endpoint + "/v1/models"
	require.Equal(t, http.StatusOK, status(t, client(t, first), url, "Bearer first-password"))
	before := fingerprint(t, first)
	require.NoError(t, first.Close())
	assert.FileExists(t, first.Files.Cert, "Close leaves Options.Dir")
	assert.FileExists(t, first.Files.Ready, "the readiness marker stays until the next start, as /run until a reboot")

	second := start(t, reference.Options{Dir: dir, Password: "second-password"})
	assert.Equal(t, before, fingerprint(t, second), "the certificate survives: its names did not change")
	c := client(t, second)
	url = second.Endpoint + "/v1/models"
	assert.Equal(t, http.StatusOK, status(t, c, url, "Bearer second-password"), "the new password works")
	assert.Equal(t, http.StatusUnauthorized, status(t, c, url, "Bearer first-password"), "the old password is refused")
	require.NoError(t, second.Close())
	_, err = os.Stat(filepath.Join(dir, "owner.pid"))
	assert.NoError(t, err, "the directory stays, still marked as this process's")
}
