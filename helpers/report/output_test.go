package report

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The three shapes go test prints the same run in (go1.26: a parent logging, a
// parallel subtest failing with a two-line message, a nested skip).
const (
	plainOutput = `--- FAIL: TestA (0.00s)
    x_test.go:6: top log
    --- FAIL: TestA/sub_one (0.25s)
        x_test.go:9: fail msg
            second line
FAIL
FAIL	scratch/x	0.015s
`
	verboseOutput = `=== RUN   TestA
    x_test.go:6: top log
=== RUN   TestA/sub_one
=== PAUSE TestA/sub_one
=== RUN   TestA/sub2
=== PAUSE TestA/sub2
=== CONT  TestA/sub_one
    x_test.go:9: fail msg
        second line
=== CONT  TestA/sub2
=== RUN   TestA/sub2/deep
    x_test.go:13: skip reason
=== NAME  TestA/sub2
    x_test.go:14: sub2 log
--- FAIL: TestA (0.00s)
    --- FAIL: TestA/sub_one (0.25s)
    --- PASS: TestA/sub2 (0.00s)
        --- SKIP: TestA/sub2/deep (0.00s)
=== RUN   TestB
    x_test.go:17: b log
--- PASS: TestB (1.50s)
FAIL
FAIL	scratch/x	0.012s
`
	json2Output = "\x16=== RUN   TestA\n    x_test.go:6: top log\n\x16=== RUN   TestA/sub_one\n\x16=== PAUSE TestA/sub_one\n" +
		"\x16=== NAME  TestA\n\x16=== RUN   TestA/sub2\n\x16=== PAUSE TestA/sub2\n\x16=== NAME  TestA\n\x16=== CONT  TestA/sub_one\n" +
		"    x_test.go:9: fail msg\n        second line\n\x16--- FAIL: TestA/sub_one (0.25s)\n\x16=== CONT  TestA/sub2\n" +
		"\x16=== RUN   TestA/sub2/deep\n    x_test.go:13: skip reason\n\x16--- SKIP: TestA/sub2/deep (0.00s)\n\x16=== NAME  TestA/sub2\n" +
		"    x_test.go:14: sub2 log\n\x16--- PASS: TestA/sub2 (0.00s)\n\x16--- FAIL: TestA (0.00s)\n\x16=== NAME  \n\x16=== RUN   TestB\n" +
		"    x_test.go:17: b log\n\x16--- PASS: TestB (1.50s)\n\x16=== NAME  \n\x16FAIL\n"
)

func TestOutputParser(t *testing.T) {
	t.Parallel()
	for name, out := range map[string]string{"plain": plainOutput, "verbose": verboseOutput, "json": json2Output} {
		p := &outputParser{tests: map[string]*parsed{}}
		for _, l := range strings.Split(out, "\n") {
			p.line(l)
		}
		assert.Equal(t, []string{"x_test.go:6: top log"}, p.tests["TestA"].messages, name)
		assert.Equal(t, Fail, p.tests["TestA"].verdict, name)
		sub := p.tests["TestA/sub_one"]
		assert.Equal(t, []string{"x_test.go:9: fail msg\nsecond line"}, sub.messages, name)
		assert.Equal(t, Fail, sub.verdict, name)
		assert.Equal(t, 250*time.Millisecond, sub.duration, name)
		if name == "plain" {
			assert.NotContains(t, p.tests, "TestB", "plain output says nothing of a pass")
			continue
		}
		assert.Equal(t, []string{"x_test.go:13: skip reason"}, p.tests["TestA/sub2/deep"].messages, name)
		assert.Equal(t, Skip, p.tests["TestA/sub2/deep"].verdict, name)
		assert.Equal(t, []string{"x_test.go:14: sub2 log"}, p.tests["TestA/sub2"].messages, name)
		assert.Equal(t, []string{"x_test.go:17: b log"}, p.tests["TestB"].messages, name)
		assert.Equal(t, Pass, p.tests["TestB"].verdict, name)
		assert.Equal(t, 1500*time.Millisecond, p.tests["TestB"].duration, name)
	}
}

// TestUnframer: test2json-framed output reaches the terminal as -v prints it: no framing
// byte, and a "=== NAME" line only where a message of that test follows.
func TestUnframer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{"report lines", []string{"\x16=== RUN   TestA\n", "\x16=== NAME  TestA\n", "\x16--- PASS: TestA (0.00s)\n"},
			"=== RUN   TestA\n--- PASS: TestA (0.00s)\n"},
		{"message after a switch", []string{"\x16=== CONT  TestB\n", "\x16=== NAME  TestA\n", "    a_test.go:4: hello\n"},
			"=== CONT  TestB\n=== NAME  TestA\n    a_test.go:4: hello\n"},
		{"unnamed", []string{"\x16=== NAME  \n", "acceptance: 30 model calls\n"}, "acceptance: 30 model calls\n"},
		{"a test's own text", []string{"=== NAME is not framed\n"}, "=== NAME is not framed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			u := &unframer{w: &b}
			for _, l := range tt.in {
				u.line(l)
			}
			assert.Equal(t, tt.want, b.String())
		})
	}
}
