package report

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/bench"
	"github.com/slm-copilot/slm-copilot/helpers/copilot"
	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

// Recorder collects verdicts, evidence and stream measurements while checks run in
// parallel, and writes the report when they are done. Its methods are safe for
// concurrent use. Everything it is given is redacted as it arrives (before a body is cut
// to an excerpt, so no part of a secret survives a cut) and again when written.
type Recorder struct {
	red *Redactor

	mu       sync.Mutex
	run      Run
	tests    map[string]*record
	samples  []metrics.Sample
	slos     []metrics.SLO
	sloSpec  string
	baseline *baselineInput
	bench    []byte // the -bench result, as JSON: Results hands out copies
	// interrupted says why the run stopped before its end ("" when it did not).
	interrupted string
}

type record struct {
	verdict  Verdict // "" until known
	duration time.Duration
	messages []string
	evidence []Evidence
	// fromOutput: the verdict and duration are go test's own (its "--- PASS" line),
	// which outrank Track's: later cleanups can still fail a test.
	fromOutput bool
}

type baselineInput struct {
	path      string
	results   *Results
	tolerance float64
}

// NewRecorder starts recording a run. red may be nil (nothing to hide).
func NewRecorder(run Run, red *Redactor) *Recorder {
	if run.Start.IsZero() {
		run.Start = time.Now()
	}
	if run.Suite == "" {
		run.Suite = "slm-copilot acceptance"
	}
	if run.GoVersion == "" {
		run.GoVersion = runtime.Version()
	}
	return &Recorder{red: red, run: run, tests: map[string]*record{}}
}

// UpdateRun changes the run's metadata: what is only known once checks ran (the
// certificate, the TLS versions, the engine) or at the end.
func (r *Recorder) UpdateRun(f func(*Run)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.run)
}

func (r *Recorder) rec(test string) *record {
	t, ok := r.tests[test]
	if !ok {
		t = &record{}
		r.tests[test] = t
	}
	return t
}

// Track records t's verdict (FAIL if it or a subtest failed, SKIP if skipped, else
// PASS) and duration when it ends. Call it first in each test and subtest: it works
// through t.Cleanup, and cleanups registered before it run after it.
func (r *Recorder) Track(t testing.TB) {
	name, start := t.Name(), time.Now()
	r.mu.Lock()
	r.rec(name)
	r.mu.Unlock()
	t.Cleanup(func() {
		v := Pass
		switch {
		case t.Failed():
			v = Fail
		case t.Skipped():
			v = Skip
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		rec := r.rec(name)
		if !rec.fromOutput {
			rec.verdict, rec.duration = v, time.Since(start)
		}
	})
}

// Result records a verdict that is not a test's: a suite-level condition (the model-call
// budget), a deploy step. A test's own verdict comes from Track.
func (r *Recorder) Result(id string, v Verdict, d time.Duration, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.rec(id)
	rec.verdict, rec.duration, rec.fromOutput = v, d, true
	if message != "" {
		rec.messages = append(rec.messages, r.red.Redact(message))
	}
}

// Interrupt records that the run stops before its end (a signal, the -timeout near): a
// failed InterruptedID check says why, and each check that had begun and not ended is a
// SKIP that says it was cut, rather than one without a verdict.
func (r *Recorder) Interrupt(why string, d time.Duration) {
	r.mu.Lock()
	r.interrupted = r.red.Redact(why)
	r.mu.Unlock()
	r.Result(InterruptedID, Fail, d, why)
}

// Log adds a message to a test's record, beside what go test printed for it.
func (r *Recorder) Log(test, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.rec(test)
	rec.messages = append(rec.messages, r.red.Redact(message))
}

// Evidence attaches an exchange to a test (t.Name()). A test's subtests that have
// none of their own show it.
func (r *Recorder) Evidence(test string, ev Evidence) {
	ev = r.clean(ev)
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.rec(test)
	rec.evidence = append(rec.evidence, ev)
}

// clean redacts evidence, then cuts the body to an excerpt.
func (r *Recorder) clean(ev Evidence) Evidence {
	ev.Request = r.red.Redact(ev.Request)
	ev.Note = r.red.Redact(ev.Note)
	ev.BodyExcerpt = excerpt(r.red.Redact(ev.BodyExcerpt))
	ev.Headers = r.redactMap(ev.Headers)
	ev.RequestHeaders = r.redactMap(ev.RequestHeaders)
	if ev.Timeline != nil {
		tl := make([]metrics.Event, len(ev.Timeline))
		for i, e := range ev.Timeline {
			e.Text = r.red.Redact(e.Text)
			tl[i] = e
		}
		ev.Timeline = tl
	}
	return ev
}

func (r *Recorder) redactMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[r.red.Redact(k)] = r.red.Redact(v)
	}
	return out
}

