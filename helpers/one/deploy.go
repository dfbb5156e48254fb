package one

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	dyn "github.com/OpenNebula/one/src/oca/go/src/goca/dynamic"
	"github.com/OpenNebula/one/src/oca/go/src/goca/schemas/image"
	"github.com/OpenNebula/one/src/oca/go/src/goca/schemas/shared"
	"github.com/OpenNebula/one/src/oca/go/src/goca/schemas/vm"
	"github.com/OpenNebula/one/src/oca/go/src/goca/schemas/vm/keys"
)

// NamePrefix starts the name of every object a run creates, so teardown and Clean can
// find them even when the run died before it learnt their ids.
const NamePrefix = "slm-copilot-acc-"

// Keys of the USER_TEMPLATE the appliance writes through OneGate.
const (
	EndpointKey = "ONEAPP_COPILOT_API_ENDPOINT"
	PasswordKey = "ONEAPP_COPILOT_PASSWORD"
)

// Config is one deployment. Zero durations and sizes take the defaults below.
type Config struct {
	// Image is a URL or a front-end path to register, or the id of an existing image.
	Image string
	// Datastore (image datastore) and Network, each a name or an id.
	Datastore, Network string
	// VCPU and MemoryMB size the VM; the 24B model wants 8 and 32768.
	VCPU, MemoryMB int
	// SSHPublicKey goes into CONTEXT when set.
	SSHPublicKey string
	// Context holds the appliance's ONEAPP_* values; the password is generated per run.
	Context map[string]string
	// ImageTimeout bounds LOCKED -> READY, BootTimeout PENDING -> RUNNING and
	// ReadyTimeout RUNNING -> READY=YES (the model loads in that time).
	ImageTimeout, BootTimeout, ReadyTimeout time.Duration
}

// Defaults of Config.
const (
	DefaultVCPU         = 8
	DefaultMemoryMB     = 32768
	DefaultImageTimeout = time.Hour
	DefaultBootTimeout  = 30 * time.Minute
	DefaultReadyTimeout = 20 * time.Minute
)

// Deployment is what a run created. It is safe for concurrent use, so a signal handler
// can tear down while Deploy is still running.
type Deployment struct {
	RunID    string
	Password string // the appliance password of this run; never print it

	mu           sync.Mutex
	imageID      int
	imageCreated bool
	templateID   int
	vmID         int
	endpoint     string
	lastState    string // last VM state and detail logged
	allocated    bool   // an allocation was sent: teardown must look
}

// allocating records that an object may exist from now on, even without its id.
func (d *Deployment) allocating() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.allocated = true
}

