package report

import (
	"context"
	"os/exec"
	"runtime/debug"
	"strings"
	"time"
)

// SuiteBuild is the suite's version and commit for Run: the main module's version and
// VCS stamp when the binary carries them (go build, go install), else what git says
// of the working directory (go test builds without a VCS stamp), else empty. A
// modified tree is marked "+dirty".
func SuiteBuild() (version, commit string) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = v
		}
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if commit != "" {
			if dirty {
				commit += "+dirty"
			}
			return version, commit
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		return version, ""
	}
	commit = strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		commit += "+dirty"
	}
	if version == "" {
		if d, err := exec.CommandContext(ctx, "git", "describe", "--tags", "--always").Output(); err == nil {
			version = strings.TrimSpace(string(d))
		}
	}
	return version, commit
}