// Stream records a streamed response recorded by copilot.Tap: its evidence with the
// event timeline, and its measurements for the run's metrics and SLO gates. Record
// only streams that represent the instance's interactive service (not, say, a prompt
// made to overflow the context): every one counts in the percentiles. request is the
// request line, which a Capture does not keep.
func (r *Recorder) Stream(test, request string, c *copilot.Capture) metrics.Sample {
	s := metrics.FromCapture(test, c)
	ev := FromCapture(request, c)
	r.Evidence(test, ev)
	r.Sample(s)
	return s
}

// Sample adds a stream's measurements to the run's metrics.
func (r *Recorder) Sample(s metrics.Sample) {
	s.Error = r.red.Redact(s.Error)
	s.Name = r.red.Redact(s.Name)
	ev := make([]metrics.Event, len(s.Events))
	for i, e := range s.Events {
		e.Text = r.red.Redact(e.Text)
		ev[i] = e
	}
	s.Events = ev
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, s)
}

// SetBench records what a -bench run measured, for results.json's metrics.bench and the
// reports. The suite records each part's verdict with Result (Bench/...).
func (r *Recorder) SetBench(b *bench.Result) error {
	j, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("bench result: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bench = j
	return nil
}

// SetSLOs sets the gates (metrics.ParseSLOs syntax: "cpu", "ttft_p99=500ms,..."): each
// becomes a check SLO/<name>, and goodput is counted against them.
func (r *Recorder) SetSLOs(spec string) error {
	slos, err := metrics.ParseSLOs(spec)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.slos, r.sloSpec = slos, spec
	return nil
}

// SetBaseline compares the run's metrics with those of an earlier results.json: each
// regression beyond tolerance (0.2 = 20 %) becomes a failed check Baseline/<metric>.
func (r *Recorder) SetBaseline(path string, tolerance float64) error {
	base, err := ReadResults(path)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if base.Metrics == nil {
		return fmt.Errorf("baseline %s: it holds no metrics (no stream was measured in that run)", path)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.baseline = &baselineInput{path: path, results: base, tolerance: tolerance}
	return nil
}

// ReadResults reads a results.json, refusing a schema this package does not know.
func ReadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if res.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("%s: schema_version %d, this suite reads %d", path, res.SchemaVersion, SchemaVersion)
	}
	return &res, nil
}

// mergeOutput takes what go test printed: messages always, verdicts and durations
// over Track's.
func (r *Recorder) mergeOutput(p *outputParser) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, name := range p.order {
		pt := p.tests[name]
		rec := r.rec(name)
		for _, m := range pt.messages {
			rec.messages = append(rec.messages, r.red.Redact(m))
		}
		if pt.verdict != "" {
			rec.verdict, rec.duration, rec.fromOutput = pt.verdict, pt.duration, true
		}
	}
}

