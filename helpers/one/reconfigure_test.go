package one

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dyn "github.com/OpenNebula/one/src/oca/go/src/goca/dynamic"
	"github.com/OpenNebula/one/src/oca/go/src/goca/schemas/vm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/fixtures/oned/simulator"
)

// deployedVM is a VM as oned 6.10 answers one.vm.info after this package deployed it:
// what the template gave, plus what oned added (NIC addresses, network and OneGate
// context, TARGET, DISK_ID, the VNC port).
const deployedVM = `<VM><ID>7</ID><NAME>run-vm</NAME><STATE>3</STATE><LCM_STATE>3</LCM_STATE><TEMPLATE>
<CONTEXT>
<DISK_ID><![CDATA[1]]></DISK_ID>
<ETH0_DNS><![CDATA[10.0.0.1]]></ETH0_DNS>
<ETH0_IP><![CDATA[10.0.0.5]]></ETH0_IP>
<ETH0_MAC><![CDATA[02:00:0a:00:00:05]]></ETH0_MAC>
<ETH0_MASK><![CDATA[255.255.255.0]]></ETH0_MASK>
<NETWORK><![CDATA[YES]]></NETWORK>
<ONEAPP_COPILOT_CONTEXT_SIZE><![CDATA[16384]]></ONEAPP_COPILOT_CONTEXT_SIZE>
<ONEAPP_COPILOT_PASSWORD><![CDATA[old-password-0123]]></ONEAPP_COPILOT_PASSWORD>
<ONEGATE_ENDPOINT><![CDATA[http://10.0.0.1:5030]]></ONEGATE_ENDPOINT>
<PCI0_ADDRESS><![CDATA[0000:01:01.0]]></PCI0_ADDRESS>
<REPORT_READY><![CDATA[YES]]></REPORT_READY>
<SSH_PUBLIC_KEY><![CDATA[ssh-ed25519 AAAA a@b]]></SSH_PUBLIC_KEY>
<TARGET><![CDATA[hda]]></TARGET>
<TOKEN><![CDATA[YES]]></TOKEN>
<VMID><![CDATA[7]]></VMID>
</CONTEXT>
<CPU><![CDATA[8]]></CPU>
<CPU_MODEL><MODEL><![CDATA[host-passthrough]]></MODEL></CPU_MODEL>
<DISK><IMAGE_ID><![CDATA[3]]></IMAGE_ID><TARGET><![CDATA[vda]]></TARGET></DISK>
<GRAPHICS><LISTEN><![CDATA[0.0.0.0]]></LISTEN><PORT><![CDATA[5907]]></PORT><TYPE><![CDATA[VNC]]></TYPE></GRAPHICS>
<MEMORY><![CDATA[32768]]></MEMORY>
<NIC><IP><![CDATA[10.0.0.5]]></IP><NETWORK_ID><![CDATA[0]]></NETWORK_ID><NIC_ID><![CDATA[0]]></NIC_ID></NIC>
<OS><ARCH><![CDATA[x86_64]]></ARCH><UUID><![CDATA[6a1f6d4e-0000-4000-8000-000000000007]]></UUID></OS>
<VMID><![CDATA[7]]></VMID>
</TEMPLATE><USER_TEMPLATE><READY><![CDATA[YES]]></READY></USER_TEMPLATE></VM>`

func parseVM(t *testing.T, s string) *vm.VM {
	t.Helper()
	var v vm.VM
	require.NoError(t, xml.Unmarshal([]byte(s), &v))
	return &v
}

// sent reads an updateconf template back as oned would, into sections of key -> value.
func sent(t *testing.T, s string) map[string]map[string]string {
	t.Helper()
	var tmpl dyn.Template
	require.NoError(t, xml.Unmarshal([]byte(s), &tmpl), "the template must be XML oned can parse:\n%s", s)
	out := map[string]map[string]string{}
	for _, e := range tmpl.Elements {
		vec, ok := e.(*dyn.Vector)
		require.True(t, ok, "only vectors are sent, got %s", e.Key())
		_, dup := out[vec.Key()]
		require.False(t, dup, "%s sent twice", vec.Key())
		out[vec.Key()] = map[string]string{}
		for _, p := range vec.Pairs {
			out[vec.Key()][p.Key()] = p.Value
		}
	}
	return out
}

