package acceptance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/one"
)

// Deploy mode: with -one.* flags the suite deploys the appliance to OpenNebula first,
// certifies the VM, and tears everything down (see helpers/one).
var (
	oneEndpoint     = flag.String("one.endpoint", "", "deploy mode: oned's XML-RPC URL (default $ONE_XMLRPC, else "+one.DefaultEndpoint+")")
	oneAuth         = flag.String("one.auth", "", "deploy mode: user:password (default: the file named by $ONE_AUTH, else ~/.one/one_auth)")
	oneImage        = flag.String("one.image", "", "deploy mode: the appliance's QCOW2 as a URL or front-end path to register, or an existing image id")
	oneDatastore    = flag.String("one.datastore", "default", "deploy mode: image datastore, name or id")
	oneNetwork      = flag.String("one.network", "", "deploy mode: virtual network for the VM's NIC, name or id")
	oneVCPU         = flag.Int("one.vcpu", one.DefaultVCPU, "deploy mode: VCPUs of the VM")
	oneMemory       = flag.Int("one.memory", one.DefaultMemoryMB, "deploy mode: memory of the VM in MB")
	oneSSHKey       = flag.String("one.ssh-key", "", "deploy mode: public key file to put in the VM's context (SSH_PUBLIC_KEY)")
	oneImageTimeout = flag.Duration("one.image-timeout", one.DefaultImageTimeout, "deploy mode: how long the image may stay LOCKED")
	oneBootTimeout  = flag.Duration("one.boot-timeout", one.DefaultBootTimeout, "deploy mode: how long until the VM is RUNNING")
	oneReadyTimeout = flag.Duration("one.ready-timeout", one.DefaultReadyTimeout, "deploy mode: how long until the appliance reports READY=YES (the model loads)")
	oneUnreachable  = flag.Duration("one.unreachable", 2*time.Minute, "deploy mode: how long oned may be unreachable before the run gives up")
	onePoll         = flag.Duration("one.poll", 2*time.Second, "deploy mode: interval between reads of the image's and VM's state")
	oneKeep         = flag.Bool("one.keep", false, "deploy mode: leave the VM, template and image, and print how to reach and remove them")
	oneClean        = flag.Bool("one.clean", false, "remove your objects earlier runs left (named "+one.NamePrefix+"*, older than -one.clean-age) and exit; `make one-clean`")
	oneCleanAge     = flag.Duration("one.clean-age", one.DefaultCleanAge, "-one.clean: skip objects younger than this (a run in progress); 0 removes all")
	oneContext      = contextFlag{}
)

func init() {
	flag.Var(oneContext, "one.context", "deploy mode: KEY=VALUE for the VM's context, e.g. ONEAPP_COPILOT_CONTEXT_SIZE=65536 (repeatable; the password is generated per run)")
}

// contextFlag collects repeated KEY=VALUE flags.
type contextFlag map[string]string

// contextSizeFromDeploy makes the context the run gave the VM
// (-one.context=ONEAPP_COPILOT_CONTEXT_SIZE=N) the one the checks hold it to, unless
// -context-size says otherwise.
func contextSizeFromDeploy() error {
	v, ok := oneContext["ONEAPP_COPILOT_CONTEXT_SIZE"]
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "context-size" })
	if !ok || explicit {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("-one.context ONEAPP_COPILOT_CONTEXT_SIZE=%q: not a number of tokens", v)
	}
	*contextSizeFlag = n
	return nil
}

func (c contextFlag) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func (c contextFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" || strings.ToUpper(k) != k {
		return fmt.Errorf("want KEY=VALUE with an upper-case key, got %q", s)
	}
	if k == one.PasswordKey {
		return fmt.Errorf("%s is generated for each run, so it is never reused or shown", k)
	}
	c[k] = v
	return nil
}

// deployMode tells whether any -one.* flag was given.
func deployMode() bool {
	on := false
	flag.Visit(func(f *flag.Flag) { on = on || strings.HasPrefix(f.Name, "one.") })
	return on
}

func logOne(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "one: %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func oneClient() (*one.Client, error) {
	session, source, err := one.ResolveAuth(*oneAuth)
	if err != nil {
		return nil, err
	}
	c := one.NewClient(one.ResolveEndpoint(*oneEndpoint), session, logOne)
	c.Unreachable, c.Poll = *oneUnreachable, *onePoll
	logOne("oned %s, user %q from %s", c.Endpoint, one.User(session), source)
	return c, nil
}

