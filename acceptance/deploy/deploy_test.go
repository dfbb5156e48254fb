// Package deploy tests the acceptance suite's deploy mode end to end: the suite's test
// binary, run as a user runs it with -one.* flags, against the oned simulator (with the
// real goca client on one side and the reference appliance booted as the simulated VM's
// guest on the other), through a full lifecycle, each injected failure, Ctrl-C mid-boot,
// the test timeout, and -one.keep followed by -one.clean.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/fixtures/oned/simulator"
	"github.com/slm-copilot/slm-copilot/helpers/reference"
	"github.com/slm-copilot/slm-copilot/helpers/report"
)

// suiteBinary is the acceptance suite compiled once by TestMain.
var suiteBinary string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "slm-copilot-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(dir)
	suiteBinary = filepath.Join(dir, "acceptance.test")
	cmd := exec.Command("go", "test", "-c", "-o", suiteBinary, "./acceptance")
	cmd.Dir = moduleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build the acceptance suite: %v\n%s", err, out)
		return 2
	}
	return m.Run()
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// requireRoot skips outside root: simulated VMs serve on ports 443 and 80 of their
// own loopback address, as a VM does, and the redirect check expects port 80.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("deploy-mode tests need root: simulated VMs listen on ports 443 and 80 like a VM (CI runs as root)")
	}
}

// sim is a simulator whose guests' passwords are recorded, to prove none is printed.
type sim struct {
	*simulator.Oned
	mu        sync.Mutex
	passwords []string
	log       bytes.Buffer
}

func startSim(t *testing.T, opts simulator.Options) *sim {
	t.Helper()
	return startTamperedSim(t, opts, nil)
}

// startTamperedSim is startSim whose guests' rendered files tamper edits.
func startTamperedSim(t *testing.T, opts simulator.Options, tamper func(*reference.Files) error) *sim {
	t.Helper()
	requireRoot(t)
	s := &sim{}
	opts.Log = writerFunc(func(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.log.Write(p) })
	opts.Boot = func(ctx context.Context, spec simulator.GuestSpec) (string, simulator.Guest, error) {
		s.mu.Lock()
		s.passwords = append(s.passwords, spec.Context["ONEAPP_COPILOT_PASSWORD"])
		s.mu.Unlock()
		return simulator.BootReferenceWith(tamper)(ctx, spec)
	}
	var err error
	s.Oned, err = simulator.Start("127.0.0.1:0", opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		s.Close()
		if t.Failed() {
			s.mu.Lock()
			t.Logf("simulator log:\n%s", s.log.String())
			s.mu.Unlock()
		}
	})
	return s
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// suite is one run of the acceptance binary.
type suite struct {
	cmd    *exec.Cmd
	out    *syncBuffer
	code   int
	output string
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// deployArgs are the -one.* flags for s, with a throw-away image file.
func deployArgs(t *testing.T, s *sim, extra ...string) []string {
	t.Helper()
	image := filepath.Join(t.TempDir(), "slm-copilot.qcow2")
	require.NoError(t, os.WriteFile(image, []byte("stand-in disk"), 0o600))
	return append([]string{"-test.v", "-test.timeout=10m",
		"-one.endpoint=" + s.Endpoint(), "-one.auth=" + simulator.DefaultAuth,
		"-one.image=" + image, "-one.network=loopback", "-one.poll=100ms"}, extra...)
}

// startSuite starts the acceptance binary the way `go test ./acceptance` runs it.
func startSuite(t *testing.T, args ...string) *suite {
	t.Helper()
	r := &suite{out: &syncBuffer{}}
	r.cmd = exec.Command(suiteBinary, args...)
	r.cmd.Dir = filepath.Join(moduleRoot(), "acceptance")
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	require.NoError(t, r.cmd.Start())
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			r.cmd.Wait()
		}
	})
	return r
}

// wait waits for the run to end (bounded) and records its exit code and output.
func (r *suite) wait(t *testing.T) *suite {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		r.cmd.Process.Kill()
		<-done
		t.Fatalf("the acceptance suite did not finish within 5 minutes:\n%s", r.out.String())
	}
	r.code, r.output = r.cmd.ProcessState.ExitCode(), r.out.String()
	return r
}

func runSuite(t *testing.T, args ...string) *suite {
	t.Helper()
	return startSuite(t, args...).wait(t)
}

var resultLine = regexp.MustCompile(`(?m)^--- (PASS|FAIL|SKIP): (Test\w+)`)

