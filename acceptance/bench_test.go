package acceptance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/bench"
	"github.com/slm-copilot/slm-copilot/helpers/metrics"
	"github.com/slm-copilot/slm-copilot/helpers/reference"
	"github.com/slm-copilot/slm-copilot/helpers/report"
)

// -bench: after the checks, the load profile of helpers/bench against the instance. Its
// requests go through a client of their own, not the checks' counted one: the model-call
// budget (copilot.ModelCalls) sizes the -timeout of the checks, and the bench has bounds
// of its own (requests and time per level), which the run prints with the time it may
// take (bench.Budget) beside what -timeout leaves; every request stops before the
// suite's end, as the checks' do.
var (
	benchFlag = flag.Bool("bench", false, "after the checks, run the load profile: concurrency levels, Cline's ~10k-token prefill and prompt cache, and (when the engine is reachable: the embedded reference, or -bench-engine) the front door's overhead; "+
		"its requests are not model calls of the checks' budget, and -timeout must leave room for them (the run prints how long it may take)")
	benchConcurrency   = intsFlag("bench-concurrency", bench.DefaultConcurrency, "-bench: the concurrency levels, comma-separated")
	benchPromptTokens  = positiveIntFlag("bench-prompt-tokens", bench.DefaultPromptTokens, "-bench: prompt tokens of each load request (sized on the instance's own tokenizer)")
	benchOutputTokens  = positiveIntFlag("bench-output-tokens", bench.DefaultOutputTokens, "-bench: max_tokens of each request (ignore_eos: the answer is that long)")
	benchRequests      = positiveIntFlag("bench-requests", bench.DefaultRequests, "-bench: requests per concurrency level at most (at least the level's concurrency)")
	benchDuration      = positiveDurationFlag("bench-duration", bench.DefaultDuration, "-bench: time per concurrency level (and for the front door's overhead) after which no request starts; those in flight finish within -request-timeout")
	benchOverheadPairs = positiveIntFlag("bench-overhead-pairs", bench.DefaultOverheadPairs, "-bench: alternating pairs (front door, engine) measuring the front door's overhead")
	benchEngineURL     = urlFlag("bench-engine", "-bench: the engine behind the front door, reached directly to measure the front door's overhead: http://127.0.0.1:8080 on the appliance itself (the embedded reference knows its own)")
	benchEngineKey     = flag.String("bench-engine-key-file", "", "-bench: file holding the key the front door presents to the engine (/etc/nginx/slm-copilot/engine.key on the appliance), sent as Bearer with -bench-engine")
)

// benchReference is the embedded reference appliance when the run started one: its
// engine is reachable from here, so -bench measures the front door's overhead.
var benchReference *reference.Instance

