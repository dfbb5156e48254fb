// Package build is the build suite: it turns packer/ into a certified, compressed QCOW2 for
// the marketplace, in stages that can be skipped and resumed terratest-style
// (SKIP_<stage>=1 reuses what an earlier run left in -work-dir):
//
//	go test ./build -run TestBuild -timeout 4h -v -args -build
//
// Stages: preflight, inputs, packer, finish, verify. TestPackerTemplate (fmt, validate and
// the real seed-ISO build) runs in `make test` on any machine.
package build

import (
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

var (
	buildFlag      = flag.Bool("build", false, "run TestBuild: the full image build (a build host: KVM, 60 GB free, internet)")
	workDir        = flag.String("work-dir", filepath.Join(reference.CacheDir(), "build"), "inputs, Packer output and the finished image")
	accelerator    = flag.String("accelerator", "kvm", "QEMU accelerator: kvm, or tcg where /dev/kvm is unusable (many times slower)")
	cpus           = flag.Int("cpus", 4, "vCPUs of the build VM")
	memoryMiB      = flag.Int("memory", 18432, "memory of the build VM in MiB; with -bake-model it must hold the model plus the pre-warm's KV cache (preflight checks)")
	diskSize       = flag.String("disk-size", "50G", "virtual size of the image")
	minFreeGB      = flag.Uint64("min-free-gb", 60, "free space -work-dir needs")
	baseURL        = flag.String("base-url", "https://cloud-images.ubuntu.com/releases/24.04/release", "where the Ubuntu 24.04 cloud image and its SHA256SUMS are published")
	baseImage      = flag.String("base-image", "ubuntu-24.04-server-cloudimg-amd64.img", "file name of the base image in -base-url")
	oneAppsRepo    = flag.String("one-apps-repo", "https://github.com/OpenNebula/one-apps.git", "one-apps repository (framework files and context hooks)")
	oneAppsRef     = flag.String("one-apps-ref", "v6.10.0-3", "pinned one-apps tag or commit")
	contextURL     = flag.String("context-url", "https://github.com/OpenNebula/one-apps/releases/download/v6.10.0-3/one-context_6.10.0-3.deb", "one-context package for Ubuntu")
	contextSHA256  = flag.String("context-sha256", "", "sha256 of the one-context package (required: the build verifies every input)")
	publishURL     = flag.String("publish-url", "", "where the image will be downloaded from, written into the marketplace YAML (required)")
	bakeModel      = flag.Bool("bake-model", true, "bake the model into the image (offline image); false: a small image that downloads the pinned model at first boot")
	prewarmContext = flag.Int("prewarm-context", 4096, "context (tokens) of the build-time pre-warm")
	modelURL       = flag.String("model-url", "", "model URL pinned to a Hugging Face commit (default: appliance.sh's MODEL_URL)")
	modelCommit    = flag.String("model-commit", "", "Hugging Face commit of the model (required unless -model-url names one)")
	modelSHA256    = flag.String("model-sha256", "", "sha256 of the model file (required unless appliance.sh pins one)")
	modelSize      = flag.String("model-size", "", "size of the model file in bytes (default: appliance.sh's MODEL_SIZE)")
	maxImageGB     = flag.Float64("max-image-gb", 17, "budget of the compressed image in GB: the finish stage fails above it")
	version        = flag.String("version", "1.0.0", "appliance version")
	packerBinary   = flag.String("packer", filepath.Join(reference.CacheDir(), "tools", "packer-current", "packer"), "the packer binary (built by `make deps`)")
	marketplaceYML = flag.String("marketplace-yaml", "", "marketplace YAML to update (default: the appliance's <uuid>.yaml)")
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(m.Run())
}

// repoRoot is the repository's top directory.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func packerDir() string { return filepath.Join(repoRoot(), "packer") }
