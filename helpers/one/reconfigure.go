package one

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	dyn "github.com/OpenNebula/one/src/oca/go/src/goca/dynamic"
	"github.com/OpenNebula/one/src/oca/go/src/goca/parameters"
	"github.com/OpenNebula/one/src/oca/go/src/goca/schemas/vm"
)

// Reconfigure proves the appliance is what one-apps calls RECONFIGURABLE: a changed
// context is applied on reboot. It gives the running VM a fresh ONEAPP_COPILOT_PASSWORD
// (one.vm.updateconf), clears READY, reboots the VM and waits until the appliance, whose
// configure stage runs again at boot, reports READY=YES. From the moment oned accepts the
// new context d.Password holds the new password, so a kept VM's note names the password
// its context now has; the caller keeps the old one if it wants to prove it is refused.
// Zero timeouts take DefaultBootTimeout and DefaultReadyTimeout.
func (c *Client) Reconfigure(ctx context.Context, d *Deployment, bootTimeout, readyTimeout time.Duration) error {
	if bootTimeout == 0 {
		bootTimeout = DefaultBootTimeout
	}
	if readyTimeout == 0 {
		readyTimeout = DefaultReadyTimeout
	}
	_, _, id := d.IDs()
	if id < 0 {
		return errors.New("reconfigure: the run has no VM")
	}
	var v *vm.VM
	err := c.read(ctx, fmt.Sprintf("read VM %d", id), func(ctx context.Context) (err error) {
		v, err = c.ctrl.VM(id).InfoContext(ctx, false)
		return err
	})
	if err != nil {
		return fmt.Errorf("reconfigure: %w", err)
	}
	password := randomHex(16)
	conf, err := updateconfTemplate(&v.Template.Template, password)
	if err != nil {
		return fmt.Errorf("reconfigure VM %d: %w", id, err)
	}
	// Repeating the same replacement changes nothing, so it may be retried like a read.
	err = c.read(ctx, fmt.Sprintf("update the CONTEXT of VM %d", id), func(ctx context.Context) error {
		return c.ctrl.VM(id).UpdateConfContext(ctx, conf)
	})
	if err != nil {
		return fmt.Errorf("reconfigure: %w", err)
	}
	d.mu.Lock()
	d.Password = password
	d.mu.Unlock()
	c.log("vm %d: reconfigure: CONTEXT updated with a new %s (one.vm.updateconf)", id, PasswordKey)

	// A RUNNING VM whose context changed goes to ACTIVE/HOTPLUG while the driver rebuilds
	// the context disk; a reboot is refused until it is RUNNING again (oned:
	// src/dm/DispatchManagerActions.cc DispatchManager::live_updateconf and ::reboot).
	if err := c.waitRunning(ctx, d, bootTimeout); err != nil {
		return fmt.Errorf("reconfigure: after the context update: %w", err)
	}
	// READY=YES stays in USER_TEMPLATE from the first boot; the guest sets it again only
	// after its stages succeed (one-context's net-99-report-ready sends READY=YES through
	// OneGate), so it is cleared first, or the wait below would end at once.
	err = c.read(ctx, fmt.Sprintf("clear READY of VM %d", id), func(ctx context.Context) error {
		return c.ctrl.VM(id).UpdateContext(ctx, `READY="NO"`, parameters.Merge)
	})
	if err != nil {
		return fmt.Errorf("reconfigure: %w", err)
	}
	// Not repeated once oned may have seen it: two reboots would race the second boot.
	err = c.create(ctx, fmt.Sprintf("reboot VM %d", id), func(ctx context.Context) error {
		return c.ctrl.VM(id).RebootContext(ctx)
	})
	if err != nil {
		return fmt.Errorf("reconfigure: %w", err)
	}
	c.log("vm %d: reconfigure: READY cleared, reboot sent; the appliance's configure stage applies the new context at boot", id)
	if err := c.waitRunning(ctx, d, bootTimeout); err != nil {
		return fmt.Errorf("reconfigure: after the reboot: %w", err)
	}
	if err := c.waitReady(ctx, d, readyTimeout); err != nil {
		return fmt.Errorf("reconfigure: after the reboot: %w", err)
	}
	return nil
}

