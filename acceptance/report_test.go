package acceptance

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
	"github.com/slm-copilot/slm-copilot/helpers/one"
	"github.com/slm-copilot/slm-copilot/helpers/report"
)

// The certification report (helpers/report). With -report DIR the run writes
// results.json, junit.xml, report.md and report.html into DIR and ends with a summary
// table; without it nothing is written, so the project's own runs of the suite leave no
// files behind. make certify always passes one.
var reportFlags = report.RegisterFlags(flag.CommandLine)

// rec records what the checks sent and received. It is always present, so checks record
// without asking whether a report was requested; TestMain replaces it, before any check
// runs, with one that knows the run and its secrets.
var rec = report.NewRecorder(report.Run{}, nil)

// certification is what the report says beyond the checks' own records: how the run
// reached the instance, the deploy steps, and the secrets no file may hold.
type certification struct {
	start   time.Time
	mode    report.Mode
	users   []string // HTTP Basic users the secrets may be paired with
	secrets []string // every password the run knows, in no form in any file
	begun   bool     // rec is this run's: the run reached (or tried to deploy) an instance
	stop    func()   // ends the capture of go test's output
	deploy  *oneRun
	kept    string // the note on the deploy's objects after teardown

	endMu sync.Mutex // end runs once: at TestMain's end, or from a handler that ends the run early
	ended bool
	exit  int // the exit code of a run stopped early (stopChecks), whoever ends it

	captureMu sync.Mutex // capture ends once, at the end or when the checks are stopped
}

func newCertification() *certification { return &certification{start: time.Now()} }

// wanted tells whether a report was asked for.
func (c *certification) wanted() bool { return reportFlags.Dir != "" }

// secret adds a password, paired with user in HTTP Basic, to those no file may hold.
func (c *certification) secret(user, password string) {
	if password == "" {
		return
	}
	c.users = append(c.users, user)
	c.secrets = append(c.secrets, password)
}

// begin starts this run's recorder once its password is known.
func (c *certification) begin(mode report.Mode, endpoint, engine, engineVersion string) error {
	var version, commit string
	if c.wanted() { // it may ask git
		version, commit = report.SuiteBuild()
	}
	rec = report.NewRecorder(report.Run{
		SuiteVersion: version, SuiteCommit: commit, Start: c.start,
		Mode: mode, Endpoint: endpoint, Model: *modelFlag,
		Engine: engine, EngineVersion: engineVersion, Settings: settings(),
	}, report.NewRedactor(c.users, c.secrets...))
	c.mode, c.begun = mode, true
	return reportFlags.Apply(rec)
}

// result records a verdict that is no test's (a deploy step, the preflight, the model
// calls).
func (c *certification) result(id string, v report.Verdict, d time.Duration, message string) {
	if c.begun {
		rec.Result(id, v, d, message)
	}
}

// deployed takes the deployment r (successful or not) into the report: its oned and
// objects, and the passwords it holds (the appliance's and the OpenNebula user's).
func (c *certification) deployed(r *oneRun) {
	c.deploy = r
	c.secret(*usernameFlag, r.d.Password)
	if session, _, err := one.ResolveAuth(*oneAuth); err == nil {
		user, password, _ := strings.Cut(session, ":")
		c.secret(user, password)
	}
}

// teardown records the end of the deployment: removed, kept, or not removed.
func (c *certification) teardown(code int, d time.Duration) {
	r := c.deploy
	if r == nil {
		return // stopped during the deploy: TestMain records the teardown when deployOne returns
	}
	switch {
	case *oneKeep && code == 0:
		c.kept = "kept (-one.keep)"
		c.result("Deploy/teardown", report.Skip, d, fmt.Sprintf("kept (-one.keep): run %s's objects are left for you to use and remove (make one-clean)", r.d.RunID))
	case code == 0:
		c.kept = "removed at teardown"
		c.result("Deploy/teardown", report.Pass, d, fmt.Sprintf("everything run %s created is removed", r.d.RunID))
	default:
		c.kept = "teardown failed: make one-clean removes it"
		c.result("Deploy/teardown", report.Fail, d, fmt.Sprintf("run %s was not torn down completely (the run's log says what is left): make one-clean removes its objects", r.d.RunID))
	}
}

