package report

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"html"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func written(t *testing.T, rec *Recorder) (string, *Results) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "report")
	require.NoError(t, rec.WriteDir(dir))
	res, err := rec.Results()
	require.NoError(t, err)
	return dir, res
}

func TestResultsRoundTrip(t *testing.T) {
	t.Parallel()
	dir, res := written(t, fixture(t, canary))
	raw, err := os.ReadFile(filepath.Join(dir, ResultsFile))
	require.NoError(t, err)
	var top map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &top))
	assert.Equal(t, "1", string(top["schema_version"]))

	back, err := ReadResults(filepath.Join(dir, ResultsFile))
	require.NoError(t, err)
	// Times lose their monotonic reading in JSON; compare them as instants.
	assert.True(t, res.Run.Start.Equal(back.Run.Start))
	back.Run.Start, back.Run.End = res.Run.Start, res.Run.End
	for i := range back.Metrics.Samples {
		require.True(t, res.Metrics.Samples[i].Start.Equal(back.Metrics.Samples[i].Start))
		back.Metrics.Samples[i].Start = res.Metrics.Samples[i].Start
	}
	assert.Equal(t, res, back)

	assert.Equal(t, Fail, back.Verdict)
	assert.Equal(t, "TLS", back.Checks[0].Area)
	ids := map[string]Check{}
	for _, c := range back.Checks {
		ids[c.ID] = c
	}
	assert.Contains(t, ids, "SLO/ttft_p99")
	assert.Contains(t, ids, "SLO/tps_min")
	assert.Equal(t, "Performance", ids["SLO/itl_p99"].Area)
	assert.Equal(t, Pass, ids["SLO/ttft_p99"].Verdict, "TTFT p99 ≈ 449 ms ≤ 500 ms")
	assert.Equal(t, "Suite", ids["Suite/model_calls"].Area)
	ev := ids["TestAuthentication/wrong_basic/v1_models"].Evidence
	require.Len(t, ev, 2, "its own, then its parent's")
	assert.Equal(t, "GET /v1/models", ev[0].Request)
	assert.Equal(t, "TestAuthentication/wrong_basic", ev[1].From)
	assert.Equal(t, "GET https://10.0.0.5/v1/models?key=[REDACTED]", ev[1].Request, "user information dropped, the query redacted")
	assert.Len(t, ids["TestChatStream"].Evidence[0].Timeline, 27)
	assert.NotContains(t, ids, "TestAuthentication/wrong_basic", "a parent is not a check")

	old := filepath.Join(t.TempDir(), "old.json")
	require.NoError(t, os.WriteFile(old, bytes.Replace(raw, []byte(`"schema_version": 1`), []byte(`"schema_version": 99`), 1), 0o644))
	_, err = ReadResults(old)
	assert.ErrorContains(t, err, "schema_version 99")
}

func TestLeavesAndInheritedEvidence(t *testing.T) {
	t.Parallel()
	rec := NewRecorder(Run{Endpoint: "https://x"}, nil)
	rec.Result("TestA", Fail, time.Second, "")
	rec.Result("TestA/one", Fail, time.Millisecond, "a_test.go:1: one failed")
	rec.Result("TestA/two", Pass, time.Millisecond, "")
	rec.Evidence("TestA", Evidence{Request: "GET /a", Status: 200})
	rec.Result("TestB", Fail, time.Second, "b_test.go:9: the parent's own failure")
	rec.Result("TestB/ok", Pass, 0, "")
	rec.Result("TestC", Pass, time.Second, "")
	rec.Log("TestD/x", "evidence without a verdict")
	res, err := rec.Results()
	require.NoError(t, err)
	got := map[string]Check{}
	for _, c := range res.Checks {
		got[c.ID] = c
	}
	assert.ElementsMatch(t, []string{"TestA/one", "TestA/two", "TestB", "TestB/ok", "TestC", "TestD/x"}, keys(got))
	assert.Equal(t, "TestA", got["TestA/two"].Evidence[0].From)
	assert.Equal(t, "GET /a", got["TestA/two"].Evidence[0].Request)
	assert.Equal(t, Skip, got["TestD/x"].Verdict)
	assert.Contains(t, got["TestD/x"].Message, "no verdict recorded")
	assert.Equal(t, Counts{Pass: 3, Fail: 2, Skip: 1}, res.Totals)
	assert.Equal(t, Fail, res.Verdict)
	assert.Nil(t, res.Metrics)
}

