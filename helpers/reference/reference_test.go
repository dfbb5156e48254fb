package reference_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

func start(t *testing.T, opts reference.Options) *reference.Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	began := time.Now()
	in, err := reference.Start(ctx, opts)
	require.NoError(t, err)
	t.Logf("reference appliance up in %s at %s", time.Since(began).Round(time.Millisecond), in.Endpoint)
	t.Cleanup(func() { in.Close() })
	return in
}

// client trusts the instance's certificate, as a user who followed the report would.
func client(t *testing.T, in *reference.Instance) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(in.CACert)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(pem))
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func status(t *testing.T, c *http.Client, url, authorization string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func TestInstancesRunSideBySideAndCleanUp(t *testing.T) {
	t.Parallel()
	a := start(t, reference.Options{})
	b := start(t, reference.Options{})
	require.NotEqual(t, a.Endpoint, b.Endpoint, "instances must pick their own ports")
	assert.NotEqual(t, a.Password, b.Password, "each start gets a fresh random password")
	assert.GreaterOrEqual(t, len(a.Password), 16)
	assert.Equal(t, http.StatusOK, status(t, client(t, a), a.Endpoint+"/readyz", ""))
	assert.Equal(t, http.StatusOK, status(t, client(t, b), b.Endpoint+"/readyz", ""))

	dir, addr := a.Files.Dir, strings.TrimPrefix(a.Endpoint, "https://")
	require.NoError(t, a.Close())
	_, err := os.Stat(dir)
	assert.True(t, os.IsNotExist(err), "Close must remove %s", dir)
	_, err = net.DialTimeout("tcp", addr, time.Second)
	assert.Error(t, err, "nothing may listen on %s after Close", addr)
	assert.Equal(t, http.StatusOK, status(t, client(t, b), b.Endpoint+"/readyz", ""), "closing one instance must leave the other running")
}

// TestHealthFollowsEngine: the front door's /readyz is 200 only while the engine answers.
func TestHealthFollowsEngine(t *testing.T) {
	t.Parallel()
	in := start(t, reference.Options{})
	c := client(t, in)
	require.Equal(t, http.StatusOK, status(t, c, in.Endpoint+"/readyz", ""))
	in.StopEngine()
	for _, path := range []string{"/readyz", "/health"} {
		assert.Equal(t, http.StatusServiceUnavailable, status(t, c, in.Endpoint+path, ""), "%s with the engine stopped", path)
	}
}

// TestPasswordIsMatchedExactly: a password with every awkward character works as Bearer
// and Basic, and near misses are refused.
func TestPasswordIsMatchedExactly(t *testing.T) {
	t.Parallel()
	const password = `Sp3cial p@ss"w'o\rd$(x)*.+?[a]{2}|^`
	in := start(t, reference.Options{Password: password})
	c := client(t, in)
	url := in.Endpoint + "/v1/models"
	assert.Equal(t, http.StatusOK, status(t, c, url, "Bearer "+password))
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.SetBasicAuth(reference.Username, password)
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "Basic with the password")
	for name, token := range map[string]string{
		"case_changed": strings.ToUpper(password),
		"prefix":       password[:len(password)-1],
		"suffix_added": password + "x",
		"regex_match":  strings.ReplaceAll(password, ".", "Z"),
	} {
		assert.Equal(t, http.StatusUnauthorized, status(t, c, url, "Bearer "+token), "Bearer %s must be refused", name)
	}
}

// TestExposeEngine: the exposed engine serves the model list without a key on its own
// address and port, the instance's front door still refuses without the password, and
// Close stops it.
func TestExposeEngine(t *testing.T) {
	t.Parallel()
	addr, err := reference.SpareLoopback(8080)
	require.NoError(t, err)
	in := start(t, reference.Options{Address: addr})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, in.ExposeEngine(ctx, addr, 8080))
	engine := "http://" + net.JoinHostPort(addr, "8080") + "/v1/models"
	assert.Equal(t, http.StatusOK, status(t, http.DefaultClient, engine, ""), "the exposed engine needs no key")
	assert.Equal(t, http.StatusUnauthorized, status(t, client(t, in), in.Endpoint+"/v1/models", ""), "the front door still asks for the password")
	require.NoError(t, in.Close())
	_, err = net.DialTimeout("tcp", net.JoinHostPort(addr, "8080"), time.Second)
	assert.Error(t, err, "Close must stop the exposed engine")
}
