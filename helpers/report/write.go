package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

// The files WriteDir writes.
const (
	ResultsFile  = "results.json"
	JUnitFile    = "junit.xml"
	MarkdownFile = "report.md"
	HTMLFile     = "report.html"
)

// DefaultDir is where a run's report goes without -report: ./certification/<UTC time>.
func DefaultDir(now time.Time) string {
	return filepath.Join("certification", now.UTC().Format("20060102T150405Z"))
}

// WriteDir writes the four report files into dir (created if missing). Each file is
// rendered in memory and scanned for every form of every secret first: if one is found,
// nothing is written and the error names the file and the form, never the secret.
func (r *Recorder) WriteDir(dir string) error {
	res, err := r.Results()
	if err != nil {
		return err
	}
	return Write(dir, res, r.red)
}

// Write writes res's four report files into dir, redacted with red and scanned as
// WriteDir says.
func Write(dir string, res *Results, red *Redactor) error {
	if err := red.redactValue(res); err != nil {
		return err
	}
	files := []struct {
		name   string
		render func(*Results) ([]byte, error)
	}{
		{ResultsFile, renderJSON}, {JUnitFile, renderJUnit}, {MarkdownFile, renderMarkdown}, {HTMLFile, renderHTML},
	}
	out := make([]file, len(files))
	for i, f := range files {
		b, err := f.render(res)
		if err != nil {
			return fmt.Errorf("report: %s: %w", f.name, err)
		}
		out[i] = file{f.name, b}
	}
	return writeScanned(dir, out, red)
}

type file struct {
	name    string
	content []byte
}

// writeScanned writes files into dir unless a secret is found in any of them: then it
// writes none.
func writeScanned(dir string, files []file, red *Redactor) error {
	var errs []error
	for _, f := range files {
		if err := red.Leak(f.name, f.content); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("report: not written, a secret would leak: %w", errors.Join(errs...))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.content, 0o644); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	return nil
}

func renderJSON(res *Results) ([]byte, error) {
	b, err := json.MarshalIndent(res, "", "  ")
	return append(b, '\n'), err
}

// JUnit XML as GitHub (dorny/test-reporter, mikepenz/action-junit-report), GitLab and
// Jenkins read it: one testsuite per area, one testcase per check.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string     `xml:"name,attr"`
	Classname string     `xml:"classname,attr"`
	Time      string     `xml:"time,attr"`
	Failure   *junitText `xml:"failure,omitempty"`
	Skipped   *junitText `xml:"skipped,omitempty"`
	SystemOut string     `xml:"system-out,omitempty"`
}

type junitText struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