// updateconfSections are the parts of a VM template one.vm.updateconf replaces besides
// CONTEXT. goca's UpdateConf sends no update type, so oned replaces: a section left out
// is erased from the VM (oned: src/vm/VirtualMachine.cc replace_vector_values, called by
// VirtualMachine::updateconf; src/rm/RequestManagerVirtualMachine.cc
// VirtualMachineUpdateConf defaults the type to 0). They are sent back as the VM has
// them, so only the password changes. BACKUP_CONFIG is left out: it is not in the VM's
// TEMPLATE, and updateconf leaves it alone when absent.
var updateconfSections = []string{"OS", "FEATURES", "INPUT", "GRAPHICS", "VIDEO", "RAW", "CPU_MODEL"}

// ethKey matches the network context oned writes from the NICs when NETWORK=YES.
var ethKey = regexp.MustCompile(`^ETH\d+_\w+$`)

// pciKey matches what oned writes for PCI devices (generate_pci_context).
var pciKey = regexp.MustCompile(`^PCI\d+_ADDRESS$`)

// updateconfTemplate is the template for one.vm.updateconf that gives the VM of template
// t the context it has, with PasswordKey set to password. What oned derives itself is
// left out (oned: src/vm/VirtualMachine.cc VirtualMachine::updateconf and
// src/vm/VirtualMachineContext.cc VirtualMachine::parse_context):
//   - ETH<n>_* when NETWORK=YES: regenerated from the NICs; oned refuses an added or
//     changed ETH<n>_* key ("update NIC to update network context"), and the equal
//     NETWORK=YES sent back is what makes it regenerate them;
//   - TARGET and DISK_ID: copied from the old context;
//   - PCI<n>_ADDRESS: regenerated from the PCI devices.
//
// ONEGATE_ENDPOINT and VMID are kept although oned generates them: in a replace, values
// equal to the old ones are set aside while the context is parsed and put back after, so
// an unchanged TOKEN=YES does not make generate_token_context run again; left out, they
// would be lost and the guest could no longer reach OneGate to report READY.
//
// It is XML, which oned accepts as well as its template syntax (parse_str_or_xml), so
// any value (quotes, newlines) reaches oned unchanged.
func updateconfTemplate(t *dyn.Template, password string) (string, error) {
	ctxVec, err := t.GetVector("CONTEXT")
	if err != nil {
		// oned: "Virtual machine does not have context, cannot add a new one."
		return "", fmt.Errorf("the VM has no single CONTEXT to update: %w", err)
	}
	network, _ := ctxVec.GetStr("NETWORK")
	generated := func(key string) bool {
		switch {
		case key == "TARGET" || key == "DISK_ID":
			return true
		case pciKey.MatchString(key):
			return true
		case ethKey.MatchString(key):
			return strings.EqualFold(network, "YES")
		}
		return false
	}
	var b strings.Builder
	b.WriteString("<TEMPLATE><CONTEXT>")
	found := false
	for _, p := range ctxVec.Pairs {
		key := p.Key()
		if generated(key) {
			continue
		}
		value := p.Value
		if key == PasswordKey {
			value, found = password, true
		}
		if err := element(&b, key, value); err != nil {
			return "", err
		}
	}
	if !found {
		return "", fmt.Errorf("its CONTEXT has no %s: was it deployed by this run?", PasswordKey)
	}
	b.WriteString("</CONTEXT>")
	for _, name := range updateconfSections {
		vecs := t.GetVectors(name)
		if len(vecs) == 0 {
			continue
		}
		b.WriteString("<" + name + ">")
		for _, p := range vecs[0].Pairs {
			if err := element(&b, p.Key(), p.Value); err != nil {
				return "", err
			}
		}
		b.WriteString("</" + name + ">")
	}
	b.WriteString("</TEMPLATE>")
	return b.String(), nil
}

// xmlName is what an OpenNebula attribute name may be and an XML element name can hold.
var xmlName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// element writes <key>value</key> with the value escaped.
func element(b *strings.Builder, key, value string) error {
	if !xmlName.MatchString(key) {
		return fmt.Errorf("attribute name %q cannot be sent back to oned", key)
	}
	b.WriteString("<" + key + ">")
	if err := xml.EscapeText(b, []byte(value)); err != nil {
		return err
	}
	b.WriteString("</" + key + ">")
	return nil
}