// NewDeployment picks a run id and a fresh appliance password.
func NewDeployment() *Deployment {
	return &Deployment{
		RunID:      NamePrefix + time.Now().UTC().Format("20060102-150405") + "-" + randomHex(3),
		Password:   randomHex(16),
		imageID:    -1,
		templateID: -1,
		vmID:       -1,
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Endpoint is the appliance's URL once Deploy succeeded.
func (d *Deployment) Endpoint() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.endpoint
}

// IDs are the image, template and VM ids known so far (-1: none).
func (d *Deployment) IDs() (imageID, templateID, vmID int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.imageID, d.templateID, d.vmID
}

// Deploy runs the preflight, registers (or reuses) the image, creates the template,
// instantiates the VM and waits until the appliance reports READY=YES. Whatever it
// returns, d holds what was created so far, for Teardown.
func (c *Client) Deploy(ctx context.Context, cfg Config, d *Deployment) error {
	cfg.defaults()
	version, err := c.Version(ctx)
	if err != nil {
		return err
	}
	c.log("oned %s at %s, user %q", version, c.Endpoint, c.user)
	dsID, err := c.find(ctx, "image datastore", "-one.datastore", cfg.Datastore, c.imageDatastores)
	if err != nil {
		return err
	}
	netID, err := c.find(ctx, "virtual network", "-one.network", cfg.Network, c.networks)
	if err != nil {
		return err
	}
	if err := c.image(ctx, cfg, d, dsID); err != nil {
		return err
	}
	if err := c.template(ctx, cfg, d, netID); err != nil {
		return err
	}
	if err := c.instantiate(ctx, d); err != nil {
		return err
	}
	if err := c.waitRunning(ctx, d, cfg.BootTimeout); err != nil {
		return err
	}
	return c.waitReady(ctx, d, cfg.ReadyTimeout)
}

func (cfg *Config) defaults() {
	if cfg.VCPU == 0 {
		cfg.VCPU = DefaultVCPU
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = DefaultMemoryMB
	}
	if cfg.ImageTimeout == 0 {
		cfg.ImageTimeout = DefaultImageTimeout
	}
	if cfg.BootTimeout == 0 {
		cfg.BootTimeout = DefaultBootTimeout
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
}

// named is an object as oned lists it.
type named struct {
	id      int
	name    string
	created time.Time // REGTIME or STIME; zero where oned has none (datastores, networks)
}

// lister reads one of oned's pools.
type lister func(context.Context) ([]named, error)

// list reads a pool, retrying while oned is unreachable.
func (c *Client) list(ctx context.Context, what string, l lister) ([]named, error) {
	var objs []named
	err := c.read(ctx, "list "+what, func(ctx context.Context) (err error) {
		objs, err = l(ctx)
		return err
	})
	return objs, err
}

// find returns the id of the object named or numbered want, or an error listing them.
func (c *Client) find(ctx context.Context, what, flagName, want string, l lister) (int, error) {
	objs, err := c.list(ctx, what, l)
	if err != nil {
		return -1, err
	}
	var names []string
	for _, o := range objs {
		if o.name == want || strconv.Itoa(o.id) == want {
			return o.id, nil
		}
		names = append(names, fmt.Sprintf("%q (%d)", o.name, o.id))
	}
	return -1, fmt.Errorf("no %s %q on oned at %s; %s can be one of: %s", what, want, c.Endpoint, flagName, strings.Join(names, ", "))
}

// imageDatastores lists the datastores images can be registered in.
func (c *Client) imageDatastores(ctx context.Context) ([]named, error) {
	pool, err := c.ctrl.Datastores().InfoContext(ctx)
	if err != nil {
		return nil, err
	}
	var objs []named
	for _, ds := range pool.Datastores {
		if ds.Type == "0" { // IMAGE_DS
			objs = append(objs, named{id: ds.ID, name: ds.Name})
		}
	}
	return objs, nil
}

func (c *Client) networks(ctx context.Context) ([]named, error) {
	pool, err := c.ctrl.VirtualNetworks().InfoContext(ctx)
	if err != nil {
		return nil, err
	}
	var objs []named
	for _, n := range pool.VirtualNetworks {
		objs = append(objs, named{id: n.ID, name: n.Name})
	}
	return objs, nil
}

// image registers cfg.Image (or reuses it, given an id) and waits until it is READY.
func (c *Client) image(ctx context.Context, cfg Config, d *Deployment, dsID int) error {
	id, err := strconv.Atoi(cfg.Image)
	if err == nil {
		c.log("image: reusing image %d", id)
	} else {
		source, err := imageSource(cfg.Image)
		if err != nil {
			return err
		}
		t := dyn.NewTemplate()
		t.AddPair("NAME", d.RunID+"-image")
		t.AddPair("PATH", source)
		t.AddPair("TYPE", "OS")
		t.AddPair("DESCRIPTION", "SLM-Copilot acceptance run "+d.RunID+"; removed by the run or by make one-clean")
		d.allocating()
		err = c.create(ctx, "register the image", func(ctx context.Context) (err error) {
			id, err = c.ctrl.Images().CreateContext(ctx, t.String(), uint(dsID))
			return err
		})
		if err != nil && strings.Contains(err.Error(), "Cannot parse image SIZE") {
			// oned stats the source during the allocate, through the datastore driver
			// (ImageAllocate, src/rm/RequestManagerAllocate.cc).
			return fmt.Errorf("%w; oned could not read -one.image %q: a path must exist on the front-end, be readable by oneadmin "+
				"and lie outside /var/lib/one/ and /etc/one/ (the fs driver refuses those); a URL must be reachable from the front-end", err, source)
		}
		if err != nil {
			return err
		}
		d.mu.Lock()
		d.imageCreated = true
		d.mu.Unlock()
		c.log("image: registered image %d %q from %s in datastore %d", id, d.RunID+"-image", source, dsID)
	}
	d.mu.Lock()
	d.imageID = id
	d.mu.Unlock()
	return c.waitImage(ctx, id, cfg.ImageTimeout)
}

// imageSource checks what a user gave as the image: a URL oned downloads, or a path
// on the front-end (made absolute; it is not checked here, since the front-end may be
// another machine).
func imageSource(s string) (string, error) {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
		return s, nil
	}
	if !strings.HasPrefix(s, "/") {
		return "", fmt.Errorf("-one.image %q is neither a URL, an absolute front-end path nor an image id", s)
	}
	return s, nil
}

func (c *Client) waitImage(ctx context.Context, id int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("image %d not READY within %s (-one.image-timeout)", id, timeout))
	defer cancel()
	began, last, lastLog := time.Now(), "", time.Now()
	for {
		var img *image.Image
		err := c.read(ctx, fmt.Sprintf("read image %d", id), func(ctx context.Context) (err error) {
			img, err = c.ctrl.Image(id).InfoContext(ctx, false)
			return err
		})
		if err != nil {
			return err
		}
		state := image.State(img.StateRaw)
		name := state.String()
		if name != last || time.Since(lastLog) > 30*time.Second {
			c.log("image %d: %s (%s, %d MB)", id, name, time.Since(began).Round(time.Second), img.Size)
			last, lastLog = name, time.Now()
		}
		switch state {
		case image.Ready, image.Used:
			return nil
		case image.Error:
			msg, _ := img.Template.GetStr("ERROR")
			return fmt.Errorf("image %d is in ERROR: %s; look at the datastore (oneimage show %d)", id, msg, id)
		case image.Locked, image.Init, image.Clone, image.LockUsed:
		default:
			return fmt.Errorf("image %d is %s, not usable for a VM; enable it or give another -one.image", id, name)
		}
		if err := sleep(ctx, c.Poll); err != nil {
			return err
		}
	}
}