// runBench runs the load profile when -bench is set: it prints each part as it ends and
// a table at the end, gives the result to the report (results.json metrics.bench) and
// records a check per part (Bench/concurrency_N, Bench/cline, Bench/front_door_overhead).
// It returns 1 when a part failed (a request failed, or the suite's end cut it), else 0.
func runBench() int {
	if !*benchFlag {
		if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
			// go test takes -bench for its own benchmark pattern before the suite sees it.
			fmt.Fprintf(os.Stderr, "acceptance: go test read -bench=%s as its benchmark pattern: for the load profile pass the suite's -bench after -args (go test ./acceptance ... -args -bench), or run the compiled suite\n", f.Value)
		}
		return 0
	}
	slos, err := metrics.ParseSLOs(reportFlags.SLO) // checked before the run
	if err != nil {
		fmt.Fprintln(os.Stderr, "acceptance: -bench: -slo:", err)
		return 2
	}
	front := &bench.Endpoint{
		Name: "front door", URL: target.URL("/v1/chat/completions"),
		Transport: &http.Transport{TLSClientConfig: target.TLSConfig(), MaxIdleConnsPerHost: slices.Max(*benchConcurrency)},
		Header:    http.Header{"Authorization": {"Bearer " + target.Password}}, Model: target.Model,
		RequestTimeout: *requestTimeout,
	}
	engine, noEngine := benchEngine()
	plan := bench.Plan{
		Front: front, Engine: engine,
		Concurrency: *benchConcurrency, PromptTokens: *benchPromptTokens, OutputTokens: *benchOutputTokens,
		Requests: *benchRequests, Duration: *benchDuration, SLOs: slos, OverheadPairs: *benchOverheadPairs,
		Cline:    &bench.Cline{Tokens: clineSizedTokens, Build: benchClineRequest, FollowUp: benchClineFollowUp},
		Progress: os.Stderr,
	}
	end := benchEnd()
	left := time.Until(end).Round(time.Second)
	need := bench.Budget(plan)
	fmt.Fprintf(os.Stderr, "acceptance: -bench: levels %v, ≈%d prompt and %d output tokens, at most %d requests and %s per level; it may take up to %s, and the run's -timeout leaves %s\n",
		*benchConcurrency, *benchPromptTokens, *benchOutputTokens, *benchRequests, *benchDuration, need, left)
	if left < need {
		fmt.Fprintf(os.Stderr, "acceptance: -bench: it stops where the -timeout ends; for the whole bench give -timeout %s more\n", need-left)
	}
	ctx, cancel := context.WithDeadlineCause(context.Background(), end, errSuiteTimeout)
	defer cancel()
	res := bench.Run(ctx, plan)
	res.WriteTable(os.Stderr)
	if err := rec.SetBench(res); err != nil {
		fmt.Fprintln(os.Stderr, "acceptance: -bench:", err)
	}
	code := 0
	result := func(id string, v report.Verdict, d time.Duration, message string) {
		if v == report.Fail {
			code = 1
		}
		rec.Result(report.BenchPrefix+"/"+id, v, d, message)
	}
	cut := "; rerun with a longer -timeout (the bench prints what it needs)"
	if res.LoadError != "" {
		result("load", report.Fail, 0, "not measured: "+res.LoadError)
	}
	for _, lv := range res.Levels {
		s := lv.Summary
		d := time.Duration(s.WindowMS * float64(time.Millisecond))
		message := fmt.Sprintf("%s (stopped by %s)", s, lv.Stop)
		switch {
		case lv.Stop != bench.StopRequests && lv.Stop != bench.StopDuration:
			result(fmt.Sprintf("concurrency_%d", lv.Concurrency), report.Fail, d, message+": "+errSuiteTimeout.Error()+cut)
		case s.Failed > 0 || s.Completed == 0:
			result(fmt.Sprintf("concurrency_%d", lv.Concurrency), report.Fail, d, fmt.Sprintf("%s: %d of %d requests failed, the first: %s", message, s.Failed, s.Requests, lv.FirstError()))
		default:
			result(fmt.Sprintf("concurrency_%d", lv.Concurrency), report.Pass, d, message)
		}
	}
	for _, c := range plan.Concurrency[len(res.Levels):] {
		if res.LoadError == "" {
			result(fmt.Sprintf("concurrency_%d", c), report.Fail, 0, "not run: "+errSuiteTimeout.Error()+cut)
		}
	}
	switch {
	case res.Cline != nil:
		result("cline", report.Pass, res.Cline.First.E2E+res.Cline.FollowUp.E2E, res.Cline.String())
	case res.ClineError != "":
		result("cline", report.Fail, 0, "not measured: "+res.ClineError)
	default:
		result("cline", report.Fail, 0, "not run: "+errSuiteTimeout.Error()+cut)
	}
	switch {
	case engine == nil:
		result("front_door_overhead", report.Skip, 0, "not measured: "+noEngine)
	case res.FrontDoor != nil:
		result("front_door_overhead", report.Pass, 0, res.FrontDoor.String())
	case res.FrontDoorError != "":
		result("front_door_overhead", report.Fail, 0, "not measured: "+res.FrontDoorError)
	default:
		result("front_door_overhead", report.Fail, 0, "not run: "+errSuiteTimeout.Error()+cut)
	}
	return code
}

