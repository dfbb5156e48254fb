package slmcopilot_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	slmcopilot "github.com/slm-copilot/slm-copilot/appliances/slm-copilot"
	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

// writeReport writes a report with appliance.sh's own write_report into root, as the
// configure stage does, and returns its path.
func writeReport(t *testing.T, root, password string, env ...string) string {
	t.Helper()
	require.NoError(t, slmcopilot.Unpack(filepath.Join(root, "appliance")))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env = append([]string{"SLM_ADDRESSES=10.0.0.5", "SLM_HTTPS_LISTEN=0.0.0.0:443"}, env...)
	out, err := slmcopilot.Command(ctx, root, "write_report", env, password).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return filepath.Join(root, "etc", "one-appliance", "config")
}

// stubSuite is a stand-in for the compiled acceptance suite that prints its arguments and
// whether it got the password through the environment (never the password itself).
func stubSuite(t *testing.T) string {
	t.Helper()
	stub := filepath.Join(t.TempDir(), "suite.test")
	require.NoError(t, os.WriteFile(stub, []byte(`#!/bin/sh
printf 'arg=%s\n' "$@"
[ -n "${SLM_COPILOT_PASSWORD:-}" ] && echo "password-env=set"
exit 0
`), 0o755))
	return stub
}

// certify runs the wrapper with root as SLM_ROOT and binary as the suite.
func certify(t *testing.T, root, binary string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("./slm-copilot-certify", args...)
	cmd.Env = append(os.Environ(), "SLM_ROOT="+root, "SLM_CERTIFY_BINARY="+binary)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestCertifyWrapper(t *testing.T) {
	t.Parallel()
	const canary = "Canary-Pw-7f3a9c"
	stub := stubSuite(t)

	t.Run("self-signed", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		writeReport(t, root, canary)
		out, err := certify(t, root, stub, "-test.run=TestChat")
		require.NoError(t, err, out)
		assert.NotContains(t, out, canary, "the password must not reach the output or the suite's arguments")
		assert.Contains(t, out, "password-env=set")
		want := []string{"-test.v", "-test.timeout=0", "-endpoint=https://10.0.0.5", "-username=copilot",
			"-model=devstral-small-2", "-ca-cert=" + filepath.Join(root, "etc/nginx/slm-copilot/tls/cert.pem"), "-test.run=TestChat"}
		var got []string
		for _, line := range strings.Split(out, "\n") {
			if a, ok := strings.CutPrefix(line, "arg="); ok {
				got = append(got, a)
			}
		}
		assert.Equal(t, want, got, "extra arguments come last, so they override ours")
	})
	t.Run("CA-signed: no -ca-cert", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		writeReport(t, root, canary, "ONEAPP_COPILOT_TLS_CERT=x")
		out, err := certify(t, root, stub)
		require.NoError(t, err, out)
		assert.NotContains(t, out, "-ca-cert")
	})
	t.Run("no report", func(t *testing.T) {
		t.Parallel()
		out, err := certify(t, t.TempDir(), stub)
		require.Error(t, err)
		assert.Contains(t, out, "no report at")
	})
	t.Run("report without password", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		report := writeReport(t, root, canary)
		text := regexp.MustCompile(`(?m)^password .*\n`).ReplaceAllString(readFile(t, report), "")
		require.NoError(t, os.WriteFile(report, []byte(text), 0o600))
		out, err := certify(t, root, stub)
		require.Error(t, err)
		assert.Contains(t, out, "has no 'password'")
		assert.NotContains(t, out, "arg=", "the suite must not run")
	})
	t.Run("no suite", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		writeReport(t, root, canary)
		out, err := certify(t, root, filepath.Join(root, "missing.test"))
		require.Error(t, err)
		assert.Contains(t, out, "no acceptance suite at")
	})
}

func TestCertifyWrapperShellcheck(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("shellcheck", "-x", "slm-copilot-certify").CombinedOutput()
	assert.NoError(t, err, "%s", out)
}

// standinLib is our stand-in for marketplace-community's lib/community: app_handler.rb and
// clitester/, written from upstream's source at master fa6fbbd.
const standinLib = "testdata/certlib"

