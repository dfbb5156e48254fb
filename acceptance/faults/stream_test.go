package faults

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/fixtures/gguf"
	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

// Phrases of TestChatStream/incremental's two verdicts (acceptance/chat_test.go).
const (
	streamBuffered = "reached the client only when the generation had ended, in one burst"
	streamReplayed = "held back until after the generation, then passed on event by event"
)

// clineStreams are the checks read from Cline's long streams. Its task sends no
// max_tokens, so on the random fixture it streams until the context is full, and a tool
// call streams until the call closes: held until the generation ends, such a stream
// outlasts the suite's request timeout on a busy machine (or nginx's buffers: 502), and
// every check made of it may fail with a stream fault too.
var clineStreams = []string{"TestClineRequest/task", "TestClineRequest/usage", "TestClineRequest/role_first", "TestClineRequest/one_id",
	"TestClineRequest/deltas_carry_content", "TestClineRequest/finish_reason_last", "TestClineRequest/no_control_tokens",
	"TestClineRequest/context_window", "TestClineRequest/concurrency", "TestClineToolCall"}

// streamFaults break whether a stream's content reaches the client as it is generated.
// (stream_buffered, nginx's own buffering, is in faults.)
func streamFaults() []fault {
	replay := &engineRelay{wrap: func(w http.ResponseWriter) relayWriter { return &replayWriter{ResponseWriter: w} }}
	return []fault{
		{
			// A hop in front of the engine that keeps the whole stream until the engine has
			// finished, then replays it event by event at the pace the engine wrote it
			// (replayGap at most): every event its own write, so counting reads would see a
			// perfect stream.
			name:    "stream_replayed",
			tamper:  replay.tamper,
			after:   replay.stopWithTest,
			fails:   map[string]string{"TestChatStream/incremental": streamReplayed},
			mayFail: clineStreams,
		},
	}
}

// fastSpec is a fixture model far faster than the default: a 64-wide model generates
// thousands of tokens per second here, the speed at which a relay's coalescing turns many
// events into one read.
func fastSpec() gguf.Spec {
	s := gguf.DefaultSpec()
	s.Embedding, s.Blocks, s.Heads, s.FeedForward = 64, 2, 4, 128
	return s
}

// fastEngine makes the instance's engine load fastSpec's model instead of the default one.
func fastEngine(f *reference.Files) error {
	path, err := gguf.Ensure(filepath.Dir(f.Model), fastSpec())
	if err != nil {
		return err
	}
	i := slices.Index(f.Engine, "--model")
	if i < 0 || i+1 >= len(f.Engine) || f.Engine[i+1] != f.Model {
		return fmt.Errorf("no --model %s in the engine's arguments %q", f.Model, f.Engine)
	}
	f.Engine[i+1], f.Model = path, path
	return nil
}

// coalesceEvery is how often the false-alarm proof's relay passes on what it collected.
const coalesceEvery = 25 * time.Millisecond

// contentTiming matches the incremental check's log line of a stream judged on time.
var contentTiming = regexp.MustCompile(`content arrived as generated: first content at (\S+) of a (\S+) stream \(max_tokens (\d+): (\d+) content events.*?, (\d+) content events/s`)

// TestStreamWithoutFalseAlarm: a correct appliance whose engine generates thousands of
// tokens per second, behind an extra relay that passes the stream on only every
// coalesceEvery, passes the whole suite. On an idle machine the test's 48-token stream then
// arrives in one or two reads within a few tens of milliseconds, as a buffered one would;
// the incremental check must ask for a stream long enough to judge (named in its log)
// rather than call it buffered.
func TestStreamWithoutFalseAlarm(t *testing.T) {
	t.Parallel()
	coalesce := &engineRelay{wrap: func(w http.ResponseWriter) relayWriter {
		return &coalescingWriter{ResponseWriter: w, every: coalesceEvery}
	}}
	in := startInstance(t, reference.Options{Tamper: func(f *reference.Files) error {
		if err := fastEngine(f); err != nil {
			return err
		}
		return coalesce.tamper(f)
	}})
	coalesce.stopWithTest(t, in)
	run := dropUnjudgeable(t, runSuite(t, in))
	passedEveryTime(t, run, 1)
	m := contentTiming.FindStringSubmatch(run.output["TestChatStream/incremental"])
	if assert.NotNil(t, m, "the incremental check did not log the stream it judged:\n%s", run.output["TestChatStream/incremental"]) {
		// On a busy machine even this engine may be slow enough to judge the first stream.
		t.Logf("fast engine behind a relay flushing every %s: judged a stream of max_tokens %s (the test's own asks for 48): first content at %s of %s, %s content events, %s content events/s",
			coalesceEvery, m[3], m[1], m[2], m[4], m[5])
	}
}