// TestInterruptedRun: a run stopped before its end fails with the reason, and a check
// that had begun and not ended says it was cut; finished checks keep their verdicts. The
// reason is redacted like any message.
func TestInterruptedRun(t *testing.T) {
	t.Parallel()
	rec := NewRecorder(Run{Endpoint: "https://x"}, NewRedactor([]string{"copilot"}, "canary-s3cret"))
	rec.Result("TestA", Pass, time.Second, "")
	rec.Log("TestB/running", "asked the engine")
	rec.Interrupt("interrupt: the run was stopped (canary-s3cret)", 3*time.Second)
	res, err := rec.Results()
	require.NoError(t, err)
	got := map[string]Check{}
	for _, c := range res.Checks {
		got[c.ID] = c
	}
	assert.Equal(t, Pass, got["TestA"].Verdict)
	assert.Equal(t, Skip, got["TestB/running"].Verdict)
	assert.Contains(t, got["TestB/running"].Message, "not finished: interrupt: the run was stopped")
	assert.Equal(t, Fail, got[InterruptedID].Verdict)
	assert.Equal(t, "Suite", got[InterruptedID].Area)
	assert.Equal(t, Fail, res.Verdict)
	for _, c := range res.Checks {
		assert.NotContains(t, c.Message, "canary-s3cret", c.ID)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// junit's shape as CI reporters read it, declared independently of the writer's types.
type jSuites struct {
	XMLName xml.Name `xml:"testsuites"`
	Suites  []jSuite `xml:"testsuite"`
}

type jSuite struct {
	Name     string  `xml:"name,attr"`
	Tests    int     `xml:"tests,attr"`
	Failures int     `xml:"failures,attr"`
	Errors   int     `xml:"errors,attr"`
	Skipped  int     `xml:"skipped,attr"`
	Time     float64 `xml:"time,attr"`
	Cases    []struct {
		Name      string   `xml:"name,attr"`
		Classname string   `xml:"classname,attr"`
		Time      float64  `xml:"time,attr"`
		Failure   *jResult `xml:"failure"`
		Skipped   *jResult `xml:"skipped"`
	} `xml:"testcase"`
}

type jResult struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

func TestJUnit(t *testing.T) {
	t.Parallel()
	dir, res := written(t, fixture(t, canary))
	raw, err := os.ReadFile(filepath.Join(dir, JUnitFile))
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(raw, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)))
	var doc jSuites
	require.NoError(t, xml.Unmarshal(raw, &doc))
	var attrs struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Skipped  int `xml:"skipped,attr"`
	}
	require.NoError(t, xml.Unmarshal(raw, &attrs))

	cases, fails, skips := 0, 0, 0
	for _, s := range doc.Suites {
		assert.NotEmpty(t, s.Name)
		assert.Equal(t, len(s.Cases), s.Tests, "suite %s: tests attribute", s.Name)
		f, sk := 0, 0
		for _, c := range s.Cases {
			assert.NotEmpty(t, c.Name)
			assert.NotEmpty(t, c.Classname)
			assert.False(t, c.Failure != nil && c.Skipped != nil, c.Name)
			if c.Failure != nil {
				f++
				assert.NotEmpty(t, c.Failure.Message, c.Name)
			}
			if c.Skipped != nil {
				sk++
			}
		}
		assert.Equal(t, f, s.Failures, "suite %s: failures attribute", s.Name)
		assert.Equal(t, sk, s.Skipped, "suite %s: skipped attribute", s.Name)
		assert.Zero(t, s.Errors)
		cases, fails, skips = cases+len(s.Cases), fails+f, skips+sk
	}
	assert.Equal(t, len(res.Checks), cases, "one testcase per check")
	assert.Equal(t, cases, attrs.Tests)
	assert.Equal(t, fails, attrs.Failures)
	assert.Equal(t, skips, attrs.Skipped)
	assert.Equal(t, res.Totals, Counts{Pass: cases - fails - skips, Fail: fails, Skip: skips})
	assert.Contains(t, string(raw), `name="TestAuthentication/wrong_basic/v1_models"`)
}

