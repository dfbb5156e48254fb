package report

import (
	"bufio"
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
func (r *Recorder) CaptureOutput() (stop func(), err error) {
	orig := os.Stdout
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	os.Stdout = pw
	p := &outputParser{tests: map[string]*parsed{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		br := bufio.NewReader(io.TeeReader(pr, orig))
		for {
			line, err := br.ReadString('\n')
			if line != "" {
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