// results maps each top-level check to PASS, FAIL or SKIP.
func (r *suite) results() map[string]string {
	out := map[string]string{}
	for _, m := range resultLine.FindAllStringSubmatch(r.output, -1) {
		out[m[2]] = m[1]
	}
	return out
}

// assertNothingLeft fails if the simulator still holds an image, template or live VM.
func assertNothingLeft(t *testing.T, s *sim) {
	t.Helper()
	assert.Empty(t, s.Inventory(), "the run left objects in oned")
}

// assertNoPassword fails if any appliance password the simulator's guests got was
// printed; the run must have booted a guest, or there is nothing to look for.
func assertNoPassword(t *testing.T, s *sim, output string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NotEmpty(t, s.passwords, "no guest booted: no password to look for")
	for _, pw := range s.passwords {
		require.NotEmpty(t, pw, "the VM's CONTEXT had no password")
		assert.NotContains(t, output, pw, "the run printed the appliance's password")
	}
}

// checks lists the suite's top-level checks.
func checks(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command(suiteBinary, "-test.list", ".").Output()
	require.NoError(t, err)
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "Test") {
			names = append(names, sc.Text())
		}
	}
	require.NotEmpty(t, names)
	return names
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	s := startSim(t, simulator.Options{})
	r := runSuite(t, deployArgs(t, s, "-one.context=ONEAPP_COPILOT_CONTEXT_SIZE=16384")...)
	require.Equal(t, 0, r.code, "deploy, certify and teardown through the simulator must pass:\n%s", r.output)
	results := r.results()
	for _, name := range checks(t) {
		assert.Equal(t, "PASS", results[name], "%s against the deployed VM", name)
	}
	for _, line := range []string{"oned 6.10.0-simulator", "image 0: READY", "vm 0: ACTIVE/RUNNING", "READY at https://", "teardown complete"} {
		assert.Contains(t, r.output, line)
	}
	assertNothingLeft(t, s)
	assertNoPassword(t, s, r.output)
}

func TestInjectedFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		opts   simulator.Options
		args   []string
		phrase []string // the cause, named
		boots  bool     // a guest got the password (so it can be looked for)
	}{
		{name: "authentication", args: []string{"-one.auth=oneadmin:wrong"},
			phrase: []string{`rejected the credentials of user "oneadmin"`, "created nothing"}},
		{name: "image_error", opts: simulator.Options{Faults: simulator.Faults{ImageError: "No space left on device"}},
			phrase: []string{"image 0 is in ERROR", "No space left on device"}},
		{name: "boot_failure", opts: simulator.Options{Faults: simulator.Faults{BootFailure: true}},
			phrase: []string{"VM 0 failed: VM is ACTIVE/BOOT_FAILURE with USER_TEMPLATE/ERROR"}},
		{name: "never_ready", opts: simulator.Options{Faults: simulator.Faults{NeverReady: true}}, args: []string{"-one.ready-timeout=3s"},
			phrase: []string{"did not report READY=YES within 3s"}, boots: true},
		{name: "oned_unreachable", opts: simulator.Options{Faults: simulator.Faults{Outage: 6 * time.Second}}, args: []string{"-one.unreachable=1s"},
			phrase: []string{"unreachable for", "connection refused"}, boots: true},
		{name: "timeout_near", opts: simulator.Options{Faults: simulator.Faults{NeverReady: true}}, args: []string{"-test.timeout=60s"},
			phrase: []string{"the test -timeout is near"}, boots: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startSim(t, tt.opts)
			r := runSuite(t, deployArgs(t, s, tt.args...)...)
			assert.Equal(t, 2, r.code, "a failed deploy exits 2 (no check ran)")
			for _, p := range tt.phrase {
				assert.Contains(t, r.output, p)
			}
			assert.Empty(t, r.results(), "no check runs after a failed deploy")
			if tt.name != "authentication" {
				assert.Contains(t, r.output, "teardown complete")
			}
			assertNothingLeft(t, s)
			if tt.boots {
				assertNoPassword(t, s, r.output)
			}
		})
	}
}