// cleanOne is -one.clean.
func cleanOne() int {
	c, err := oneClient()
	if err != nil {
		fmt.Fprintln(os.Stderr, "acceptance:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if err := c.Clean(ctx, *oneCleanAge); err != nil {
		fmt.Fprintln(os.Stderr, "acceptance:", err)
		return 1
	}
	if *oneCleanAge > 0 {
		logOne("nothing of yours named %s* older than %s is left", one.NamePrefix, *oneCleanAge)
	} else {
		logOne("nothing of yours named %s* is left", one.NamePrefix)
	}
	return 0
}

// oneRun is a deployment in progress and the one teardown it gets, whichever of the
// normal end, a signal or the approaching test timeout comes first.
type oneRun struct {
	c        *one.Client
	d        *one.Deployment
	deadline time.Time // when go test will kill the binary
	stopAt   time.Time // when the deploy or the checks give way to teardown
	once     sync.Once
	code     int
}

// deployOne deploys and returns the run; the caller must call finish. Ctrl-C or the
// approaching -timeout tears down and exits. A failed deploy returns its run too, torn
// down already, so the report can name what it created.
func deployOne() (*oneRun, error) {
	if *endpointFlag != "" {
		return nil, fmt.Errorf("-endpoint and -one.* exclude each other: -endpoint certifies a running instance, -one.* deploys one")
	}
	var missing []string
	if *oneImage == "" {
		missing = append(missing, "-one.image")
	}
	if *oneNetwork == "" {
		missing = append(missing, "-one.network")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("deploy mode needs %s (see README, \"Deploy mode\")", strings.Join(missing, " and "))
	}
	cfg := one.Config{
		Image: *oneImage, Datastore: *oneDatastore, Network: *oneNetwork,
		VCPU: *oneVCPU, MemoryMB: *oneMemory, Context: oneContext,
		ImageTimeout: *oneImageTimeout, BootTimeout: *oneBootTimeout, ReadyTimeout: *oneReadyTimeout,
	}
	if *oneSSHKey != "" {
		key, err := os.ReadFile(*oneSSHKey)
		if err != nil {
			return nil, fmt.Errorf("-one.ssh-key: %w", err)
		}
		cfg.SSHPublicKey = string(key)
	}
	c, err := oneClient()
	if err != nil {
		return nil, err
	}
	kill, total := killTime()
	r := &oneRun{c: c, d: one.NewDeployment(), deadline: kill, stopAt: kill.Add(-teardownMargin(total))}
	if *oneKeep {
		logOne("run %s (-one.keep: kept at the end, not torn down)", r.d.RunID)
	} else {
		logOne("run %s (torn down at the end)", r.d.RunID)
	}

	timed, cancelTimed := context.WithDeadlineCause(context.Background(), r.stopAt,
		fmt.Errorf("the test -timeout is near: stopped to leave time for teardown (raise -timeout; deploy mode wants e.g. -timeout 3h)"))
	defer cancelTimed()
	ctx, cancel := context.WithCancelCause(timed)
	defer cancel(nil)
	deployed := make(chan struct{})
	go r.onSignal(cancel, deployed)
	err = c.Deploy(ctx, cfg, r.d)
	close(deployed)
	if err != nil {
		r.finish()
		return r, fmt.Errorf("deploy: %w", err)
	}
	go r.onDeadline()
	return r, nil
}

// killTime is when go test's -timeout (total) ends this binary: it panics then, skipping
// deferred teardown. Without a timeout it is far away.
func killTime() (time.Time, time.Duration) {
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, ok := f.Value.(flag.Getter).Get().(time.Duration); ok && d > 0 {
			return processStart.Add(d), d
		}
	}
	const forever = 365 * 24 * time.Hour
	return processStart.Add(forever), forever
}

var processStart = time.Now()

// teardownMargin is what is kept free for teardown at the end of a -timeout of total.
func teardownMargin(total time.Duration) time.Duration {
	return min(max(total/10, 45*time.Second), 5*time.Minute)
}

// errInterrupted ends a deploy stopped by Ctrl-C or SIGTERM.
var errInterrupted = errors.New("interrupted")

// onSignal tears down on Ctrl-C or SIGTERM: it stops the deploy, lets it return (so no
// allocation is in flight), removes everything and exits. A second signal exits at once.
func (r *oneRun) onSignal(cancel context.CancelCauseFunc, deployed <-chan struct{}) {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	s := <-sig
	logOne("%v: interrupted; tearing down run %s", s, r.d.RunID)
	cancel(errInterrupted)
	go func() {
		<-sig
		logOne("interrupted again: exiting without finishing teardown; `make one-clean` removes what is left of %s", r.d.RunID)
		os.Exit(130)
	}()
	select {
	case <-deployed:
	case <-time.After(30 * time.Second):
	}
	cert.stopChecks(130, fmt.Sprintf("%v: the run was stopped before its end, and run %s torn down", s, r.d.RunID))
	start := time.Now()
	cert.teardown(r.finish(), time.Since(start))
	os.Exit(cert.end(130))
}

// onDeadline tears down when the checks run into the test timeout (the deploy itself
// stops at the same point through its context).
func (r *oneRun) onDeadline() {
	time.Sleep(time.Until(r.stopAt))
	logOne("the test -timeout is near: tearing down run %s before go test kills this binary", r.d.RunID)
	cert.stopChecks(1, fmt.Sprintf("the test -timeout was near: the checks were stopped and run %s torn down before go test would kill the binary; rerun with a longer -timeout (make certify-one sizes it)", r.d.RunID))
	start := time.Now()
	cert.teardown(r.finish(), time.Since(start))
	os.Exit(cert.end(1))
}

// finish tears down (or keeps, with -one.keep) exactly once.
func (r *oneRun) finish() int {
	r.once.Do(func() {
		if *oneKeep {
			note, err := r.d.KeepNote(os.TempDir())
			if err != nil {
				logOne("%v", err)
				r.code = 1
				return
			}
			logOne("%s", note)
			return
		}
		deadline := r.deadline.Add(-5 * time.Second)
		if limit := time.Now().Add(15 * time.Minute); deadline.After(limit) {
			deadline = limit
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		logOne("teardown of run %s", r.d.RunID)
		if err := r.c.Teardown(ctx, r.d); err != nil {
			logOne("%v", err)
			r.code = 1
			return
		}
		logOne("teardown complete: nothing of run %s is left", r.d.RunID)
	})
	return r.code
}
