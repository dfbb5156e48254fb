package faults

import (
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

// TestEveryLeafIsRequired runs the suite once against a correct appliance, as a user
// would, and requires every leaf check that passed there (a test that asserted and has no
// subtests) to be named in the fails of at least one fault: a check no fault can make fail
// proves nothing. mayFail does not count, and names must match exactly.
func TestEveryLeafIsRequired(t *testing.T) {
	t.Parallel()
	in := startInstance(t, reference.Options{})
	run := runSuite(t, in)
	leaves := run.leaves()
	require.NotEmpty(t, leaves, "no leaf check passed against a correct appliance:\n%s", run.all)
	required := map[string][]string{}
	for _, f := range faults() {
		for name := range f.fails {
			required[name] = append(required[name], f.name)
		}
	}
	var missing []string
	for _, leaf := range leaves {
		if len(required[leaf]) == 0 {
			missing = append(missing, leaf)
			continue
		}
		sort.Strings(required[leaf])
		t.Logf("%s: required by %d fault(s): %s", leaf, len(required[leaf]), strings.Join(required[leaf], ", "))
	}
	t.Logf("%d leaf checks, %d required by a fault", len(leaves), len(leaves)-len(missing))
	assert.Empty(t, missing, "%d leaf checks no fault requires to fail (add a fault that breaks each for its own reason):\n  %s",
		len(missing), strings.Join(missing, "\n  "))
}

// leaves are the tests that passed every time they ran and have no subtests: the checks
// that asserted something. A skipped test judged nothing, so it is not one.
func (r *suiteRun) leaves() []string {
	var out []string
	for name, actions := range r.results {
		if !allPass(actions) {
			continue
		}
		parent := false
		for other := range r.results {
			if isAncestor(name, other) {
				parent = true
				break
			}
		}
		if !parent {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func allPass(actions []string) bool {
	for _, a := range actions {
		if a != "pass" {
			return false
		}
	}
	return len(actions) > 0
}