// template creates the VM template: resources for the model, host-passthrough CPU, the
// image, a NIC, and the context one-apps reads (ONEAPP_* and the run's password).
func (c *Client) template(ctx context.Context, cfg Config, d *Deployment, netID int) error {
	imageID, _, _ := d.IDs()
	t := vm.NewTemplate()
	t.Add("NAME", d.RunID+"-template")
	t.CPU(float64(cfg.VCPU)).VCPU(cfg.VCPU).Memory(cfg.MemoryMB)
	t.AddVector("CPU_MODEL").AddPair("MODEL", "host-passthrough")
	t.AddVector("DISK").AddPair("IMAGE_ID", imageID)
	t.AddVector("NIC").AddPair("NETWORK_ID", netID)
	g := t.AddVector("GRAPHICS")
	g.AddPair("TYPE", "VNC")
	g.AddPair("LISTEN", "0.0.0.0")
	ctxVec := t.AddVector("CONTEXT")
	ctxVec.AddPair("NETWORK", "YES")
	ctxVec.AddPair("TOKEN", "YES")
	ctxVec.AddPair("REPORT_READY", "YES")
	if cfg.SSHPublicKey != "" {
		ctxVec.AddPair("SSH_PUBLIC_KEY", strings.TrimSpace(cfg.SSHPublicKey))
	}
	keys := make([]string, 0, len(cfg.Context))
	for k := range cfg.Context {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ctxVec.AddPair(k, cfg.Context[k])
	}
	ctxVec.AddPair(PasswordKey, d.Password)
	var id int
	d.allocating()
	err := c.create(ctx, "create the VM template", func(ctx context.Context) (err error) {
		id, err = c.ctrl.Templates().CreateContext(ctx, t.String())
		return err
	})
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.templateID = id
	d.mu.Unlock()
	c.log("template: created template %d %q (%d VCPU, %d MB, image %d, network %d)", id, d.RunID+"-template", cfg.VCPU, cfg.MemoryMB, imageID, netID)
	return nil
}

