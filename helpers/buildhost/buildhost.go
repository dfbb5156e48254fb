// Package buildhost checks, before a build starts, that the machine can finish it: a build
// that fails after 40 minutes of downloads is the most expensive failure there is.
package buildhost

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// Requirements describe what the build needs from the host.
type Requirements struct {
	Packer       string // the packer binary to use
	PluginDir    string // where the qemu plugin must be installed
	Accelerator  string // kvm or tcg
	KVMDevice    string // normally /dev/kvm
	WorkDir      string // where inputs and outputs go
	MinFreeBytes uint64 // free space needed in WorkDir
	// VMMemoryMiB is the build VM's memory; with a pre-warm it must hold the model (see
	// PrewarmMemoryMiB). PrewarmModelBytes is zero when nothing is pre-warmed (bake_model=false).
	VMMemoryMiB       int
	PrewarmModelBytes int64
	PrewarmContext    int
	// HostMemoryMiB is the host's total memory (zero: read /proc/meminfo).
	HostMemoryMiB int
}

// PluginVersion is the exact packer-plugin-qemu version packer/ pins and `make deps` builds:
// the template's cpu_model, disk_discard, disk_detect_zeroes and skip_compaction are read as
// v1.0.9 defines them.
const PluginVersion = "1.0.9"

// KVCacheBytesPerToken is Devstral Small 2's f16 KV cache per token of context (40 layers x
// 8 KV heads x 128 x 2 (K and V) x 2 bytes), about 160 KiB.
const KVCacheBytesPerToken = 40 * 8 * 128 * 2 * 2

// SystemReserveMiB is what the guest's kernel, systemd and LocalAI need beside the model.
const SystemReserveMiB = 2048

// PrewarmMemoryMiB is the build VM memory a pre-warm needs: the weights, the KV cache of its
// context, and the system's reserve. The model is mmapped, but a pre-warm that pages its
// weights in and out of a too-small VM takes hours instead of minutes.
func PrewarmMemoryMiB(modelBytes int64, contextTokens int) int {
	need := modelBytes + int64(contextTokens)*KVCacheBytesPerToken
	return int((need+(1<<20)-1)>>20) + SystemReserveMiB
}

// Problem is one unmet requirement and the exact way to fix it.
type Problem struct {
	What, Fix string
}

func (p Problem) String() string { return p.What + "\n    fix: " + p.Fix }

// MinPacker is the oldest Packer the template works with (HCL2 with packer init).
var MinPacker = [2]int{1, 9}

// Check returns every unmet requirement, so the operator fixes them all in one go.
func Check(r Requirements) []Problem {
	var problems []Problem
	add := func(what, fix string) { problems = append(problems, Problem{what, fix}) }

	if v, err := packerVersion(r.Packer); err != nil {
		add(fmt.Sprintf("packer (%s) not usable: %v", r.Packer, err), "run `make deps`: it builds Packer v1.9.4 from the Go module proxy")
	} else if v[0] < MinPacker[0] || (v[0] == MinPacker[0] && v[1] < MinPacker[1]) {
		add(fmt.Sprintf("packer %d.%d is older than %d.%d", v[0], v[1], MinPacker[0], MinPacker[1]), "run `make deps` (Packer v1.9.4), or install Packer >= 1.9 first on the PATH")
	}
	plugin := "packer-plugin-qemu_v" + PluginVersion + "_x5.0_linux_amd64"
	if _, err := os.Stat(filepath.Join(r.PluginDir, plugin)); err != nil {
		found, _ := filepath.Glob(filepath.Join(r.PluginDir, "packer-plugin-qemu_v*_x5.0_linux_amd64"))
		what := "the Packer qemu plugin v" + PluginVersion + " is not installed in " + r.PluginDir
		if len(found) > 0 {
			what += " (found " + filepath.Base(found[0]) + ": packer/ pins exactly v" + PluginVersion + ")"
		}
		add(what, "run `make deps`: it builds packer-plugin-qemu v"+PluginVersion+" and installs it there")
	}
	for tool, pkg := range map[string]string{"qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils", "cloud-localds": "cloud-image-utils"} {
		if _, err := exec.LookPath(tool); err != nil {
			add(tool+" is not on the PATH", "apt-get install "+pkg+" (or run `make deps`)")
		}
	}
	switch r.Accelerator {
	case "kvm":
		if f, err := os.OpenFile(r.KVMDevice, os.O_RDWR, 0); err != nil {
			add(fmt.Sprintf("KVM is not usable: %v", err), "load the kvm modules and give this user access to "+r.KVMDevice+", or build with -accelerator=tcg (software emulation, many times slower)")
		} else {
			f.Close()
		}
	case "tcg":
	default:
		add(fmt.Sprintf("unknown accelerator %q", r.Accelerator), "use -accelerator=kvm (build hosts) or -accelerator=tcg")
	}
	if r.PrewarmModelBytes > 0 {
		need := PrewarmMemoryMiB(r.PrewarmModelBytes, r.PrewarmContext)
		if r.VMMemoryMiB < need {
			add(fmt.Sprintf("the build VM has %d MiB but the pre-warm needs %d MiB (model %d MiB + %d tokens x 160 KiB KV cache + %d MiB system)",
				r.VMMemoryMiB, need, r.PrewarmModelBytes>>20, r.PrewarmContext, SystemReserveMiB),
				fmt.Sprintf("pass -memory=%d, or a smaller -prewarm-context", need))
		}
	}
	host := r.HostMemoryMiB
	if host == 0 {
		host = hostMemoryMiB()
	}
	if host > 0 && r.VMMemoryMiB > host {
		add(fmt.Sprintf("the build VM wants %d MiB but this host has %d MiB", r.VMMemoryMiB, host), "build on a larger host, or with -bake-model=false (no pre-warm: 4096 MiB are enough)")
	}
	if free, err := freeBytes(r.WorkDir); err != nil {
		add(fmt.Sprintf("work directory %s: %v", r.WorkDir, err), "create it or choose another with -work-dir")
	} else if free < r.MinFreeBytes {
		add(fmt.Sprintf("only %d GB free in %s, the build needs %d GB", free>>30, r.WorkDir, r.MinFreeBytes>>30), "free space there or choose another -work-dir")
	}
	return problems
}

// Error joins problems into one error, or nil.
func Error(problems []Problem) error {
	if len(problems) == 0 {
		return nil
	}
	lines := make([]string, len(problems))
	for i, p := range problems {
		lines[i] = "  - " + p.String()
	}
	return errors.New("the build host is not ready:\n" + strings.Join(lines, "\n"))
}

var versionPattern = regexp.MustCompile(`(\d+)\.(\d+)\.\d+`)

func packerVersion(packer string) ([2]int, error) {
	out, err := exec.Command(packer, "version").Output()
	if err != nil {
		return [2]int{}, err
	}
	m := versionPattern.FindStringSubmatch(string(out))
	if m == nil {
		return [2]int{}, fmt.Errorf("unrecognised version %q", strings.TrimSpace(string(out)))
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return [2]int{major, minor}, nil
}

// hostMemoryMiB reads MemTotal from /proc/meminfo; zero when it cannot.
func hostMemoryMiB() int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kib, _ := strconv.Atoi(f[1])
			return kib >> 10
		}
	}
	return 0
}

func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