// reconfigured records -one.reconfigure's outcome (code as reconfigureOne returns it), or
// that it did not run because a check failed.
func (c *certification) reconfigured(ran bool, code int, d time.Duration) {
	switch {
	case !ran:
		c.result("Deploy/reconfigure", report.Skip, 0, "not run: -one.reconfigure rotates the password only after every check passed")
	case code == 0:
		c.result("Deploy/reconfigure", report.Pass, d, "a new password through the VM's context and a reboot: the endpoint and the certificate kept, the new password accepted, the old one refused (Bearer and Basic)")
	default:
		c.result("Deploy/reconfigure", report.Fail, d, "the appliance did not apply its new context as it must: the run's log says which property failed (lines \"reconfigure: FAIL\")")
	}
}

// openNebula describes the deployment's oned and objects.
func (c *certification) openNebula() *report.OpenNebula {
	r := c.deploy
	on := &report.OpenNebula{Endpoint: r.c.Endpoint}
	imageID, templateID, vmID := r.d.IDs()
	created := "created by the run"
	if c.kept != "" {
		created += "; " + c.kept
	}
	if imageID >= 0 {
		if _, err := strconv.Atoi(*oneImage); err == nil {
			on.Objects = append(on.Objects, report.Object{Kind: "image", ID: imageID, Note: "existing image (-one.image), left in place"})
		} else {
			on.Objects = append(on.Objects, report.Object{Kind: "image", ID: imageID, Name: r.d.RunID + "-image", Note: created})
		}
	}
	if templateID >= 0 {
		on.Objects = append(on.Objects, report.Object{Kind: "template", ID: templateID, Name: r.d.RunID + "-template", Note: created})
	}
	if vmID >= 0 {
		on.Objects = append(on.Objects, report.Object{Kind: "vm", ID: vmID, Name: r.d.RunID + "-vm", Note: created})
	}
	return on
}

// observe records what the instance reveals of itself: the certificate, the TLS versions
// it accepts and, with the password, its engine. Best effort: it judges nothing (the
// checks do) and a failure leaves the field empty.
func (c *certification) observe() {
	if !c.wanted() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var leaf *x509.Certificate
	var versions []string
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13} {
		hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
		state, err := handshake(hctx, v)
		hcancel()
		if err != nil {
			continue
		}
		versions = append(versions, tls.VersionName(v))
		if len(state.PeerCertificates) > 0 {
			leaf = state.PeerCertificates[0]
		}
	}
	var engine, version string
	if c.mode != report.ModeEmbedded { // the embedded reference knows its own
		engine, version = probeEngine(ctx)
	}
	rec.UpdateRun(func(r *report.Run) {
		r.TLSVersions = versions
		if leaf != nil {
			r.Certificate = report.CertificateOf(leaf)
		}
		if engine != "" {
			r.Engine, r.EngineVersion = engine, version
		}
	})
}

// probeEngine asks, with the password, the routes where the engines the appliance may run
// name their version: LocalAI's GET /version, llama-server's GET /props (build_info). The
// front door passes both on to the engine once authenticated.
func probeEngine(ctx context.Context) (engine, version string) {
	hc := target.HTTPClient(nil)
	get := func(path string, v any) bool {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.URL(path), nil)
		if err != nil {
			return false
		}
		bearerAuth(req)
		resp, err := hc.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		return resp.StatusCode == http.StatusOK && ct == "application/json" &&
			json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v) == nil
	}
	var localAI struct {
		Version string `json:"version"`
	}
	if get("/version", &localAI) && localAI.Version != "" {
		return "LocalAI", localAI.Version
	}
	var props struct {
		BuildInfo string `json:"build_info"`
	}
	if get("/props", &props) && props.BuildInfo != "" {
		return "llama-server", props.BuildInfo
	}
	return "", ""
}

// capture makes go test's output the report's source of verdicts and messages (it
// turns verbose output on: passing tests print their verdict only then).
func (c *certification) capture() error {
	if !c.wanted() {
		return nil
	}
	stop, err := rec.CaptureOutput()
	if err != nil {
		return fmt.Errorf("-report: capture go test's output: %w", err)
	}
	c.stop = stop
	return nil
}

// uncapture ends capture.
func (c *certification) uncapture() {
	c.captureMu.Lock()
	defer c.captureMu.Unlock()
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
}

