// Package acceptance certifies a running SLM-Copilot instance from the outside: TLS,
// authentication, health, model listing, chat and SSE streaming, CORS and request limits.
//
//	go test ./acceptance -endpoint=https://VM -password=PW
//
// With no -endpoint it starts the embedded reference appliance (helpers/reference) and
// certifies that. Every check is a top-level test; independent checks run in parallel.
package acceptance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
	"github.com/slm-copilot/slm-copilot/helpers/reference"
	"github.com/slm-copilot/slm-copilot/helpers/report"
)

// PasswordEnv is read when -password is not given, so the password need not appear in
// the process list or shell history.
const PasswordEnv = "SLM_COPILOT_PASSWORD"

var (
	endpointFlag     = flag.String("endpoint", "", "https URL of the instance; empty: start the embedded reference appliance")
	passwordFlag     = flag.String("password", "", "the instance's password (default $"+PasswordEnv+"); without -endpoint the embedded reference's, random if none")
	usernameFlag     = flag.String("username", reference.Username, "HTTP Basic user")
	modelFlag        = flag.String("model", reference.DefaultModel, "model id the instance must serve")
	caCertFlag       = flag.String("ca-cert", "", "PEM file to verify the certificate chain against; empty: accept and inspect a self-signed certificate")
	httpEndpointFlag = flag.String("http-endpoint", "", "where plain HTTP must redirect to HTTPS (default http://<endpoint host>)")
	referenceEngine  = flag.String("reference-engine", string(reference.EngineLlamaServer), "without -endpoint: the reference appliance's engine, llama-server or localai (a relay answering as LocalAI v4.9.0)")
	requestTimeout   = flag.Duration("request-timeout", 5*time.Minute, "deadline of each request; a real 24B model on CPU needs minutes for a cold first answer")
	contextSizeFlag  = flag.Int("context-size", 32768, "context window in tokens the instance must serve to one request: its ONEAPP_COPILOT_CONTEXT_SIZE (the appliance's default is 32768)")
)

// target is the instance under certification, set up by TestMain.
var target *copilot.Target

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

// cert is this run's certification: TestMain's, and that of the handlers that end the
// binary early (a signal, the -timeout near), which skip TestMain's deferred calls.
var cert = newCertification()

func run(m *testing.M) (code int) {
	if err := reportFlags.Check(); err != nil {
		fmt.Fprintln(os.Stderr, "acceptance:", err)
		return 2
	}
	// Registered first, so it runs last: after the teardown, which the report records.
	defer func() { code = cert.end(code) }()
	endpoint, password, caCert := *endpointFlag, *passwordFlag, *caCertFlag
	if password == "" {
		password = os.Getenv(PasswordEnv)
	}
	var deployed *oneRun // -one.reconfigure acts on it after the checks
	var beginErr error   // cert.begin's: -slo or -baseline not applied
	switch {
	case *oneClean:
		return cleanOne()
	case deployMode():
		// Not refused for a short -timeout: deploy mode tears down before it (make
		// certify-one sizes it with go run ./acceptance/timeout -deploy).
		start := time.Now()
		r, err := deployOne()
		if r != nil {
			cert.deployed(r)
			beginErr = cert.begin(report.ModeDeploy, r.d.Endpoint(), "", "")
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "acceptance:", err)
			if r != nil {
				cert.result("Deploy/deploy", report.Fail, time.Since(start), err.Error())
				cert.teardown(r.finish(), 0) // done already, by deployOne
			}
			if errors.Is(err, errInterrupted) {
				return 130
			}
			return 2
		}
		imageID, templateID, vmID := r.d.IDs()
		cert.result("Deploy/deploy", report.Pass, time.Since(start), fmt.Sprintf("run %s: image %d, template %d, VM %d READY at %s", r.d.RunID, imageID, templateID, vmID, r.d.Endpoint()))
		defer func() {
			start := time.Now()
			torn := r.finish()
			cert.teardown(torn, time.Since(start))
			if torn != 0 && code == 0 {
				code = 1
			}
		}()
		endpoint, password, deployed = r.d.Endpoint(), r.d.Password, r
		if err := contextSizeFromDeploy(); err != nil {
			fmt.Fprintln(os.Stderr, "acceptance:", err)
			return 2
		}
	case endpoint == "":
		in, err := startReference(password)
		if err != nil {
			fmt.Fprintln(os.Stderr, "acceptance:", err)
			return 2
		}
		defer in.Close()
		benchReference = in // -bench reaches its engine directly (the front door's overhead)
		endpoint, password, caCert = in.Endpoint, in.Password, in.CACert
		if *httpEndpointFlag == "" {
			*httpEndpointFlag = in.HTTPEndpoint
		}
		cert.secret(*usernameFlag, password)
		beginErr = cert.begin(report.ModeEmbedded, endpoint, string(in.Engine), in.EngineVersion)
	default:
		if err := checkSuiteTimeout(); err != nil {
			fmt.Fprintln(os.Stderr, "acceptance:", err)
			return 2
		}
		exitOnSignal(func() {})
		exitBeforeDeadline(func() {})
		cert.secret(*usernameFlag, password)
		beginErr = cert.begin(report.ModeEndpoint, endpoint, "", "")
	}
	if beginErr != nil {
		fmt.Fprintln(os.Stderr, "acceptance:", beginErr)
		return 2
	}
	var err error
	target, err = copilot.NewTarget(endpoint, *httpEndpointFlag, *usernameFlag, password, *modelFlag, caCert)
	if err != nil {
		fmt.Fprintln(os.Stderr, "acceptance:", err)
		return 2
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*preflightTimeout+time.Minute)
	err = preflight(ctx, target)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "acceptance:", err)
		cert.result("Suite/preflight", report.Fail, time.Since(start), err.Error())
		return 2
	}
	if *preflightFlag {
		cert.result("Suite/preflight", report.Pass, time.Since(start), "the endpoint answers, speaks TLS and takes the password")
	}
	cert.observe()
	if err := cert.capture(); err != nil {
		fmt.Fprintln(os.Stderr, "acceptance:", err)
		return 2
	}
	if stopped := cert.stopped(); stopped != 0 {
		return stopped // a handler stopped the run before its checks: none start now
	}
	code = m.Run()
	cert.uncapture()
	code = max(code, runBench())
	if deployed != nil && *oneReconfigure {
		if code != 0 {
			cert.reconfigured(false, 0, 0)
		} else {
			start := time.Now()
			code = reconfigureOne(deployed)
			cert.reconfigured(true, code, time.Since(start))
		}
	}
	message, err := checkModelCalls()
	if err != nil {
		fmt.Fprintln(os.Stderr, "acceptance:", err)
		cert.result("Suite/model_calls", report.Fail, 0, err.Error())
		code = max(code, 1)
	} else {
		cert.result("Suite/model_calls", report.Pass, 0, message)
	}
	return code
}