func TestUpdateconfTemplate(t *testing.T) {
	t.Parallel()
	const password = "new-password-4567"
	got, err := updateconfTemplate(&parseVM(t, deployedVM).Template.Template, password)
	require.NoError(t, err)
	assert.NotContains(t, got, "old-password-0123", "the old password is not sent back")
	sections := sent(t, got)

	assert.Equal(t, map[string]string{
		"NETWORK": "YES", "TOKEN": "YES", "REPORT_READY": "YES",
		"SSH_PUBLIC_KEY":              "ssh-ed25519 AAAA a@b",
		"ONEAPP_COPILOT_CONTEXT_SIZE": "16384",
		PasswordKey:                   password,
		// Equal to the old values, so oned puts them back; left out they would be lost.
		"ONEGATE_ENDPOINT": "http://10.0.0.1:5030", "VMID": "7",
	}, sections["CONTEXT"], "the run's context with the new password, without what oned regenerates (ETH0_*, PCI0_ADDRESS, TARGET, DISK_ID)")

	// Replaced sections are sent back as the VM has them, or oned would erase them.
	assert.Equal(t, map[string]string{"MODEL": "host-passthrough"}, sections["CPU_MODEL"])
	assert.Equal(t, map[string]string{"LISTEN": "0.0.0.0", "PORT": "5907", "TYPE": "VNC"}, sections["GRAPHICS"])
	assert.Equal(t, map[string]string{"ARCH": "x86_64", "UUID": "6a1f6d4e-0000-4000-8000-000000000007"}, sections["OS"])
	for _, name := range []string{"DISK", "NIC", "MEMORY", "CPU", "VMID"} {
		assert.NotContains(t, sections, name, "updateconf does not take %s", name)
	}
}

func TestUpdateconfTemplateValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		context string // the CONTEXT's elements
		want    map[string]string
		err     string
	}{
		{
			name: "awkward_values_round_trip",
			context: `<NETWORK><![CDATA[YES]]></NETWORK><ONEAPP_COPILOT_PASSWORD><![CDATA[old]]></ONEAPP_COPILOT_PASSWORD>` +
				`<ONEAPP_X><![CDATA[a "quoted" \ value & <tag> ]]]]><![CDATA[> end` + "\nsecond line" + `]]></ONEAPP_X>` +
				`<ONEAPP_EMPTY></ONEAPP_EMPTY>`,
			want: map[string]string{"NETWORK": "YES", PasswordKey: "pw", "ONEAPP_X": "a \"quoted\" \\ value & <tag> ]]> end\nsecond line", "ONEAPP_EMPTY": ""},
		},
		{
			// Without NETWORK=YES oned generates no ETH keys: these were given, and kept.
			name:    "eth_keys_given_by_hand",
			context: `<ETH0_IP><![CDATA[192.0.2.9]]></ETH0_IP><ONEAPP_COPILOT_PASSWORD><![CDATA[old]]></ONEAPP_COPILOT_PASSWORD>`,
			want:    map[string]string{"ETH0_IP": "192.0.2.9", PasswordKey: "pw"},
		},
		{
			name:    "no_password",
			context: `<NETWORK><![CDATA[YES]]></NETWORK>`,
			err:     "its CONTEXT has no ONEAPP_COPILOT_PASSWORD",
		},
		{
			name: "no_context",
			err:  "the VM has no single CONTEXT to update",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := `<VM><ID>1</ID><TEMPLATE><MEMORY><![CDATA[1024]]></MEMORY></TEMPLATE></VM>`
			if tt.context != "" || tt.err == "" {
				doc = `<VM><ID>1</ID><TEMPLATE><CONTEXT>` + tt.context + `</CONTEXT></TEMPLATE></VM>`
			}
			got, err := updateconfTemplate(&parseVM(t, doc).Template.Template, "pw")
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, sent(t, got)["CONTEXT"])
		})
	}
}

