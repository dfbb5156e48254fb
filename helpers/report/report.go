// Package report writes what a certification run found: results.json (versioned, for
// machines and -baseline), junit.xml (for CI test reporters), report.md (for a
// marketplace pull request) and report.html (one self-contained page with the evidence
// and inline SVG charts), plus a short summary for the terminal.
//
// Checks do not format output. They feed a Recorder through a few calls: Track(t) in
// each test records its verdict and duration when it ends, Evidence and Stream attach
// what was sent and received, and the go test output captured during m.Run supplies the
// messages. Every string written passes through a Redactor, and the write fails if any
// form of a secret is still found in a file. In a suite:
//
//	var reportFlags = report.RegisterFlags(flag.CommandLine)
//
//	func TestMain(m *testing.M) {
//		flag.Parse()
//		version, commit := report.SuiteBuild()
//		rec = report.NewRecorder(report.Run{SuiteVersion: version, SuiteCommit: commit, ...},
//			report.NewRedactor([]string{username}, password))
//		if err := reportFlags.Apply(rec); err != nil { ... }
//		stop, err := rec.CaptureOutput()
//		code := m.Run()
//		stop()
//		rec.UpdateRun(func(r *report.Run) { r.End = time.Now() })
//		dir := reportFlags.ReportDir(start)
//		if err := rec.WriteDir(dir); err != nil { ... }
//		rec.Summary(os.Stderr, dir)
//	}
//
//	func TestChatStream(t *testing.T) {
//		rec.Track(t)
//		...
//		rec.Stream(t.Name(), "POST /v1/chat/completions", tap.Last())
//	}
package report

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/bench"
	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

// SchemaVersion is results.json's schema_version. Raise it when a field changes meaning
// or goes away; adding a field does not.
const SchemaVersion = 1

// Verdict is a check's outcome.
type Verdict string

// The verdicts.
const (
	Pass Verdict = "PASS"
	Fail Verdict = "FAIL"
	Skip Verdict = "SKIP"
)

// Mode is how the suite reached the instance it certified.
type Mode string

// The modes.
const (
	ModeEmbedded Mode = "embedded" // the embedded reference appliance (no -endpoint)
	ModeEndpoint Mode = "endpoint" // a running instance (-endpoint)
	ModeDeploy   Mode = "deploy"   // deployed to OpenNebula for the run
)

// Results is everything results.json holds.
type Results struct {
	SchemaVersion int         `json:"schema_version"`
	Run           Run         `json:"run"`
	Verdict       Verdict     `json:"verdict"` // FAIL if any check failed, PASS if any passed, else SKIP
	Totals        Counts      `json:"totals"`
	Areas         []AreaCount `json:"areas"`
	Checks        []Check     `json:"checks"`
	Metrics       *Metrics    `json:"metrics,omitempty"`
}

// Run is the run's metadata: what was certified, with what, when.
type Run struct {
	Suite        string    `json:"suite"` // "slm-copilot acceptance"
	SuiteVersion string    `json:"suite_version,omitempty"`
	SuiteCommit  string    `json:"suite_commit,omitempty"`
	GoVersion    string    `json:"go_version,omitempty"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end"`
	Mode         Mode      `json:"mode"`
	Endpoint     string    `json:"endpoint"`
	Model        string    `json:"model,omitempty"`
	// Engine and EngineVersion as far as the instance reveals them (the appliance
	// hides versions from outside; the embedded reference knows its own).
	Engine        string       `json:"engine,omitempty"`
	EngineVersion string       `json:"engine_version,omitempty"`
	Certificate   *Certificate `json:"certificate,omitempty"`
	TLSVersions   []string     `json:"tls_versions,omitempty"` // accepted by the server: "TLS 1.2", "TLS 1.3"
	OpenNebula    *OpenNebula  `json:"opennebula,omitempty"`   // deploy mode
	Settings      []Setting    `json:"settings,omitempty"`     // flags worth reproducing the run with
}

// Setting is one named parameter of the run (a flag, the context size...).
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Certificate is the server's leaf certificate as the run saw it.
type Certificate struct {
	Subject    string    `json:"subject"`
	Issuer     string    `json:"issuer"`
	SANs       []string  `json:"sans"`
	NotBefore  time.Time `json:"not_before"`
	NotAfter   time.Time `json:"not_after"`
	SHA256     string    `json:"sha256"` // of the DER, lower-case hex with colons
	SelfSigned bool      `json:"self_signed"`
}

// CertificateOf describes c.
func CertificateOf(c *x509.Certificate) *Certificate {
	sum := sha256.Sum256(c.Raw)
	hx := hex.EncodeToString(sum[:])
	pairs := make([]string, 0, len(sum))
	for i := 0; i < len(hx); i += 2 {
		pairs = append(pairs, hx[i:i+2])
	}
	out := &Certificate{
		Subject: c.Subject.String(), Issuer: c.Issuer.String(),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
		SHA256: strings.Join(pairs, ":"),
		// Verified, not inferred from the names: CheckSignatureFrom would also demand a CA.
		SelfSigned: bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil,
	}
	out.SANs = append(out.SANs, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out.SANs = append(out.SANs, ip.String())
	}
	for _, u := range c.URIs {
		out.SANs = append(out.SANs, u.String())
	}
	return out
}