// startReference starts the embedded reference appliance and stops it on Ctrl-C and
// before the -timeout too, since a binary ended so skips deferred calls.
func startReference(password string) (*reference.Instance, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	began := time.Now()
	engine, err := reference.ParseEngine(*referenceEngine)
	if err != nil {
		return nil, err
	}
	// A -password (or $SLM_COPILOT_PASSWORD) is the reference's; none, a random one.
	in, err := reference.Start(ctx, reference.Options{Model: *modelFlag, Engine: engine, Password: password})
	if err != nil {
		return nil, fmt.Errorf("no -endpoint given, and the embedded reference appliance did not start: %w", err)
	}
	fmt.Fprintf(os.Stderr, "acceptance: no -endpoint: certifying the embedded reference appliance at %s (engine %s, up in %s)\n",
		in.Endpoint, in.EngineVersion, time.Since(began).Round(time.Millisecond))
	stop := func() { in.Close() }
	exitOnSignal(stop)
	exitBeforeDeadline(stop)
	return in, nil
}

// exitOnSignal ends the run on Ctrl-C or SIGTERM: the report is written with what the
// checks recorded so far (the interruption a failed check), then cleanup runs and the
// binary exits 130.
func exitOnSignal(cleanup func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "acceptance: %v: stopping the run; its report keeps what the checks recorded so far\n", s)
		code := cert.interrupt(130, fmt.Sprintf("%v: the run was stopped before its end", s))
		cleanup()
		os.Exit(code)
	}()
}

// exitBeforeDeadline ends the run shortly before go test's -timeout, whose panic would
// end the binary without a report: the report is written, cleanup runs, and the binary
// exits 1. It acts half way between suiteEnd, where requests stop and their checks fail
// with that reason, and the -timeout: for a check that does not end even then.
func exitBeforeDeadline(cleanup func()) {
	kill, total := killTime()
	margin := suiteMargin(total) / 2
	go func() {
		time.Sleep(time.Until(kill.Add(-margin)))
		why := fmt.Sprintf("the test -timeout %s was near: the run stopped %s before it to write its report; rerun with a longer -timeout (make certify sizes it from -request-timeout: go run ./acceptance/timeout)", total, margin)
		fmt.Fprintln(os.Stderr, "acceptance:", why)
		code := cert.interrupt(1, why)
		cleanup()
		os.Exit(code)
	}()
}

// exchange is one HTTP request and what came back, with the body read in full.
type exchange struct {
	resp *http.Response
	body []byte
}

// send performs req with the target's client, reads the whole body and records the
// exchange as the test's evidence for the report.
func send(t *testing.T, client *http.Client, req *http.Request) exchange {
	t.Helper()
	resp, err := client.Do(req.WithContext(requestContext(t)))
	if err != nil {
		recordNoResponse(t, report.RequestLine(req), err)
		t.Fatalf("%s %s: no response: %s\nlook at: is the instance up and reachable at %s?", req.Method, req.URL.Path, target.Redact(err.Error()), target.Endpoint)
	}
	defer resp.Body.Close()
	body, err := readAll(resp)
	rec.Evidence(t.Name(), report.Exchange(req, resp, body))
	if err != nil {
		t.Fatalf("%s %s: reading the body: %s", req.Method, req.URL.Path, target.Redact(err.Error()))
	}
	return exchange{resp: resp, body: body}
}

// snippet is a redacted, shortened body for failure messages.
func snippet(body []byte) string {
	s := target.Redact(string(body))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return fmt.Sprintf("%q", s)
}