func TestInterruptMidBoot(t *testing.T) {
	t.Parallel()
	s := startSim(t, simulator.Options{StepTime: 3 * time.Second})
	r := startSuite(t, deployArgs(t, s)...)
	waitForVM(t, s, r, "ACTIVE/BOOT")
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGINT))
	r.wait(t)
	assert.Equal(t, 130, r.code, "an interrupted run exits 130:\n%s", r.output)
	assert.Contains(t, r.output, "interrupted; tearing down")
	assert.Contains(t, r.output, "teardown complete")
	assertNothingLeft(t, s)
}

func TestKeepThenClean(t *testing.T) {
	t.Parallel()
	s := startSim(t, simulator.Options{})
	r := runSuite(t, deployArgs(t, s, "-one.keep", "-test.run=TestHealthEndpoints")...)
	require.Equal(t, 0, r.code, r.output)
	assert.Contains(t, r.output, "kept (-one.keep)")
	assert.NotContains(t, r.output, "teardown of run")
	require.Len(t, s.Inventory(), 3, "-one.keep leaves the image, the template and the VM")

	m := regexp.MustCompile(`password in (\S+\.password)`).FindStringSubmatch(r.output)
	require.Len(t, m, 2, "the note names the password file:\n%s", r.output)
	t.Cleanup(func() { os.Remove(m[1]) })
	fi, err := os.Stat(m[1])
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the password file is private")
	pw, err := os.ReadFile(m[1])
	require.NoError(t, err)
	s.mu.Lock()
	assert.Equal(t, s.passwords[0]+"\n", string(pw))
	s.mu.Unlock()
	assertNoPassword(t, s, r.output)

	// The age guard: a fresh run's objects are someone's run in progress.
	cleanArgs := []string{"-test.run=^$", "-one.clean", "-one.endpoint=" + s.Endpoint(), "-one.auth=" + simulator.DefaultAuth, "-one.poll=100ms"}
	guarded := runSuite(t, cleanArgs...)
	require.Equal(t, 0, guarded.code, guarded.output)
	assert.Contains(t, guarded.output, "younger than 6h0m0s (a run in progress?)")
	require.Len(t, s.Inventory(), 3, "one-clean's age guard leaves a run younger than 6h alone")

	clean := runSuite(t, append(cleanArgs, "-one.clean-age=0")...)
	require.Equal(t, 0, clean.code, clean.output)
	assert.Contains(t, clean.output, "nothing of yours named slm-copilot-acc-* is left")
	assertNothingLeft(t, s)
}

// Mistakes in the deploy flags stop the run before anything is created, saying what to fix.
func TestDeployFlagErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"image_missing", []string{"-one.network=public"}, nil, "deploy mode needs -one.image"},
		{"network_missing", []string{"-one.image=/x.qcow2"}, nil, "deploy mode needs -one.network"},
		{"endpoint_and_deploy", []string{"-endpoint=https://10.0.0.5", "-one.image=/x.qcow2", "-one.network=n"}, nil, "exclude each other"},
		{"password_in_context", []string{"-one.context=ONEAPP_COPILOT_PASSWORD=mine"}, nil, "generated for each run"},
		{"auth_file_missing", []string{"-one.image=/x.qcow2", "-one.network=n"}, []string{"ONE_AUTH=/nonexistent/one_auth"}, "/nonexistent/one_auth does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &suite{out: &syncBuffer{}}
			r.cmd = exec.Command(suiteBinary, append([]string{"-one.endpoint=http://127.0.0.1:9/RPC2"}, tt.args...)...)
			r.cmd.Env = append(os.Environ(), tt.env...)
			r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
			require.NoError(t, r.cmd.Start())
			r.wait(t)
			assert.Equal(t, 2, r.code, r.output)
			assert.Contains(t, r.output, tt.want)
			assert.Empty(t, r.results(), "no check runs")
		})
	}
}

// A failing check still tears the deployment down, and the run fails.
func TestFailedCheckStillTearsDown(t *testing.T) {
	t.Parallel()
	s := startSim(t, simulator.Options{})
	r := runSuite(t, deployArgs(t, s, "-model=another-model", "-test.run=TestModelListed")...)
	assert.Equal(t, 1, r.code, r.output)
	assert.Equal(t, "FAIL", r.results()["TestModelListed"], "the appliance serves devstral-small-2, not another-model")
	assert.Contains(t, r.output, "teardown complete")
	assertNothingLeft(t, s)
	assertNoPassword(t, s, r.output)
}