// stubGuests boots no appliance: each boot records the CONTEXT it got and publishes
// https://IP, as the appliance does, so Reconfigure's oned side is tested in seconds.
type stubGuests struct {
	mu       sync.Mutex
	contexts []map[string]string
}

func (g *stubGuests) boot(_ context.Context, spec simulator.GuestSpec) (string, simulator.Guest, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.contexts = append(g.contexts, spec.Context)
	return "https://" + spec.IP, stubGuest{}, nil
}

func (g *stubGuests) boots() []map[string]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]map[string]string(nil), g.contexts...)
}

type stubGuest struct{}

func (stubGuest) Close() error { return nil }

// testLog writes the simulator's log lines to the test's log (safe from any goroutine).
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Helper()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestReconfigureThroughSimulator(t *testing.T) {
	t.Parallel()
	guests := &stubGuests{}
	sim, err := simulator.Start("127.0.0.1:0", simulator.Options{Boot: guests.boot, Log: testLog{t}})
	require.NoError(t, err)
	t.Cleanup(func() { sim.Close() })
	// The client logs from the goroutine that calls it: this test's.
	var logs strings.Builder
	c := NewClient(sim.Endpoint(), simulator.DefaultAuth, func(format string, args ...any) {
		fmt.Fprintf(&logs, format+"\n", args...)
		t.Logf(format, args...)
	})
	c.Poll = 50 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	image := filepath.Join(t.TempDir(), "slm-copilot.qcow2")
	require.NoError(t, os.WriteFile(image, []byte("stand-in disk"), 0o600))
	d := NewDeployment()
	require.NoError(t, c.Deploy(ctx, Config{Image: image, Datastore: "default", Network: "loopback",
		Context: map[string]string{"ONEAPP_COPILOT_CONTEXT_SIZE": "16384"}}, d))
	t.Cleanup(func() { assert.NoError(t, c.Teardown(context.Background(), d)) })
	oldPassword, endpoint := d.Password, d.Endpoint()

	require.NoError(t, c.Reconfigure(ctx, d, time.Minute, time.Minute))

	boots := guests.boots()
	require.Len(t, boots, 2, "the reboot boots the guest again")
	first, second := boots[0], boots[1]
	assert.Equal(t, d.Password, second[PasswordKey], "the second boot has the new password, and the Deployment holds it")
	assert.NotEqual(t, oldPassword, d.Password)
	for key, value := range first {
		if key != PasswordKey {
			assert.Equal(t, value, second[key], "CONTEXT %s is kept (or regenerated the same)", key)
		}
	}
	assert.Len(t, second, len(first), "nothing added to the CONTEXT, nothing lost (ETH0_*, ONEGATE_ENDPOINT, VMID)")
	assert.Equal(t, endpoint, d.Endpoint(), "the endpoint read back after READY=YES")
	for _, line := range []string{"reconfigure: CONTEXT updated", "READY cleared, reboot sent", "READY at"} {
		assert.Contains(t, logs.String(), line)
	}
	for _, pw := range []string{oldPassword, d.Password} {
		assert.NotContains(t, logs.String(), pw, "progress output never shows a password")
	}
}

func TestReconfigureWithoutVM(t *testing.T) {
	t.Parallel()
	c := NewClient("http://127.0.0.1:9/RPC2", "oneadmin:pw", nil)
	d := NewDeployment()
	password := d.Password
	err := c.Reconfigure(context.Background(), d, time.Second, time.Second)
	assert.ErrorContains(t, err, "the run has no VM")
	assert.Equal(t, password, d.Password, "the password stays until oned took the new one")
	assert.False(t, strings.Contains(err.Error(), password))
}