// forms are the encodings of a secret a reader could decode, listed here independently
// of the Redactor.
func forms(secret, user string) map[string]string {
	jsonEsc, _ := json.Marshal(secret)
	var plainJSON bytes.Buffer
	enc := json.NewEncoder(&plainJSON)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(secret)
	var xmlEsc bytes.Buffer
	_ = xml.EscapeText(&xmlEsc, []byte(secret))
	return map[string]string{
		"raw":                 secret,
		"base64":              base64.StdEncoding.EncodeToString([]byte(secret)),
		"base64 raw":          base64.RawStdEncoding.EncodeToString([]byte(secret)),
		"base64url":           base64.URLEncoding.EncodeToString([]byte(secret)),
		"basic":               base64.StdEncoding.EncodeToString([]byte(user + ":" + secret)),
		"query-escaped":       url.QueryEscape(secret),
		"path-escaped":        url.PathEscape(secret),
		"json":                strings.Trim(string(jsonEsc), `"`),
		"json without html":   strings.Trim(strings.TrimSpace(plainJSON.String()), `"`),
		"html":                html.EscapeString(secret),
		"xml":                 xmlEsc.String(),
		"markdown-escaped":    mdCell(secret),
		"prefix before a cut": secret[:12],
	}
}

func TestCanaryInNoFile(t *testing.T) {
	t.Parallel()
	rec := fixture(t, canary)
	dir, _ := written(t, rec)
	var summary bytes.Buffer
	require.NoError(t, rec.Summary(&summary, dir))
	contents := map[string]string{"summary": summary.String()}
	for _, name := range []string{ResultsFile, JUnitFile, MarkdownFile, HTMLFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		contents[name] = string(b)
	}
	for name, text := range contents {
		for what, f := range forms(canary, "copilot") {
			assert.NotContains(t, text, f, "%s holds the canary %s", name, what)
		}
		if name != "summary" {
			assert.Contains(t, text, "REDACTED", "%s: the canary was there to redact", name)
		}
	}
	// What a reader needs is still there.
	assert.Contains(t, contents[HTMLFile], "TestAuthentication/wrong_basic/v1_models")
	assert.Contains(t, contents[ResultsFile], "Basic "+Withheld)
	assert.Contains(t, contents[ResultsFile], `"X-Api-Key": "`+Withheld)
	assert.Contains(t, contents["summary"], "FAIL TestAuthentication/wrong_basic/v1_models")
}

func TestRedactorForms(t *testing.T) {
	t.Parallel()
	r := NewRedactor([]string{"copilot"}, canary, "")
	for what, f := range forms(canary, "copilot") {
		if what == "prefix before a cut" || what == "json" || what == "json without html" || what == "html" || what == "xml" || what == "markdown-escaped" {
			continue // escapings are the writers' business: redaction happens before them
		}
		assert.Equal(t, "<"+Redacted+">", r.Redact("<"+f+">"), what)
	}
	// Inside a longer base64 text, at each byte alignment.
	for _, pre := range []string{"", "a", "ab", "abc"} {
		enc := base64.StdEncoding.EncodeToString([]byte(pre + canary + "tail"))
		assert.Contains(t, r.Redact(enc), Redacted, "offset %d", len(pre))
	}
	var nilR *Redactor
	assert.Equal(t, canary, nilR.Redact(canary))
	assert.Equal(t, "plain", NewRedactor(nil).Redact("plain"))
}