// Results is a redacted snapshot of the run: the leaf tests as checks (a parent kept
// only when it failed on its own), the SLO and baseline checks, the metrics and totals.
func (r *Recorder) Results() (*Results, error) {
	r.mu.Lock()
	res := &Results{SchemaVersion: SchemaVersion, Run: r.run}
	if res.Run.End.IsZero() {
		res.Run.End = time.Now()
	}
	names := make([]string, 0, len(r.tests))
	for n := range r.tests {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if c, ok := r.check(n, names); ok {
			res.Checks = append(res.Checks, c)
		}
	}
	if len(r.samples) > 0 || len(r.slos) > 0 || r.baseline != nil || r.bench != nil {
		m := &Metrics{Samples: append([]metrics.Sample(nil), r.samples...), SLOSpec: r.sloSpec}
		if r.bench != nil {
			m.Bench = &bench.Result{}
			if err := json.Unmarshal(r.bench, m.Bench); err != nil {
				r.mu.Unlock()
				return nil, fmt.Errorf("bench result: %w", err)
			}
		}
		m.Summary = metrics.Summarize(m.Samples, r.slos)
		m.SLOs = metrics.Evaluate(m.Summary, r.slos)
		for _, v := range m.SLOs {
			c := Check{ID: SLOPrefix + "/" + v.SLO, Verdict: Pass, Message: v.Message}
			if !v.Pass {
				c.Verdict = Fail
			}
			res.Checks = append(res.Checks, c)
		}
		if b := r.baseline; b != nil {
			m.Baseline = &Baseline{Path: b.path, Run: b.results.Run, Tolerance: b.tolerance,
				Regressions: metrics.Compare(b.results.Metrics.Summary, m.Summary, b.tolerance)}
			for _, reg := range m.Baseline.Regressions {
				res.Checks = append(res.Checks, Check{ID: BaselinePrefix + "/" + reg.Metric, Verdict: Fail, Message: reg.Message})
			}
			if len(m.Baseline.Regressions) == 0 {
				res.Checks = append(res.Checks, Check{ID: BaselinePrefix + "/no_regression", Verdict: Pass,
					Message: fmt.Sprintf("no metric worse than %s (run of %s) by more than %.0f%%", b.path, b.results.Run.Start.UTC().Format(time.RFC3339), 100*b.tolerance)})
			}
		}
		res.Metrics = m
	}
	r.mu.Unlock()

	for i := range res.Checks {
		res.Checks[i].Area = AreaOf(res.Checks[i].ID)
	}
	sort.SliceStable(res.Checks, func(i, j int) bool {
		return areaRank(res.Checks[i].Area) < areaRank(res.Checks[j].Area)
	})
	byArea := map[string]*AreaCount{}
	for _, c := range res.Checks {
		res.Totals.add(c.Verdict)
		a, ok := byArea[c.Area]
		if !ok {
			a = &AreaCount{Area: c.Area}
			byArea[c.Area] = a
			res.Areas = append(res.Areas, AreaCount{Area: c.Area})
		}
		a.add(c.Verdict)
	}
	for i := range res.Areas {
		res.Areas[i] = *byArea[res.Areas[i].Area]
		res.Areas[i].Verdict = res.Areas[i].Counts.Verdict()
	}
	res.Verdict = res.Totals.Verdict()
	if err := r.red.redactValue(res); err != nil {
		return nil, err
	}
	return res, nil
}

// check builds the check of test n, or reports that n is a parent whose verdict its
// subtests carry. Called with r.mu held; names is sorted.
func (r *Recorder) check(n string, names []string) (Check, bool) {
	rec := r.tests[n]
	childFailed, hasChild := false, false
	for _, o := range names {
		if strings.HasPrefix(o, n+"/") {
			hasChild = true
			childFailed = childFailed || r.tests[o].verdict == Fail
		}
	}
	if hasChild && !(rec.verdict == Fail && !childFailed) {
		return Check{}, false
	}
	c := Check{ID: n, Verdict: rec.verdict, Duration: rec.duration, Message: strings.Join(rec.messages, "\n")}
	switch {
	case c.Verdict == "" && r.interrupted != "":
		c.Verdict = Skip
		c.Message = strings.TrimSpace(c.Message + "\nnot finished: " + r.interrupted)
	case c.Verdict == "":
		c.Verdict = Skip
		c.Message = strings.TrimSpace(c.Message + "\nno verdict recorded: the test did not call report.Track and go test printed none")
	}
	c.Evidence = append(c.Evidence, rec.evidence...)
	// A subtest shows its ancestors' evidence too: a parent often makes the request its
	// subtests judge.
	for p := n; ; {
		i := strings.LastIndex(p, "/")
		if i < 0 {
			break
		}
		p = p[:i]
		if a, ok := r.tests[p]; ok {
			for _, ev := range a.evidence {
				ev.From = p
				c.Evidence = append(c.Evidence, ev)
			}
		}
	}
	return c, true
}