func (c *Client) instantiate(ctx context.Context, d *Deployment) error {
	_, templateID, _ := d.IDs()
	var id int
	d.allocating()
	err := c.create(ctx, "instantiate the template", func(ctx context.Context) (err error) {
		id, err = c.ctrl.Template(templateID).InstantiateContext(ctx, d.RunID+"-vm", false, "", false)
		return err
	})
	if err != nil && strings.Contains(err.Error(), "onegate endpoint was not defined") {
		// oned refuses TOKEN=YES without ONEGATE_ENDPOINT in oned.conf
		// (VirtualMachine::generate_token_context, src/vm/VirtualMachineContext.cc).
		return fmt.Errorf("%w; the appliance reports READY=YES and its endpoint through OneGate (CONTEXT TOKEN=YES): "+
			"set ONEGATE_ENDPOINT = \"http://FRONTEND:5030\" in /etc/one/oned.conf (an address the VMs' network reaches), "+
			"restart opennebula and start opennebula-gate", err)
	}
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.vmID = id
	d.mu.Unlock()
	c.log("vm: instantiated VM %d %q", id, d.RunID+"-vm")
	return nil
}

// vmStatus is what one read of the VM tells.
type vmStatus struct {
	state, lcm   int
	name         string // STATE or STATE/LCM_STATE
	err          string // USER_TEMPLATE/ERROR
	sched        string // USER_TEMPLATE/SCHED_MESSAGE: why the scheduler has not placed it
	onegate      string // CONTEXT/ONEGATE_ENDPOINT, where the appliance reports to
	ready        bool
	endpoint, ip string
}

func (c *Client) vmStatus(ctx context.Context, id int) (vmStatus, error) {
	var v *vm.VM
	err := c.read(ctx, fmt.Sprintf("read VM %d", id), func(ctx context.Context) (err error) {
		v, err = c.ctrl.VM(id).InfoContext(ctx, false)
		return err
	})
	if err != nil {
		return vmStatus{}, err
	}
	s := vmStatus{state: v.StateRaw, lcm: v.LCMStateRaw, name: stateName(v.StateRaw, v.LCMStateRaw)}
	s.err, _ = v.UserTemplate.GetStr("ERROR")
	s.sched, _ = v.UserTemplate.GetStr("SCHED_MESSAGE")
	s.onegate, _ = v.Template.GetCtx("ONEGATE_ENDPOINT")
	ready, _ := v.UserTemplate.GetStr("READY")
	s.ready = strings.EqualFold(ready, "YES")
	s.endpoint, _ = v.UserTemplate.GetStr(EndpointKey)
	s.ip = nicAddress(v)
	return s, nil
}

// nicAddress is the first NIC's address: IPv4, else its IPv6 (global, then the others),
// else what the CONTEXT says.
func nicAddress(v *vm.VM) string {
	if nics := v.Template.GetNICs(); len(nics) > 0 {
		for _, k := range []string{"IP", "IP6_GLOBAL", "IP6", "IP6_ULA"} {
			if a, _ := nics[0].Get(shared.NICKeys(k)); a != "" {
				return a
			}
		}
	}
	for _, k := range []string{"ETH0_IP", "ETH0_IP6"} {
		if a, _ := v.Template.GetCtx(keys.Context(k)); a != "" {
			return a
		}
	}
	return ""
}

// PublishedEndpoint reads the ONEAPP_COPILOT_API_ENDPOINT the appliance published. OneGate
// rewrites '[' and ']' in values (escape_attr, src/onegate/onegate-server.rb), breaking a
// bracketed IPv6 URL, so the appliance publishes the brackets percent-encoded
// (https://%5B2001:db8::1%5D); they are decoded here.
func PublishedEndpoint(published string) (string, error) {
	if published == "" {
		return "", fmt.Errorf("published no %s", EndpointKey)
	}
	s := strings.NewReplacer("%5B", "[", "%5b", "[", "%5D", "]", "%5d", "]").Replace(published)
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("published %s=%q, not an https://HOST[:PORT] URL", EndpointKey, published)
	}
	return "https://" + u.Host, nil
}