func TestLeakBlocksTheWrite(t *testing.T) {
	t.Parallel()
	r := NewRedactor([]string{"copilot"}, canary)
	for name, content := range map[string]string{
		"report.html":  "<td>" + html.EscapeString(canary) + "</td>",
		"report.md":    "| " + mdCell(canary) + " |",
		"results.json": `{"k":` + string(must(json.Marshal(canary))) + `}`,
		"junit.xml":    `<failure message="` + forms(canary, "copilot")["xml"] + `"/>`,
		"b64.txt":      base64.StdEncoding.EncodeToString([]byte("copilot:" + canary)),
	} {
		err := r.Leak(name, []byte(content))
		require.Error(t, err, name)
		assert.NotContains(t, err.Error(), canary[:6], "the error must not show the secret")
	}
	dir := filepath.Join(t.TempDir(), "out")
	err := writeScanned(dir, []file{{"ok.md", []byte("fine")}, {"bad.html", []byte("<p>" + html.EscapeString(canary))}}, r)
	require.ErrorContains(t, err, "bad.html still holds secret 1")
	_, statErr := os.Stat(dir)
	assert.True(t, os.IsNotExist(statErr), "nothing written, not even the clean file")
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestHTMLOffline: the page fetches nothing: no external URL in any attribute or style,
// no script, stylesheet, frame or object, and a CSP forbidding fetches.
func TestHTMLOffline(t *testing.T) {
	t.Parallel()
	dir, _ := written(t, fixture(t, canary))
	b, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	require.NoError(t, err)
	page := string(b)
	assert.Contains(t, page, `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`)
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)\b(?:src|href|action|srcset|poster|data|xlink:href|xmlns(?::\w+)?|background|formaction|ping)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:|//)`),
		regexp.MustCompile(`(?i)url\s*\(`),
		regexp.MustCompile(`(?i)@import`),
		regexp.MustCompile(`(?i)<\s*(?:script|link|iframe|object|embed|img|video|audio|source|base)\b`),
	} {
		assert.Empty(t, bad.FindAllString(page, 5), "the page must not refer to anything outside itself: %s", bad)
	}
	assert.GreaterOrEqual(t, strings.Count(page, "<svg"), 5, "timeline and latency charts inline")
	assert.Contains(t, page, "<details")
}

func TestDefaultDir(t *testing.T) {
	t.Parallel()
	assert.Equal(t, filepath.Join("certification", "20250601T120000Z"), DefaultDir(t0.In(time.FixedZone("CEST", 7200))))
}

func TestAreaOf(t *testing.T) {
	t.Parallel()
	for id, area := range map[string]string{
		"TestTLSVersions/TLS_1.0": "TLS", "TestAuthentication/none//v1/models": "Authentication",
		"TestCORS": "Front door", "TestEngineKeyNotEchoed/health": "Exposure", "TestChatStream": "Streaming",
		"TestClineToolCall/follow_up": "Cline", "TestReconfigure": "Deploy", "SLO/ttft_p99": "Performance",
		"Baseline/itl_p99": "Performance", "TestSomethingNew": "Other",
	} {
		assert.Equal(t, area, AreaOf(id), id)
	}
}

func TestMarkdownAndSummary(t *testing.T) {
	t.Parallel()
	rec := fixture(t, canary)
	dir, _ := written(t, rec)
	md, err := os.ReadFile(filepath.Join(dir, MarkdownFile))
	require.NoError(t, err)
	for _, want := range []string{
		"# SLM-Copilot certification: ❌ FAIL\n",
		"| Authentication | ❌ FAIL | 1 | 1 | 0 |\n",
		"| **Total** | ❌ FAIL | 9 | 1 | 1 |\n",
		"- `TestAuthentication/wrong_basic/v1_models`: auth\\_test.go:88: GET /v1/models with a wrong Basic password: want 401, got 200\n",
		"| Time to first token | 3 | 347 ms | 310 ms | 422 ms | 447 ms |\n",
		"| `ttft_p99` | ≤ 500 ms | 447 ms | ✅ PASS |\n",
		"| Certificate SANs | copilot.example, 10.0.0.5 |\n",
		"| Certificate subject | CN=slm-copilot (self-signed) |\n",
	} {
		assert.Contains(t, string(md), want)
	}
	var out bytes.Buffer
	require.NoError(t, rec.Summary(&out, dir))
	for _, want := range []string{
		"SLM-Copilot certification: FAIL — https://10.0.0.5, model devstral-small-2, deploy mode, 1m35s\n",
		"  Area              PASS  FAIL  SKIP\n",
		"  Authentication       1     1     0  FAIL\n",
		"  Total                9     1     1  FAIL\n",
		"  Streams: 3/3 streams · TTFT p50 310 ms p99 447 ms · ITL p99 95 ms",
		"  SLO PASS: ttft_p99 = 447 ms, target ≤ 500 ms (3 values): met\n",
		"  FAIL TestAuthentication/wrong_basic/v1_models: auth_test.go:88:",
		"  Report: " + filepath.Join(dir, HTMLFile),
	} {
		assert.Contains(t, out.String(), want)
	}
}