// benchEnd is when the bench stops: where the checks' requests stop, and in deploy mode
// before teardown begins.
func benchEnd() time.Time {
	end := suiteEnd()
	if deployMode() {
		kill, total := killTime()
		if teardown := kill.Add(-teardownMargin(total) - 10*time.Second); teardown.Before(end) {
			end = teardown
		}
	}
	return end
}

// benchEngine is the engine behind the front door, reached directly, or why there is
// none.
func benchEngine() (*bench.Endpoint, string) {
	var base, keyFile string
	switch {
	case *benchEngineURL != "":
		base, keyFile = *benchEngineURL, *benchEngineKey
	case benchReference != nil:
		base, keyFile = "http://"+benchReference.Files.Upstream, benchReference.Files.EngineKey
	default:
		return nil, "the engine behind the front door is not reachable from here (on the appliance itself: -bench-engine http://127.0.0.1:8080 -bench-engine-key-file /etc/nginx/slm-copilot/engine.key)"
	}
	e, err := bench.Engine(base, keyFile, target.Model, *requestTimeout)
	if err != nil {
		return nil, err.Error()
	}
	return e, ""
}

// benchClineRequest is Cline's first request of a task (clineBody's messages) with units
// tool sections, the id first in its system prompt: the checks sent that system prompt
// before, and the profile wants a cold prompt cache.
func benchClineRequest(units int, id string) bench.Request {
	msgs := []any{map[string]any{"role": "system", "content": "Session " + id + ".\n\n" + clinePrompt(units)}}
	for _, m := range clineHistory {
		msgs = append(msgs, m)
	}
	return bench.Request{Messages: msgs}
}

// benchClineFollowUp is the task's next request as Cline sends it: everything before,
// the model's answer, the tool's result.
func benchClineFollowUp(first bench.Request, answer string) bench.Request {
	next := first
	next.Messages = append(slices.Clone(first.Messages),
		map[string]any{"role": "assistant", "content": answer},
		map[string]any{"role": "user", "content": []map[string]string{
			{"type": "text", "text": "[replace_in_file for 'add_test.go'] Result:"},
			{"type": "text", "text": "The content was successfully saved to add_test.go."},
			{"type": "text", "text": "<environment_details>\n# Current Time\n2026-11-27 12:01:00 UTC\n</environment_details>"},
		}})
	return next
}

// intsFlag defines a flag of positive integers, comma-separated, checked as it is parsed.
func intsFlag(name string, def []int, usage string) *[]int {
	v := slices.Clone(def)
	defText := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(def)), ","), "[]")
	flag.Func(name, usage+" (default "+defText+")", func(s string) error {
		var out []int
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return fmt.Errorf("%q: want positive integers, comma-separated (1,2,4)", s)
			}
			out = append(out, n)
		}
		v = out
		return nil
	})
	return &v
}

// positiveIntFlag defines an integer flag that refuses zero and negatives as it is parsed.
func positiveIntFlag(name string, def int, usage string) *int {
	v := def
	flag.Func(name, fmt.Sprintf("%s (default %d)", usage, def), func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("%q: want a positive integer", s)
		}
		v = n
		return nil
	})
	return &v
}

// positiveDurationFlag defines a duration flag that refuses zero and negatives.
func positiveDurationFlag(name string, def time.Duration, usage string) *time.Duration {
	v := def
	flag.Func(name, fmt.Sprintf("%s (default %s)", usage, def), func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q: want a positive duration (3m)", s)
		}
		v = d
		return nil
	})
	return &v
}

// urlFlag defines a flag holding an http(s)://host[:port] base address.
func urlFlag(name, usage string) *string {
	var v string
	flag.Func(name, usage, func(s string) error {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
			return errors.New("want http://HOST:PORT, the engine's base address")
		}
		v = s
		return nil
	})
	return &v
}
