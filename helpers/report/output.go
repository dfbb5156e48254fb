package report

import (
	"bufio"
	"flag"
	"io"
	"os"
	"regexp"
	"strings"
	"time"
)

// CaptureOutput copies the process's standard output, where package testing writes,
// through a parser that attributes each logged line to its test and reads the verdict
// lines, so checks need not repeat their messages to the recorder. Call it just before
// m.Run (testing takes os.Stdout when m.Run starts) and call stop after it: stop puts
// os.Stdout back and hands what was parsed to the recorder. Everything is still printed
// as before. It reads the three shapes go test prints: plain (failures only), -v, and
// -json (test2json framing).
//
// So that a test's verdict is known when it ends, which a run stopped early needs, it
// turns testing's output to test2json's framing (-test.v=test2json), which prints each
// subtest's verdict as it ends where -v prints them when the parent ends, and takes the
// framing off again on the way to the terminal unless go test -json asked for it.
func (r *Recorder) CaptureOutput() (stop func(), err error) {
	framed := true
	if f := flag.Lookup("test.v"); f != nil && f.Value.String() != "test2json" {
		if err := flag.Set("test.v", "test2json"); err != nil {
			return nil, err
		}
		framed = false
	}
	orig := os.Stdout
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	os.Stdout = pw
	p := &outputParser{tests: map[string]*parsed{}}
	done := make(chan struct{})
	term := &unframer{w: orig}
	go func() {
		defer close(done)
		br := bufio.NewReader(pr)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				if framed {
					_, _ = io.WriteString(orig, line)
				} else {
					term.line(line)
				}
				p.line(strings.TrimRight(line, "\r\n"))
			}
			if err != nil {
				// The write end closed (stop), or the pipe failed: keep stdout flowing.
				if err != io.EOF {
					_, _ = io.Copy(orig, pr)
				}
				return
			}
		}
	}()
	return func() {
		os.Stdout = orig
		if os.Stderr == pw {
			// m.Run points os.Stderr at os.Stdout under -test.v=test2json (go test
			// -json) so the two cannot interleave mid-line (testing.go, go.dev/issue/33419).
			os.Stderr = orig
		}
		pw.Close()
		<-done
		pr.Close()
		r.mergeOutput(p)
	}, nil
}

// unframer writes test2json-framed output as -v prints it: without the framing byte, and
// with a "=== NAME" line only where a message follows it (test2json's framing names the
// test before every report line too).
type unframer struct {
	w       io.Writer
	pending string // a "=== NAME" line, written if a message follows it
}

func (u *unframer) line(l string) {
	framed := strings.HasPrefix(l, "\x16")
	l = strings.TrimPrefix(l, "\x16")
	if framed && strings.HasPrefix(l, "=== NAME") {
		u.pending = l
		return
	}
	if !framed && u.pending != "" && strings.TrimSpace(strings.TrimPrefix(u.pending, "=== NAME")) != "" {
		_, _ = io.WriteString(u.w, u.pending)
	}
	u.pending = ""
	_, _ = io.WriteString(u.w, l)
}

// parsed is what go test's output said about one test.
type parsed struct {
	verdict  Verdict
	duration time.Duration
	messages []string // each t.Log/Error/Skip call, continuation lines joined
}

// outputParser reads go test's output line by line. A line belongs to the test named by
// the last "=== RUN/PAUSE/CONT/NAME" or "--- PASS/FAIL/SKIP" line; its first message line
// sets the indentation, deeper lines continue the message before.
type outputParser struct {
	tests   map[string]*parsed
	order   []string
	current string
	indent  int // of the current block's messages; -1 until its first line
}

var (
	runLine     = regexp.MustCompile(`^=== (?:RUN|PAUSE|CONT|NAME) *(.*)$`)
	verdictLine = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (.+) \(([0-9.]+)s\)$`)
)

func (p *outputParser) test(name string) *parsed {
	t, ok := p.tests[name]
	if !ok {
		t = &parsed{}
		p.tests[name] = t
		p.order = append(p.order, name)
	}
	return t
}

func (p *outputParser) line(l string) {
	l = strings.TrimPrefix(l, "\x16") // test2json framing (-test.v=test2json)
	if m := runLine.FindStringSubmatch(l); m != nil {
		p.current, p.indent = strings.TrimSpace(m[1]), -1
		return
	}
	if m := verdictLine.FindStringSubmatch(l); m != nil {
		t := p.test(m[2])
		t.verdict = Verdict(m[1])
		if secs, err := time.ParseDuration(m[3] + "s"); err == nil {
			t.duration = secs
		}
		p.current, p.indent = m[2], -1
		return
	}
	switch {
	case p.current == "", l == "", l == "PASS", l == "FAIL", strings.HasPrefix(l, "ok  \t"), strings.HasPrefix(l, "FAIL\t"),
		strings.HasPrefix(l, "testing: warning: no tests to run"):
		return
	}
	t := p.test(p.current)
	n := len(l) - len(strings.TrimLeft(l, " "))
	if p.indent < 0 || n < p.indent {
		p.indent = n
	}
	if n > p.indent && len(t.messages) > 0 {
		// Continuation: testing indents a message's later lines 4 more spaces.
		cont := l[min(n, p.indent+4):]
		t.messages[len(t.messages)-1] += "\n" + cont
		return
	}
	t.messages = append(t.messages, l[n:])
}
