// Package suite is a small acceptance-like suite that uses helpers/report the way the
// real one does: TestMain captures go test's output around m.Run, each test and subtest
// calls Track first, evidence and streams are recorded by name, and the report is
// written at the end. helpers/report's tests run it with go test (plain, -v, -json)
// and read what it wrote. It fails on purpose.
package suite

import (
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
	"github.com/slm-copilot/slm-copilot/helpers/report"
)

var (
	rec    *report.Recorder
	canary = os.Getenv("REPORT_SUITE_CANARY")
)

func TestMain(m *testing.M) {
	flag.Parse()
	dir := os.Getenv("REPORT_SUITE_DIR")
	if dir == "" || canary == "" {
		fmt.Fprintln(os.Stderr, "run by helpers/report's tests: REPORT_SUITE_DIR and REPORT_SUITE_CANARY are required")
		os.Exit(2)
	}
	rec = report.NewRecorder(report.Run{Mode: report.ModeEmbedded, Endpoint: "https://127.0.0.1:1", Model: "fixture"},
		report.NewRedactor([]string{"copilot"}, canary))
	if err := rec.SetSLOs("ttft_p99=5s"); err != nil {
		panic(err)
	}
	stop, err := rec.CaptureOutput()
	if err != nil {
		panic(err)
	}
	code := m.Run()
	stop()
	rec.Result("Suite/model_calls", report.Pass, 0, "2 model calls of 30")
	if err := rec.WriteDir(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	if err := rec.Summary(os.Stderr, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	os.Exit(code)
}

func TestAuthentication(t *testing.T) {
	rec.Track(t)
	t.Log("parent log line")
	for _, c := range []string{"none", "wrong basic", "right basic"} {
		t.Run(c, func(t *testing.T) {
			rec.Track(t)
			t.Parallel()
			req, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1:1/v1/models", nil)
			req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("copilot:"+canary)))
			rec.Evidence(t.Name(), report.Exchange(req, &http.Response{StatusCode: 401, Header: http.Header{"Content-Type": {"application/json"}}},
				[]byte(`{"error":"unauthorized","echo":"`+canary+`"}`)))
			if c == "wrong basic" {
				t.Errorf("admitted with the wrong password %s\nsecond line of the message", canary)
			}
			t.Logf("checked %s", c)
		})
	}
}

func TestCertificate(t *testing.T) {
	rec.Track(t)
	t.Run("chain", func(t *testing.T) {
		rec.Track(t)
		t.Skip("self-signed and no -ca-cert: nothing to verify the chain against")
	})
	t.Run("validity", func(t *testing.T) { rec.Track(t) })
}

func TestOwnFailure(t *testing.T) {
	rec.Track(t)
	t.Run("fine", func(t *testing.T) { rec.Track(t) })
	t.Error("the parent's own check failed")
}

// TestChatStream streams from a local signal generator (content after 200 ms, then
// every 50 ms) through copilot.Tap.
func TestChatStream(t *testing.T) {
	rec.Track(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		time.Sleep(200 * time.Millisecond)
		for i := range 5 {
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"t%d \"}}]}\n\n", i)
			f.Flush()
			time.Sleep(50 * time.Millisecond)
		}
		fmt.Fprint(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":5}}\n\ndata: [DONE]\n\n")
	})}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	tap := &copilot.Tap{Base: &http.Transport{}}
	resp, err := (&http.Client{Transport: tap, Timeout: 30 * time.Second}).Post("http://"+ln.Addr().String()+"/v1/chat/completions", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	s := rec.Stream(t.Name(), "POST /v1/chat/completions", tap.Last())
	t.Logf("TTFT %s over %d output events", s.TTFT.Round(time.Millisecond), s.OutputEvents)
}