// engineRelay is a hop in test code between the front door and the engine: it proxies
// every request to the engine and lets wrap decide how the response is written back.
type engineRelay struct {
	wrap func(http.ResponseWriter) relayWriter
	srv  *http.Server
}

// relayWriter is what an engineRelay writes a response through; finish runs when the
// engine's response has been copied in full.
type relayWriter interface {
	http.ResponseWriter
	finish()
}

// tamper starts the relay and points the front door's upstream at it, so the instance
// starts through it.
func (r *engineRelay) tamper(f *reference.Files) error {
	engineAddr := f.Upstream
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	proxy := engineProxy(engineAddr) // each write is flushed to the relayWriter, which decides
	r.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rw := r.wrap(w)
		defer rw.finish()
		proxy.ServeHTTP(rw, req)
	})}
	go func() { _ = r.srv.Serve(l) }()
	return replace(f.Site, "server "+engineAddr+";", "server "+l.Addr().String()+";")
}

// stopWithTest stops the relay when the test ends.
func (r *engineRelay) stopWithTest(t *testing.T, _ *reference.Instance) {
	require.NotNil(t, r.srv, "the relay's tamper did not run")
	t.Cleanup(func() { _ = r.srv.Close() })
}

// isStream tells whether the response being written is a server-sent event stream.
func isStream(h http.Header) bool {
	return strings.HasPrefix(h.Get("Content-Type"), "text/event-stream")
}

// replayGap caps a gap of the replay: on an idle machine the engine's own gaps are
// shorter, so the replay mimics the generation exactly; on a busy one a stall of the
// engine is not replayed too, which would double it and run into the suite's request
// timeout instead of the check.
const replayGap = 50 * time.Millisecond

// replayWriter sends a stream's headers at once but keeps its events until the engine
// has finished, then writes them one by one, each flushed, with the gaps the engine left
// between them (replayGap at most). Other responses pass through.
type replayWriter struct {
	http.ResponseWriter
	held   []heldWrite
	stream bool
}

type heldWrite struct {
	at   time.Time
	data []byte
}

func (w *replayWriter) WriteHeader(code int) {
	w.stream = isStream(w.Header())
	w.ResponseWriter.WriteHeader(code)
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *replayWriter) Write(p []byte) (int, error) {
	if !w.stream {
		return w.ResponseWriter.Write(p)
	}
	w.held = append(w.held, heldWrite{at: time.Now(), data: bytes.Clone(p)})
	return len(p), nil
}

// FlushError keeps the proxy's flushes from reaching the client while events are held.
func (w *replayWriter) FlushError() error {
	if w.stream {
		return nil
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *replayWriter) finish() {
	rc := http.NewResponseController(w.ResponseWriter)
	var prev time.Time
	for _, h := range w.held {
		if !prev.IsZero() {
			time.Sleep(min(h.at.Sub(prev), replayGap)) // the pace the engine wrote at
		}
		prev = h.at
		for _, event := range bytes.SplitAfter(h.data, []byte("\n\n")) {
			if len(event) == 0 {
				continue
			}
			if _, err := w.ResponseWriter.Write(event); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
	}
}

// coalescingWriter collects what the engine writes and passes it on every `every`, as a
// relay that batches its writes does; a correct stream through it still arrives while it
// is generated, a tick late at most.
type coalescingWriter struct {
	http.ResponseWriter
	every time.Duration

	mu      sync.Mutex
	pending bytes.Buffer
	ticker  *time.Ticker
	done    chan struct{}
	stopped chan struct{}
}

func (w *coalescingWriter) WriteHeader(code int) {
	w.ResponseWriter.WriteHeader(code)
	_ = http.NewResponseController(w.ResponseWriter).Flush()
	w.ticker, w.done, w.stopped = time.NewTicker(w.every), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(w.stopped)
		for {
			select {
			case <-w.ticker.C:
				w.pass()
			case <-w.done:
				return
			}
		}
	}()
}

func (w *coalescingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending.Write(p)
}

// FlushError keeps the proxy's per-write flushes from reaching the client: only ticks do.
func (w *coalescingWriter) FlushError() error { return nil }

// pass writes and flushes what was collected since the last tick.
func (w *coalescingWriter) pass() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pending.Len() == 0 {
		return
	}
	_, _ = w.ResponseWriter.Write(w.pending.Bytes())
	w.pending.Reset()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *coalescingWriter) finish() {
	if w.ticker != nil {
		w.ticker.Stop()
		close(w.done)
		<-w.stopped
	}
	w.pass()
}
