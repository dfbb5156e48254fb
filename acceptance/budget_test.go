package acceptance

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
)

// errSuiteTimeout is why a request stopped when go test's -timeout was about to end the run.
var errSuiteTimeout = fmt.Errorf("go test's -timeout is about to end this run")

// suiteEnd is when requests stop, a little before go test's -timeout would panic: a check
// cut there fails with its reason instead of the whole run dying without a report.
func suiteEnd() time.Time {
	kill, total := killTime()
	return kill.Add(-suiteMargin(total))
}

// suiteMargin is how long before go test's -timeout (total) the requests stop.
func suiteMargin(total time.Duration) time.Duration {
	return min(max(total/20, 10*time.Second), time.Minute)
}

// checkSuiteTimeout refuses, before any check, a -timeout too short for the model calls a
// certification of a real appliance may need at -request-timeout each.
func checkSuiteTimeout() error {
	_, total := killTime()
	need := copilot.SuiteTimeout(*requestTimeout)
	if total >= need {
		return nil
	}
	return fmt.Errorf("go test -timeout %s is too short: a certification makes up to %d model calls of up to -request-timeout %s each (one after another on a one-slot CPU appliance), plus %s; "+
		"rerun with -timeout %s (make certify sizes it), or lower -request-timeout for a faster instance",
		total, copilot.ModelCalls, *requestTimeout, copilot.SuiteOverhead, need)
}

// checkModelCalls fails the run when it sent more model calls than copilot.ModelCalls per
// repetition: the timeout that make certify computes would no longer hold. It prints the
// count and returns it as a sentence for the report.
func checkModelCalls() (string, error) {
	runs := int64(1)
	if f := flag.Lookup("test.count"); f != nil {
		if n, ok := f.Value.(flag.Getter).Get().(uint); ok && n > 0 {
			runs = int64(n)
		}
	}
	calls := target.ModelCalls()
	message := fmt.Sprintf("%d model calls in %d run(s) (budget %d per run)", calls, runs, copilot.ModelCalls)
	fmt.Fprintln(os.Stderr, "acceptance:", message)
	if calls > runs*copilot.ModelCalls {
		return message, fmt.Errorf("%d model calls in %d run(s), more than copilot.ModelCalls (%d) per run: raise it, or the -timeout make certify computes is too short", calls, runs, copilot.ModelCalls)
	}
	return message, nil
}

// requestContext bounds one exchange with the instance: -request-timeout, and never past
// suiteEnd. A check cut by the suite's end says so.
func requestContext(t *testing.T) context.Context {
	t.Helper()
	deadline := time.Now().Add(*requestTimeout)
	var cause error = context.DeadlineExceeded
	if end := suiteEnd(); end.Before(deadline) {
		deadline, cause = end, errSuiteTimeout
	}
	ctx, cancel := context.WithDeadlineCause(context.Background(), deadline, cause)
	t.Cleanup(func() {
		if context.Cause(ctx) == errSuiteTimeout {
			t.Errorf("stopped: %v; rerun with a longer -timeout (make certify sizes it from -request-timeout: %s)", errSuiteTimeout, copilot.SuiteTimeout(*requestTimeout))
		}
		cancel()
	})
	return ctx
}