// acceptanceBinary builds the acceptance suite as the image carries it (go test -c) into a
// directory of t.
func acceptanceBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "slm-copilot-certify.test")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, "github.com/slm-copilot/slm-copilot/acceptance").CombinedOutput()
	require.NoError(t, err, "go test -c ./acceptance: %s", out)
	return bin
}

// certTree lays out what the marketplace's app_readiness.rb runs in: the library (our
// stand-in) at lib/community and this appliance's metadata, tests.yaml and specs at
// appliances/slm-copilot. It returns the root.
func certTree(t *testing.T) string {
	t.Helper()
	return certTreeWith(t, readFile(t, "metadata.yaml"))
}

// certTreeWith is certTree with metadata as metadata.yaml.
func certTreeWith(t *testing.T, metadata string) string {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, os.CopyFS(filepath.Join(root, "lib", "community"), os.DirFS(standinLib)))
	app := filepath.Join(root, "appliances", applianceDir)
	require.NoError(t, os.CopyFS(filepath.Join(app, "tests"), os.DirFS("tests")))
	require.NoError(t, os.WriteFile(filepath.Join(app, "metadata.yaml"), []byte(metadata), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(app, "tests.yaml"), []byte(readFile(t, "tests.yaml")), 0o644))
	return root
}

// specRun is one run of the certification spec against a reference appliance.
type specRun struct {
	out      string
	err      error
	commands string // front-end commands the library issued
	tree     string
}