// hungEngine points a guest's front door at an engine that accepts connections and never
// answers, so the checks that reach the engine hold until -request-timeout: a run that is
// reliably in the middle of its checks.
func hungEngine(t *testing.T) func(*reference.Files) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go io.Copy(io.Discard, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return func(f *reference.Files) error {
		b, err := os.ReadFile(f.Site)
		if err != nil {
			return err
		}
		upstream := regexp.MustCompile(`(upstream slm_copilot_engine \{\s*server )[^;]+;`)
		if n := len(upstream.FindAllIndex(b, -1)); n != 1 {
			return fmt.Errorf("%s: engine upstream found %d times, want 1", f.Site, n)
		}
		return os.WriteFile(f.Site, upstream.ReplaceAll(b, []byte("${1}"+l.Addr().String()+";")), 0o600)
	}
}

// waitForOutput waits until the run printed phrase.
func waitForOutput(t *testing.T, r *suite, phrase string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(r.out.String(), phrase) },
		2*time.Minute, 50*time.Millisecond, "the run never printed %q:\n%s", phrase, r.out.String())
}

// Ctrl-C while the checks run (they hang on the engine) tears down and exits 130.
func TestInterruptDuringChecks(t *testing.T) {
	t.Parallel()
	s := startTamperedSim(t, simulator.Options{}, hungEngine(t))
	dir := filepath.Join(t.TempDir(), "report")
	r := startSuite(t, deployArgs(t, s, "-request-timeout=3m", "-report="+dir)...)
	waitForOutput(t, r, "=== RUN   Test")
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGINT))
	r.wait(t)
	assert.Equal(t, 130, r.code, r.output)
	assert.Contains(t, r.output, "interrupted; tearing down")
	assert.Contains(t, r.output, "teardown complete")
	assertNothingLeft(t, s)
	assertNoPassword(t, s, r.output)
	assertStoppedReport(t, s, dir, "interrupt: the run was stopped before its end", true)
}

// Checks that run into -timeout give way to teardown before go test would kill the binary.
func TestTimeoutDuringChecks(t *testing.T) {
	t.Parallel()
	s := startTamperedSim(t, simulator.Options{}, hungEngine(t))
	began := time.Now()
	dir := filepath.Join(t.TempDir(), "report")
	r := runSuite(t, deployArgs(t, s, "-request-timeout=3m", "-test.timeout=90s", "-report="+dir)...)
	assert.Equal(t, 1, r.code, r.output)
	assert.Contains(t, r.output, "the test -timeout is near: tearing down")
	assert.Contains(t, r.output, "teardown complete")
	assert.NotContains(t, r.output, "panic: test timed out", "teardown comes before go test's own timeout")
	assert.Less(t, time.Since(began), 90*time.Second, "the run ended before its -timeout")
	assertNothingLeft(t, s)
	assertStoppedReport(t, s, dir, "the test -timeout was near", false)
}

// assertStoppedReport checks the report of a deploy run stopped early: the deploy and the
// teardown passed, a failed Suite/interrupted says why, no check failed against the VM
// torn down after the stop, one running at it (when checking wants that: the hung engine
// may hold the run in its preflight instead) says it was cut, and no file holds the
// guest's password.
func assertStoppedReport(t *testing.T, s *sim, dir, why string, checking bool) {
	t.Helper()
	s.mu.Lock()
	passwords := append([]string(nil), s.passwords...)
	s.mu.Unlock()
	for _, pw := range passwords {
		assertNotInReport(t, dir, pw)
	}
	res, err := report.ReadResults(filepath.Join(dir, report.ResultsFile))
	require.NoError(t, err)
	assert.Equal(t, report.Fail, res.Verdict)
	checks := map[string]report.Check{}
	cut := 0
	for _, c := range res.Checks {
		checks[c.ID] = c
		if strings.Contains(c.Message, "not finished: "+why) {
			cut++
		}
		if strings.HasPrefix(c.ID, "Test") {
			assert.NotContains(t, c.Message, "connection refused", "%s ran against the VM torn down after the stop", c.ID)
		}
	}
	assert.Equal(t, report.Pass, checks["Deploy/deploy"].Verdict, checks["Deploy/deploy"].Message)
	assert.Equal(t, report.Pass, checks["Deploy/teardown"].Verdict, checks["Deploy/teardown"].Message)
	assert.Equal(t, report.Fail, checks[report.InterruptedID].Verdict)
	assert.Contains(t, checks[report.InterruptedID].Message, why)
	if checking {
		assert.Positive(t, cut, "no check says it was cut short")
	}
}
