package one_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/OpenNebula/one/src/oca/go/src/goca"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/fixtures/oned/simulator"
	"github.com/slm-copilot/slm-copilot/helpers/one"
)

func TestResolveAuth(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		return path
	}
	good := write("good", "alice:s3cret\n")
	bad := write("bad", "no-colon\n")
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "home", ".one"), 0o700))
	write("home/.one/one_auth", "bob:pw")

	tests := []struct {
		name, flag, oneAuth, home string
		want, source, err         string
	}{
		{name: "flag", flag: "carol:pw", want: "carol:pw", source: "-one.auth"},
		{name: "flag_not_a_session", flag: "carol", err: "not user:password"},
		{name: "one_auth_file", oneAuth: good, want: "alice:s3cret", source: "$ONE_AUTH"},
		{name: "one_auth_missing_file", oneAuth: filepath.Join(dir, "nope"), err: "does not exist"},
		{name: "one_auth_bad_file", oneAuth: bad, err: "not user:password"},
		{name: "home_file", home: filepath.Join(dir, "home"), want: "bob:pw", source: "~/.one/one_auth"},
		{name: "nothing", home: filepath.Join(dir, "empty"), err: "no OpenNebula credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(one.AuthFileEnv, tt.oneAuth)
			t.Setenv("HOME", tt.home)
			got, source, err := one.ResolveAuth(tt.flag)
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				assert.NotContains(t, fmt.Sprint(err), "s3cret", "errors never show a password")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Contains(t, source, tt.source)
		})
	}
}

func TestResolveEndpoint(t *testing.T) {
	t.Setenv(one.EndpointEnv, "")
	assert.Equal(t, one.DefaultEndpoint, one.ResolveEndpoint(""))
	t.Setenv(one.EndpointEnv, "http://fe:2633/RPC2")
	assert.Equal(t, "http://fe:2633/RPC2", one.ResolveEndpoint(""))
	assert.Equal(t, "http://x/RPC2", one.ResolveEndpoint("http://x/RPC2"))
}

// logBuffer collects progress lines from concurrent goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.buf, format+"\n", args...)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// setup starts a simulator (with the real reference appliance as its guests) and a
// client polling it quickly.
func setup(t *testing.T, opts simulator.Options) (*simulator.Oned, *one.Client, *logBuffer) {
	t.Helper()
	var simLog bytes.Buffer
	var mu sync.Mutex
	opts.Log = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return simLog.Write(p) })
	sim, err := simulator.Start("127.0.0.1:0", opts)
	require.NoError(t, err)
	logs := &logBuffer{}
	t.Cleanup(func() {
		sim.Close()
		if t.Failed() {
			mu.Lock()
			t.Logf("deploy log:\n%s\nsimulator log:\n%s", logs, simLog.String())
			mu.Unlock()
		}
	})
	c := one.NewClient(sim.Endpoint(), simulator.DefaultAuth, logs.logf)
	c.Poll = 50 * time.Millisecond
	return sim, c, logs
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func imageFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "slm-copilot.qcow2")
	require.NoError(t, os.WriteFile(path, []byte("not really a qcow2"), 0o600))
	return path
}

func config(t *testing.T) one.Config {
	return one.Config{
		Image: imageFile(t), Datastore: "default", Network: "loopback",
		Context:      map[string]string{"ONEAPP_COPILOT_CONTEXT_SIZE": "8192"},
		SSHPublicKey: "ssh-ed25519 AAAA test@example\n",
		ReadyTimeout: 2 * time.Minute,
	}
}

func deadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// assertNothingLeft fails if the simulator holds anything named after run d.
func assertNothingLeft(t *testing.T, sim *simulator.Oned, d *one.Deployment) {
	t.Helper()
	for _, obj := range sim.Inventory() {
		assert.False(t, strings.HasPrefix(obj.Name, d.RunID), "teardown left %s %d %q (%s)", obj.Kind, obj.ID, obj.Name, obj.State)
	}
}

func TestDeployAndTeardown(t *testing.T) {
	t.Parallel()
	sim, c, logs := setup(t, simulator.Options{})
	d := one.NewDeployment()
	require.NoError(t, c.Deploy(deadline(t), config(t), d))

	objs := sim.Inventory()
	require.Len(t, objs, 3, "image, template and VM: %+v", objs)
	var vm simulator.Object
	for _, obj := range objs {
		assert.True(t, strings.HasPrefix(obj.Name, d.RunID+"-"), "%s %q is named after the run", obj.Kind, obj.Name)
		if obj.Kind == "vm" {
			vm = obj
		}
	}
	assert.Equal(t, "ACTIVE/RUNNING", vm.State)
	for key, want := range map[string]string{
		"NETWORK": "YES", "TOKEN": "YES", "REPORT_READY": "YES", "SSH_PUBLIC_KEY": "ssh-ed25519 AAAA test@example",
		"ONEAPP_COPILOT_CONTEXT_SIZE": "8192", one.PasswordKey: d.Password,
	} {
		assert.Equal(t, want, vm.Context[key], "CONTEXT %s", key)
	}
	assert.Equal(t, "https://"+vm.Context["ETH0_IP"], d.Endpoint(), "the endpoint the appliance published")
	assert.NotContains(t, logs.String(), d.Password, "progress output never shows the password")
	for _, line := range []string{"PENDING", "ACTIVE/PROLOG", "ACTIVE/BOOT", "ACTIVE/RUNNING", "READY at"} {
		assert.Contains(t, logs.String(), line, "a progress line per state")
	}

	require.NoError(t, c.Teardown(deadline(t), d))
	assert.Empty(t, sim.Inventory(), "teardown removes the VM, the template and the image")
}

func TestDeployFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		opts   simulator.Options
		change func(*one.Config, *one.Client)
		errs   []string // phrases the error must hold: the cause and where to look
	}{
		{name: "authentication", change: func(_ *one.Config, c *one.Client) {},
			errs: []string{"rejected the credentials of user \"intruder\"", "-one.auth"}},
		{name: "unreachable_at_preflight", change: func(_ *one.Config, _ *one.Client) {},
			errs: []string{"oned at http://127.0.0.1:9/RPC2 unreachable", "connection refused", "-one.endpoint"}},
		{name: "not_oned", change: func(_ *one.Config, _ *one.Client) {},
			errs: []string{"no valid answer from oned", "is it an OpenNebula XML-RPC endpoint"}},
		{name: "unknown_datastore", change: func(cfg *one.Config, _ *one.Client) { cfg.Datastore = "fast" },
			errs: []string{`no image datastore "fast"`, `"default" (1)`}},
		{name: "unknown_network", change: func(cfg *one.Config, _ *one.Client) { cfg.Network = "public" },
			errs: []string{`no virtual network "public"`, `"loopback" (0)`}},
		{name: "image_not_a_source", change: func(cfg *one.Config, _ *one.Client) { cfg.Image = "disk.qcow2" },
			errs: []string{"neither a URL, an absolute front-end path nor an image id"}},
		{name: "image_error", opts: simulator.Options{Faults: simulator.Faults{ImageError: "No space left on device"}},
			errs: []string{"is in ERROR", "No space left on device", "oneimage show"}},
		{name: "image_path_missing", change: func(cfg *one.Config, _ *one.Client) { cfg.Image = "/nonexistent/slm-copilot.qcow2" },
			errs: []string{"[one.image.allocate] Cannot parse image SIZE", `could not read -one.image "/nonexistent/slm-copilot.qcow2"`, "readable by oneadmin"}},
		{name: "boot_failure", opts: simulator.Options{Faults: simulator.Faults{BootFailure: true}},
			errs: []string{"VM 0 failed", "BOOT_FAILURE", "onevm show 0"}},
		{name: "never_ready", opts: simulator.Options{Faults: simulator.Faults{NeverReady: true}},
			change: func(cfg *one.Config, _ *one.Client) { cfg.ReadyTimeout = 3 * time.Second },
			errs:   []string{"did not report READY=YES within 3s", "-one.ready-timeout", "/var/log/one-appliance"}},
		{name: "oned_unreachable", opts: simulator.Options{Faults: simulator.Faults{Outage: 5 * time.Second}},
			change: func(_ *one.Config, c *one.Client) { c.Unreachable = time.Second },
			errs:   []string{"unreachable for", "connection refused", "is the front-end up"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, c, logs := setup(t, tt.opts)
			cfg := config(t)
			switch tt.name {
			case "authentication":
				c = one.NewClient(sim.Endpoint(), "intruder:pw", logs.logf)
			case "unreachable_at_preflight": // the discard port: nothing listens
				c = one.NewClient("http://127.0.0.1:9/RPC2", simulator.DefaultAuth, logs.logf)
			case "not_oned": // a URL where no XML-RPC is served (404)
				c = one.NewClient(strings.TrimSuffix(sim.Endpoint(), "/RPC2")+"/nothing-here", simulator.DefaultAuth, logs.logf)
			}
			if tt.change != nil {
				tt.change(&cfg, c)
			}
			d := one.NewDeployment()
			err := c.Deploy(deadline(t), cfg, d)
			require.Error(t, err, "the deploy must fail")
			for _, phrase := range tt.errs {
				assert.Contains(t, err.Error(), phrase)
			}
			assert.NotContains(t, err.Error()+logs.String(), d.Password)

			require.NoError(t, c.Teardown(deadline(t), d), "teardown after %s", tt.name)
			assertNothingLeft(t, sim, d)
		})
	}
}

// A short outage is ridden out: reads retry, the deploy succeeds and says so.
func TestDeployRidesOutShortOutage(t *testing.T) {
	t.Parallel()
	sim, c, logs := setup(t, simulator.Options{Faults: simulator.Faults{Outage: 2 * time.Second}})
	c.Unreachable = time.Minute
	d := one.NewDeployment()
	require.NoError(t, c.Deploy(deadline(t), config(t), d))
	assert.Contains(t, logs.String(), "unreachable while trying to")
	assert.Contains(t, logs.String(), "oned reachable again after")
	require.NoError(t, c.Teardown(deadline(t), d))
	assert.Empty(t, sim.Inventory())
}

// An existing image given by id is used and never deleted.
func TestDeployReusesImage(t *testing.T) {
	t.Parallel()
	sim, c, _ := setup(t, simulator.Options{})
	ctrl := goca.NewController(goca.NewClient(goca.OneConfig{Token: simulator.DefaultAuth, Endpoint: sim.Endpoint()}, nil))
	id, err := ctrl.Images().Create(fmt.Sprintf("NAME = \"marketplace-image\"\nPATH = %q", imageFile(t)), 1)
	require.NoError(t, err)

	cfg := config(t)
	cfg.Image = fmt.Sprint(id)
	d := one.NewDeployment()
	require.NoError(t, c.Deploy(deadline(t), cfg, d))
	require.NoError(t, c.Teardown(deadline(t), d))
	objs := sim.Inventory()
	require.Len(t, objs, 1, "only the reused image is left: %+v", objs)
	assert.Equal(t, "marketplace-image", objs[0].Name)
	assert.Equal(t, "READY", objs[0].State)
}