// runSpec runs the spec files of tests.yaml the way app_readiness.rb:29-41 does (rspec -f d,
// from lib/community). The stand-in VM is this machine, with SLM_ROOT set to in's root, the
// wrapper on PATH (after pathPrefix, if any) and suite as its acceptance suite. examples
// selects examples by name (rspec -e); none runs them all.
func runSpec(t *testing.T, suite string, in *reference.Instance, pathPrefix string, examples ...string) specRun {
	t.Helper()
	tree := certTree(t)
	bin := t.TempDir()
	wrapper, err := filepath.Abs("slm-copilot-certify")
	require.NoError(t, err)
	require.NoError(t, os.Symlink(wrapper, filepath.Join(bin, "slm-copilot-certify")))
	var entries []string
	require.NoError(t, yaml.Unmarshal([]byte(readFile(t, "tests.yaml")), &entries))
	args := []string{"-f", "d"}
	for _, e := range examples {
		args = append(args, "-e", e)
	}
	for _, e := range entries {
		args = append(args, "../../appliances/"+applianceDir+"/tests/"+e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rspec", args...)
	cmd.Dir = filepath.Join(tree, "lib", "community")
	log := filepath.Join(t.TempDir(), "frontend.log")
	path := bin + string(os.PathListSeparator) + os.Getenv("PATH")
	if pathPrefix != "" {
		path = pathPrefix + string(os.PathListSeparator) + path
	}
	cmd.Env = append(os.Environ(), "PATH="+path, "SLM_ROOT="+in.Files.Dir,
		"SLM_CERTIFY_BINARY="+suite, "SLM_STANDIN_LOG="+log, "IMAGES_URL=http://images.test/")
	out, err := cmd.CombinedOutput()
	commands, _ := os.ReadFile(log)
	t.Logf("rspec %s:\n%s", strings.Join(args, " "), out)
	return specRun{out: string(out), err: err, commands: string(commands), tree: tree}
}

// startAppliance starts a reference appliance on its own loopback address with the standard
// ports, as a VM has them (the suite checks the HTTP redirect on port 80), and writes the
// status one-apps writes once bootstrap returns (the reference runs no one-apps framework).
func startAppliance(t *testing.T, password, status string) *reference.Instance {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the reference appliance must listen on ports 443 and 80 as on a VM")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	addr := fmt.Sprintf("127.%d.%d.%d", 20+rand.IntN(60), rand.IntN(250), 1+rand.IntN(250))
	in, err := reference.Start(ctx, reference.Options{Password: password, Address: addr, StandardPorts: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = in.Close() })
	require.NoError(t, os.WriteFile(filepath.Join(in.Files.Dir, "etc", "one-appliance", "status"), []byte(status+"\n"), 0o600))
	return in
}

// probeSpec is a spec as the marketplace runs one, with an example that passes once the
// library has deployed: what it shows is what the library makes of metadata.yaml.
const probeSpec = `require_relative '../../../lib/community/app_handler'

describe 'the library on this metadata.yaml' do
    include_context('vm_handler')

    it('deploys') { expect(@info[:vm]).not_to be_nil }
end
`

// runLibrary runs probeSpec with rspec, as runSpec runs tests/*.rb, on a tree with metadata.
func runLibrary(t *testing.T, metadata string) specRun {
	t.Helper()
	tree := certTreeWith(t, metadata)
	spec := filepath.Join(tree, "appliances", applianceDir, "tests", "probe.rb")
	require.NoError(t, os.WriteFile(spec, []byte(probeSpec), 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rspec", "-f", "d", "../../appliances/"+applianceDir+"/tests/probe.rb")
	cmd.Dir = filepath.Join(tree, "lib", "community")
	log := filepath.Join(t.TempDir(), "frontend.log")
	cmd.Env = append(os.Environ(), "SLM_STANDIN_LOG="+log, "IMAGES_URL=http://images.test/")
	out, err := cmd.CombinedOutput()
	commands, _ := os.ReadFile(log)
	return specRun{out: string(out), err: err, commands: string(commands), tree: tree}
}

// TestCertificationLibraryOnBrokenMetadata runs our library stand-in on each brokenMetadata
// case: it raises the exception upstream raises, on the line of app_handler.rb that cites
// the upstream line, or issues the wrong front-end command; on metadata.yaml it deploys.
func TestCertificationLibraryOnBrokenMetadata(t *testing.T) {
	t.Parallel()
	standin := strings.Split(readFile(t, filepath.Join(standinLib, "app_handler.rb")), "\n")
	raisedAt := regexp.MustCompile(`app_handler\.rb:(\d+):in`)

	t.Run("metadata.yaml", func(t *testing.T) {
		t.Parallel()
		r := runLibrary(t, readFile(t, "metadata.yaml"))
		require.NoError(t, r.err, "%s", r.out)
		assert.Contains(t, r.commands, "onetemplate instantiate slm-copilot --context ")
		assert.Contains(t, r.commands, "onevm terminate --hard 0\n")
		assert.Contains(t, readFile(t, filepath.Join(r.tree, "appliances", applianceDir, "context.yaml")), "['context-kvm']")
	})
	for _, tc := range brokenMetadata {
		if tc.raises == "" && tc.frontend == "" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runLibrary(t, brokenMetadataText(t, tc.old, tc.new))
			if tc.frontend != "" {
				require.NoError(t, r.err, "%s", r.out)
				assert.Contains(t, r.commands, tc.frontend)
				return
			}
			require.Error(t, r.err, "%s", r.out)
			assert.Contains(t, r.out, tc.raises+":")
			m := raisedAt.FindStringSubmatch(r.out)
			require.NotNil(t, m, "no app_handler.rb line in:\n%s", r.out)
			n, err := strconv.Atoi(m[1])
			require.NoError(t, err)
			line := standin[n-1]
			assert.Regexp(t, regexp.QuoteMeta(tc.at)+`\b`, line, "it raised at line %s of the stand-in", m[1])
		})
	}
}

// TestCertificationSpec runs tests/*.rb with Debian's rspec against reference appliances:
// a correct one passes, and each broken one fails the example that covers it.
func TestCertificationSpec(t *testing.T) {
	if _, err := exec.LookPath("rspec"); err != nil {
		t.Fatalf("rspec not found (Debian's ruby-rspec, installed by make deps): %v", err)
	}
	const canary = "Canary-Pw-c3e8d1"
	suite := acceptanceBinary(t)

	t.Run("a correct appliance passes", func(t *testing.T) {
		in := startAppliance(t, canary, "bootstrap_success")
		r := runSpec(t, suite, in, "")
		require.NoError(t, r.err, "%s", r.out)
		assert.NotContains(t, r.out, canary)
		assert.Regexp(t, `(?m)^\s+passes the acceptance suite \(slm-copilot-certify\)$`, r.out)
		assert.Contains(t, r.out, "--- PASS: TestChat", "the acceptance suite's report reaches the spec's output")
		assert.Contains(t, r.out, "not booted with systemd", "the skip must say why")
		assert.Regexp(t, `(?m)^5 examples, 0 failures, 1 pending$`, r.out)

		// What the library asked of the front-end, from metadata.yaml.
		assert.Contains(t, r.commands, "oneimage create --name 'slm-copilot' -d 'default' --path http://images.test/slm-copilot.qcow2\n")
		instantiate := regexp.MustCompile(`(?m)^onetemplate instantiate slm-copilot --context "(.*)" --disk slm-copilot$`).FindStringSubmatch(r.commands)
		require.NotNil(t, instantiate, "front-end commands:\n%s", r.commands)
		var names []string
		for _, m := range regexp.MustCompile(`(?:^|,)([A-Z0-9_]+)=`).FindAllStringSubmatch(instantiate[1], -1) {
			if strings.HasPrefix(m[1], "ONEAPP_") {
				names = append(names, m[1])
			}
		}
		sort.Strings(names)
		assert.Equal(t, sortedKeys(applianceParams(t)), names, "the VM's context variables")
		assert.Contains(t, r.commands, "onevm terminate --hard 0\n")
		ctxYAML := readFile(t, filepath.Join(r.tree, "appliances", applianceDir, "context.yaml"))
		assert.Contains(t, ctxYAML, "['context-kvm']")
	})

	broken := []struct {
		name     string
		status   string
		examples []string
		breakIt  func(t *testing.T, in *reference.Instance) (path string)
		want     []string
	}{
		{
			name: "wrong password in the report", status: "bootstrap_success",
			examples: []string{"passes the acceptance suite"},
			breakIt: func(t *testing.T, in *reference.Instance) string {
				report := filepath.Join(in.Files.Dir, "etc", "one-appliance", "config")
				text := regexp.MustCompile(`(?m)^password( *)= .*$`).ReplaceAllString(readFile(t, report), "password$1= Canary-Wrong-5b1e")
				require.NoError(t, os.WriteFile(report, []byte(text), 0o600))
				return ""
			},
			// The suite's preflight ends the run at once with the cause (exit 2).
			want: []string{"slm-copilot-certify exited 2", "preflight: the front door at", "refuses the password with both Bearer and Basic"},
		},
		{
			name: "stopped engine", status: "bootstrap_success",
			examples: []string{"marks the engine ready", "passes the acceptance suite"},
			breakIt: func(t *testing.T, in *reference.Instance) string {
				in.StopEngine()
				return ""
			},
			want: []string{`Expected success for: bash -c "test -f \${SLM_ROOT:-}/run/slm-copilot/ready"`, "slm-copilot-certify exited 1"},
		},
		{
			name: "failed bootstrap", status: "bootstrap_failure",
			examples: []string{"finishes bootstrap"},
			want:     []string{"expected bootstrap_failure not to match /_failure/"},
		},
		{
			// systemd cannot run here: a root with /run/systemd/system and a systemctl that
			// reports one failed unit, in `systemctl --failed --plain --no-legend`'s format.
			name: "a failed unit", status: "bootstrap_success",
			examples: []string{"has no failed systemd unit"},
			breakIt: func(t *testing.T, in *reference.Instance) string {
				require.NoError(t, os.MkdirAll(filepath.Join(in.Files.Dir, "run", "systemd", "system"), 0o755))
				shim := t.TempDir()
				require.NoError(t, os.WriteFile(filepath.Join(shim, "systemctl"), []byte(
					"#!/bin/sh\n[ \"$*\" = '--failed --plain --no-legend' ] || exit 64\n"+
						"echo 'local-ai.service loaded failed failed LocalAI engine'\n"), 0o755))
				return shim
			},
			want: []string{"failed units:", "local-ai.service loaded failed failed LocalAI engine"},
		},
	}
	for _, tc := range broken {
		t.Run(tc.name+" fails", func(t *testing.T) {
			in := startAppliance(t, canary, tc.status)
			var prefix string
			if tc.breakIt != nil {
				prefix = tc.breakIt(t, in)
			}
			r := runSpec(t, suite, in, prefix, tc.examples...)
			require.Error(t, r.err, "the spec must fail:\n%s", r.out)
			assert.NotContains(t, r.out, canary)
			assert.NotContains(t, r.out, "Canary-Wrong")
			for _, w := range tc.want {
				assert.Contains(t, r.out, w)
			}
		})
	}
}