// stateName is STATE, or STATE/LCM_STATE while ACTIVE; numbers goca does not name stay
// numbers (oned has LCM states goca's table lacks).
func stateName(state, lcm int) string {
	s := vm.State(state).String()
	if vm.State(state) == vm.CloningFailure {
		s = "CLONING_FAILURE" // oned's name; goca's String() drops the underscore
	}
	if s == "" {
		s = strconv.Itoa(state)
	}
	if vm.State(state) != vm.Active {
		return s
	}
	l := vm.LCMState(lcm).String()
	if l == "" {
		l = strconv.Itoa(lcm)
	}
	return s + "/" + l
}

// failed tells why a VM can no longer come up, or "". USER_TEMPLATE/ERROR alone is
// not a failure: OpenNebula 7.0's scheduler writes it on a PENDING VM when one placement
// attempt fails and plans the VM again, and nothing clears it (src/schedm/PlanManager.cc).
func (s vmStatus) failed() string {
	var why string
	switch {
	case strings.HasSuffix(s.name, "_FAILURE"): // incl. CLONING_FAILURE
		why = fmt.Sprintf("VM entered %s", s.name)
	case vm.State(s.state) == vm.Hold:
		why = "VM is on HOLD, which this run never asks for (someone ran onevm hold?)"
	case vm.State(s.state) == vm.Done, vm.State(s.state) == vm.Poweroff, vm.State(s.state) == vm.Undeployed,
		vm.State(s.state) == vm.Stopped, vm.State(s.state) == vm.Suspended:
		why = fmt.Sprintf("VM left the boot path: it is %s", s.name)
	default:
		return ""
	}
	if s.err != "" {
		why = fmt.Sprintf("VM is %s with USER_TEMPLATE/ERROR: %s", s.name, s.err)
	}
	return why
}

// detail is what the scheduler and oned say about a VM still on its way, for progress.
func (s vmStatus) detail() string {
	var parts []string
	if s.sched != "" {
		parts = append(parts, "scheduler: "+s.sched)
	}
	if s.err != "" {
		parts = append(parts, "ERROR (oned retries; not fatal by itself): "+s.err)
	}
	return strings.Join(parts, "; ")
}

// waitRunning follows PENDING -> PROLOG -> BOOT -> RUNNING with a line per state.
func (c *Client) waitRunning(ctx context.Context, d *Deployment, timeout time.Duration) error {
	_, _, id := d.IDs()
	var last vmStatus
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errFunc(func() string {
		msg := fmt.Sprintf("VM %d not RUNNING within %s (-one.boot-timeout): it is %s; look at onevm show %d", id, timeout, last.name, id)
		if vm.State(last.state) == vm.Pending {
			msg += fmt.Sprintf(" (PENDING: no host took it; the VM asks for the VCPU and memory of -one.vcpu and -one.memory%s)", orNone("; scheduler: ", last.sched))
		}
		return msg
	}))
	defer cancel()
	return c.follow(ctx, d, id, func(s vmStatus) bool {
		last = s
		return vm.State(s.state) == vm.Active && vm.LCMState(s.lcm) == vm.Running
	})
}

// errFunc is an error whose text is made when it is read: a timeout's cause that names
// the last state seen.
type errFunc func() string

func (f errFunc) Error() string { return f() }

func onegateText(endpoint string) string {
	if endpoint == "" {
		return "the VM's CONTEXT has no ONEGATE_ENDPOINT"
	}
	return "CONTEXT/ONEGATE_ENDPOINT " + endpoint
}