// end writes the report when one was asked for and the run reached an instance, prints
// the summary, and returns the run's exit code: a failed verdict, or a report that could
// not be written, fails a run that would otherwise pass.
func (c *certification) end(code int) int {
	c.endMu.Lock()
	defer c.endMu.Unlock()
	code = max(code, c.exit)
	if c.ended {
		return code
	}
	c.ended = true
	c.uncapture()
	if !c.wanted() || !c.begun {
		return code
	}
	if c.deploy != nil {
		// After -one.reconfigure the appliance has a new password: it is a secret too.
		c.secret(*usernameFlag, c.deploy.d.Password)
		on := c.openNebula()
		rec.UpdateRun(func(r *report.Run) { r.OpenNebula = on })
	}
	rec.UpdateRun(func(r *report.Run) { r.End = time.Now() })
	red := report.NewRedactor(c.users, c.secrets...)
	dir := reportFlags.ReportDir(c.start)
	res, err := rec.Results()
	if err == nil {
		err = report.Write(dir, res, red)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "acceptance: -report:", red.Redact(err.Error()))
		return max(code, 1)
	}
	var b bytes.Buffer
	report.WriteSummary(&b, res, dir)
	os.Stderr.WriteString(red.Redact(b.String()))
	if res.Verdict == report.Fail {
		code = max(code, 1)
	}
	return code
}

// stopChecks makes the checks' verdicts so far final, for a run that cannot reach its end
// (a signal, the -timeout near): what they do after (fail as a teardown cuts them off) is
// not theirs. The report says why, as a failed check; checks cut short say so; the run
// exits with code whoever ends it.
func (c *certification) stopChecks(code int, why string) {
	c.endMu.Lock()
	c.exit = code
	c.endMu.Unlock()
	c.uncapture()
	if c.begun {
		rec.Interrupt(why, time.Since(c.start))
	}
}

// stopped is the exit code stopChecks set, 0 while the run goes on.
func (c *certification) stopped() int {
	c.endMu.Lock()
	defer c.endMu.Unlock()
	return c.exit
}

// interrupt stops the checks and ends the run at once, for runs with nothing to tear
// down first. It returns the exit code, as end does.
func (c *certification) interrupt(code int, why string) int {
	c.stopChecks(code, why)
	return c.end(code)
}

// settings are the flags a reader needs to reproduce the run: those given (never a
// credential) and the bounds every run has.
func settings() []report.Setting {
	secret := map[string]bool{"password": true, "one.auth": true, "report": true}
	testFlags := map[string]bool{"test.run": true, "test.skip": true, "test.timeout": true, "test.count": true, "test.short": true, "test.parallel": true}
	var out []report.Setting
	seen := map[string]bool{}
	flag.Visit(func(f *flag.Flag) {
		if secret[f.Name] || (strings.HasPrefix(f.Name, "test.") && !testFlags[f.Name]) {
			return
		}
		seen[f.Name] = true
		out = append(out, report.Setting{Name: "-" + f.Name, Value: f.Value.String()})
	})
	for _, name := range []string{"request-timeout", "context-size", "username"} {
		if !seen[name] {
			out = append(out, report.Setting{Name: "-" + name, Value: flag.Lookup(name).Value.String()})
		}
	}
	return out
}

// recordStream attaches a streamed response to t's record: its evidence with the event
// timeline and, when measured, its numbers for the run's metrics (TTFT, ITL, tokens/s)
// and SLO gates. Measure only streams that stand for the instance's interactive service:
// not a prompt sized to fill or overflow the context, not one abandoned on purpose.
func recordStream(t *testing.T, request string, c *copilot.Capture, measured bool) {
	t.Helper()
	switch {
	case c == nil:
	case measured && c.Status == http.StatusOK:
		rec.Stream(t.Name(), request, c)
	default:
		rec.Evidence(t.Name(), report.FromCapture(request, c))
	}
}

// recordCapture attaches a response recorded by copilot.Tap (c), or the error that left
// none, to t's record.
func recordCapture(t *testing.T, request string, c *copilot.Capture, err error) {
	t.Helper()
	switch {
	case c != nil:
		rec.Evidence(t.Name(), report.FromCapture(request, c))
	case err != nil:
		recordNoResponse(t, request, err)
	}
}

// requestLine is how the report names a request to the endpoint: "POST https://host/path".
func requestLine(method, path string) string { return method + " " + target.URL(path) }

// recordNoResponse attaches a request that got no response, and why, to t's record.
func recordNoResponse(t *testing.T, request string, err error) {
	t.Helper()
	rec.Evidence(t.Name(), report.Evidence{Request: request, Note: "no response: " + redactErr(err)})
}