func renderJUnit(res *Results) ([]byte, error) {
	top := junitSuites{Name: res.Run.Suite, Time: seconds(res.Run.End.Sub(res.Run.Start))}
	props := []junitProperty{
		{"endpoint", res.Run.Endpoint}, {"mode", string(res.Run.Mode)}, {"model", res.Run.Model},
		{"suite_version", res.Run.SuiteVersion}, {"suite_commit", res.Run.SuiteCommit},
		{"engine", strings.TrimSpace(res.Run.Engine + " " + res.Run.EngineVersion)},
	}
	idx := map[string]int{}
	for _, c := range res.Checks {
		i, ok := idx[c.Area]
		if !ok {
			i = len(top.Suites)
			idx[c.Area] = i
			top.Suites = append(top.Suites, junitSuite{Name: c.Area, Timestamp: res.Run.Start.UTC().Format("2006-01-02T15:04:05"), Properties: props})
		}
		s := &top.Suites[i]
		jc := junitCase{Name: c.ID, Classname: "slm-copilot." + strings.ReplaceAll(c.Area, " ", "_"), Time: seconds(c.Duration)}
		switch c.Verdict {
		case Fail:
			jc.Failure = &junitText{Message: firstLine(c.Message), Type: "FAIL", Text: c.Message}
			s.Failures++
		case Skip:
			jc.Skipped = &junitText{Message: firstLine(c.Message)}
			s.Skipped++
		}
		if c.Verdict != Fail && c.Message != "" {
			jc.SystemOut = c.Message
		}
		if len(c.Evidence) > 0 {
			jc.SystemOut = strings.TrimSpace(jc.SystemOut + "\n\n" + evidenceText(c.Evidence))
		}
		s.Tests++
		s.Cases = append(s.Cases, jc)
		s.Time = seconds(parseSeconds(s.Time) + c.Duration)
	}
	for _, s := range top.Suites {
		top.Tests += s.Tests
		top.Failures += s.Failures
		top.Skipped += s.Skipped
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", "  ")
	if err := enc.Encode(top); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

func parseSeconds(s string) time.Duration {
	d, _ := time.ParseDuration(s + "s")
	return d
}

// evidenceText is a plain account of evidence for system-out.
func evidenceText(evs []Evidence) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "> %s", ev.Request)
		if ev.From != "" {
			fmt.Fprintf(&b, " (recorded by %s)", ev.From)
		}
		b.WriteString("\n")
		for _, k := range slices.Sorted(maps.Keys(ev.RequestHeaders)) {
			fmt.Fprintf(&b, "> %s: %s\n", k, ev.RequestHeaders[k])
		}
		if ev.Status != 0 {
			fmt.Fprintf(&b, "< %d\n", ev.Status)
		}
		for _, k := range slices.Sorted(maps.Keys(ev.Headers)) {
			fmt.Fprintf(&b, "< %s: %s\n", k, ev.Headers[k])
		}
		if ev.Note != "" {
			fmt.Fprintf(&b, "note: %s\n", ev.Note)
		}
		if ev.BodyExcerpt != "" {
			fmt.Fprintf(&b, "%s\n", ev.BodyExcerpt)
		}
		if n := len(ev.Timeline); n > 0 {
			fmt.Fprintf(&b, "timeline: %d events, first at %s, last at %s\n", n,
				metrics.FormatMS(ms(ev.Timeline[0].Offset)), metrics.FormatMS(ms(ev.Timeline[n-1].Offset)))
		}
		b.WriteString("\n")
	}
	return strings.TrimSpace(b.String())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	if len(line) > 300 {
		line = line[:300] + "…"
	}
	return line
}

// Summary prints the run's outcome for the terminal: the verdict, counts by area, the
// key metrics, the failed checks, and where the report is (dir, if written).
func (r *Recorder) Summary(w io.Writer, dir string) error {
	res, err := r.Results()
	if err != nil {
		return err
	}
	var b bytes.Buffer
	WriteSummary(&b, res, dir)
	if err := r.red.Leak("summary", b.Bytes()); err != nil {
		return err
	}
	_, err = w.Write(b.Bytes())
	return err
}

// WriteSummary prints res as Summary does, without redacting: res comes from Results.
func WriteSummary(w io.Writer, res *Results, dir string) {
	fmt.Fprintf(w, "\nSLM-Copilot certification: %s — %s, model %s, %s mode, %s\n",
		res.Verdict, res.Run.Endpoint, orDash(res.Run.Model), orDash(string(res.Run.Mode)),
		res.Run.End.Sub(res.Run.Start).Round(time.Second))
	fmt.Fprintf(w, "  %-16s %5s %5s %5s\n", "Area", "PASS", "FAIL", "SKIP")
	for _, a := range res.Areas {
		fmt.Fprintf(w, "  %-16s %5d %5d %5d  %s\n", a.Area, a.Pass, a.Fail, a.Skip, a.Verdict)
	}
	fmt.Fprintf(w, "  %-16s %5d %5d %5d  %s\n", "Total", res.Totals.Pass, res.Totals.Fail, res.Totals.Skip, res.Verdict)
	if m := res.Metrics; m != nil {
		fmt.Fprintf(w, "  Streams: %s\n", m.Summary)
		for _, v := range m.SLOs {
			word := "PASS"
			if !v.Pass {
				word = "FAIL"
			}
			fmt.Fprintf(w, "  SLO %s: %s\n", word, v.Message)
		}
		if m.Baseline != nil {
			fmt.Fprintf(w, "  Baseline %s: %d regression(s) beyond %.0f%%\n", m.Baseline.Path, len(m.Baseline.Regressions), 100*m.Baseline.Tolerance)
		}
	}
	for _, c := range res.Checks {
		if c.Verdict == Fail {
			fmt.Fprintf(w, "  FAIL %s: %s\n", c.ID, firstLine(c.Message))
		}
	}
	if dir != "" {
		fmt.Fprintf(w, "  Report: %s (%s, %s, %s)\n", filepath.Join(dir, HTMLFile), ResultsFile, JUnitFile, MarkdownFile)
	}
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