// orNone is prefix+s, or "" when s is empty.
func orNone(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

// waitReady waits for READY=YES, which one-apps reports after the appliance's bootstrap
// succeeded (the model loaded and answered).
func (c *Client) waitReady(ctx context.Context, d *Deployment, timeout time.Duration) error {
	_, _, id := d.IDs()
	var last vmStatus
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errFunc(func() string {
		return fmt.Sprintf("VM %d is RUNNING but did not report READY=YES within %s (-one.ready-timeout). "+
			"The appliance reports READY=YES through OneGate once its bootstrap succeeded: check that OneGate (%s) is reachable "+
			"from the VM's network (on the VM: onegate vm show), then the appliance's report and log (/etc/one-appliance/config, "+
			"/var/log/one-appliance/, journalctl -u local-ai)", id, timeout, onegateText(last.onegate))
	}))
	defer cancel()
	c.log("vm %d: waiting up to %s for the appliance to report READY=YES", id, timeout)
	err := c.follow(ctx, d, id, func(s vmStatus) bool { last = s; return s.ready })
	if err != nil {
		return err
	}
	endpoint, err := PublishedEndpoint(last.endpoint)
	if err != nil {
		if last.ip == "" {
			return fmt.Errorf("VM %d is READY but %s and has no NIC address", id, err)
		}
		endpoint = "https://" + net.JoinHostPort(last.ip, "443")
		endpoint = strings.TrimSuffix(endpoint, ":443")
		c.log("vm %d: %s; using the NIC address: %s", id, err, endpoint)
	}
	d.mu.Lock()
	d.endpoint = endpoint
	d.mu.Unlock()
	c.log("vm %d: READY at %s", id, endpoint)
	return nil
}

// follow reads the VM until done says so, logging each new state, failing fast.
func (c *Client) follow(ctx context.Context, d *Deployment, id int, done func(vmStatus) bool) error {
	began := time.Now()
	for {
		s, err := c.vmStatus(ctx, id)
		if err != nil && ctx.Err() != nil {
			return context.Cause(ctx) // the wait's own reason, wherever its deadline struck
		}
		if err != nil {
			return err
		}
		key := s.name + "\n" + s.detail()
		d.mu.Lock()
		changed := key != d.lastState
		d.lastState = key
		d.mu.Unlock()
		if changed {
			c.log("vm %d: %s (%s)%s", id, s.name, time.Since(began).Round(time.Second), orNone(": ", s.detail()))
		}
		if why := s.failed(); why != "" {
			return fmt.Errorf("VM %d failed: %s; look at onevm show %d and the front-end's /var/log/one/%d.log", id, why, id, id)
		}
		if done(s) {
			return nil
		}
		if err := sleep(ctx, c.Poll); err != nil {
			return err
		}
	}
}

// sleep waits d or until ctx ends, returning its cause.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(d):
		return nil
	}
}

// KeepNote says how to reach and remove a kept deployment. The password goes to a file
// readable only by the user, never to the output.
func (d *Deployment) KeepNote(dir string) (string, error) {
	imageID, templateID, vmID := d.IDs()
	d.mu.Lock()
	created, password := d.imageCreated, d.Password // Reconfigure changes the password under mu
	d.mu.Unlock()
	path := filepath.Join(dir, d.RunID+".password")
	if err := os.WriteFile(path, []byte(password+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save the kept appliance's password: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "kept (-one.keep): VM %d, template %d", vmID, templateID)
	if created {
		fmt.Fprintf(&b, ", image %d", imageID)
	}
	fmt.Fprintf(&b, ", all named %s-*\n", d.RunID)
	fmt.Fprintf(&b, "  reach it:  %s, user copilot, password in %s\n", d.Endpoint(), path)
	fmt.Fprintf(&b, "  certify:   SLM_COPILOT_PASSWORD=\"$(cat %s)\" go test ./acceptance -endpoint=%s\n", path, d.Endpoint())
	fmt.Fprintf(&b, "  remove it: make one-clean (removes every %s* object), or onevm terminate --hard %d; onetemplate delete %d", NamePrefix, vmID, templateID)
	if created {
		fmt.Fprintf(&b, "; oneimage delete %d", imageID)
	}
	return b.String(), nil
}