// OpenNebula names the objects a deploy-mode run used.
type OpenNebula struct {
	Endpoint string   `json:"endpoint"` // oned's XML-RPC address
	Objects  []Object `json:"objects"`
}

// Object is one OpenNebula object: "image", "template", "vm", "vnet"...
type Object struct {
	Kind string `json:"kind"`
	ID   int    `json:"id"`
	Name string `json:"name,omitempty"`
	Note string `json:"note,omitempty"` // e.g. "created by the run, terminated"
}

// Counts are verdict counts.
type Counts struct {
	Pass int `json:"pass"`
	Fail int `json:"fail"`
	Skip int `json:"skip"`
}

func (c *Counts) add(v Verdict) {
	switch v {
	case Pass:
		c.Pass++
	case Fail:
		c.Fail++
	case Skip:
		c.Skip++
	}
}

// Verdict is FAIL if any failed, PASS if any passed, SKIP otherwise.
func (c Counts) Verdict() Verdict {
	switch {
	case c.Fail > 0:
		return Fail
	case c.Pass > 0:
		return Pass
	}
	return Skip
}

// AreaCount is an area's verdict counts.
type AreaCount struct {
	Area    string  `json:"area"`
	Verdict Verdict `json:"verdict"`
	Counts
}

// Check is one leaf test (or a non-test verdict such as an SLO gate).
type Check struct {
	ID       string        `json:"id"` // the test's name: TestAuthentication/wrong_basic
	Area     string        `json:"area"`
	Verdict  Verdict       `json:"verdict"`
	Duration time.Duration `json:"duration_ns"`
	// Message is what the test logged (t.Error, t.Skip, t.Log lines, as go test prints
	// them), or the gate's account.
	Message  string     `json:"message,omitempty"`
	Evidence []Evidence `json:"evidence,omitempty"`
}

// Evidence is one exchange a check judged.
type Evidence struct {
	// From names the test that recorded it when a leaf inherits its parent's evidence.
	From           string            `json:"from,omitempty"`
	Request        string            `json:"request"` // "POST https://host/v1/chat/completions"
	RequestHeaders map[string]string `json:"request_headers,omitempty"`
	Status         int               `json:"status,omitempty"`
	Headers        map[string]string `json:"headers,omitempty"`
	BodyExcerpt    string            `json:"body_excerpt,omitempty"`
	Timeline       []metrics.Event   `json:"timeline,omitempty"` // streams: every event with its arrival offset
	Note           string            `json:"note,omitempty"`
}

// Metrics are the streamed requests' measurements.
type Metrics struct {
	Samples  []metrics.Sample  `json:"samples"`
	Summary  metrics.Summary   `json:"summary"`
	SLOs     []metrics.Verdict `json:"slos,omitempty"`
	SLOSpec  string            `json:"slo_spec,omitempty"`
	Baseline *Baseline         `json:"baseline,omitempty"`
	// Bench is what a -bench run measured (helpers/bench). Its requests are not among
	// Samples: the SLO gates and the baseline judge the checks' interactive streams, and
	// a level of concurrent load is reported apart, with its own goodput.
	Bench *bench.Result `json:"bench,omitempty"`
}

// Baseline is the comparison with an earlier run's results.json.
type Baseline struct {
	Path        string               `json:"path"`
	Run         Run                  `json:"run"` // the baseline's metadata, to say what was compared
	Tolerance   float64              `json:"tolerance"`
	Regressions []metrics.Regression `json:"regressions"`
}

// Areas orders the areas and names the top-level tests each holds. A test not listed
// falls in "Other"; SLO gates are "Performance".
var Areas = []struct {
	Area  string
	Tests []string
}{
	{"TLS", []string{"TestTLSVersions", "TestCertificate"}},
	{"Authentication", []string{"TestAuthentication", "TestNoOpenRoute"}},
	{"Front door", []string{"TestHTTPRedirect", "TestHealthEndpoints", "TestCORS", "TestRequestBodyLimit"}},
	{"Exposure", []string{"TestNoVersionDisclosure", "TestPublicEndpointsLeakNothing", "TestEngineNotReachable", "TestEngineKeyNotEchoed"}},
	{"API", []string{"TestModelListed", "TestChatCompletion"}},
	{"Streaming", []string{"TestChatStream"}},
	{"Cline", []string{"TestClineRequest", "TestClineToolCall"}},
	{"Deploy", []string{"TestReconfigure", "Deploy"}},
	{"Performance", []string{SLOPrefix, BaselinePrefix, BenchPrefix}},
	{"Suite", []string{"Suite"}},
	{"Other", nil},
}

// Prefixes of the checks the recorder makes itself.
const (
	SLOPrefix      = "SLO"
	BaselinePrefix = "Baseline"
	BenchPrefix    = "Bench" // the suite's -bench parts: Bench/concurrency_1, ...
	// InterruptedID is the check that says why a run stopped before its end.
	InterruptedID = "Suite/interrupted"
)

// AreaOf is the area of a check id, from its top-level name.
func AreaOf(id string) string {
	top, _, _ := strings.Cut(id, "/")
	for _, a := range Areas {
		for _, t := range a.Tests {
			if t == top {
				return a.Area
			}
		}
	}
	return "Other"
}

func areaRank(area string) int {
	for i, a := range Areas {
		if a.Area == area {
			return i
		}
	}
	return len(Areas)
}
