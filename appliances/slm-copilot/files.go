// Package slmcopilot embeds the SLM-Copilot appliance's own files, so the reference
// appliance runs exactly what the image installs rather than a copy.
package slmcopilot

import (
	"context"
	"embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Files holds the appliance script (appliance.sh), the front door it renders (frontdoor.sh,
// site.conf.tmpl, context-guard.js), the readiness marker script (slm-copilot-ready), the engine's unit
// (local-ai.service) and the certification wrapper (slm-copilot-certify): what Packer uploads
// into the image (a build test compares the lists).
//
//go:embed appliance.sh frontdoor.sh site.conf.tmpl context-guard.js slm-copilot-ready local-ai.service slm-copilot-certify
var Files embed.FS

// Unpack writes Files into dir (dir/appliance.sh, ...), as the image build installs them.
func Unpack(dir string) error {
	if err := os.CopyFS(dir, Files); err != nil {
		return fmt.Errorf("unpack appliance files into %s: %w", dir, err)
	}
	return nil
}

// Command runs one function of appliance.sh (unpacked at root/appliance) with root as its
// SLM_ROOT, under one-apps' umask 0077; args follow the function name. The stages, their
// download and verification helpers and the sandboxed configure all run this way.
func Command(ctx context.Context, root, function string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "bash", append([]string{"-c", `set -eo pipefail; umask 0077; source "$1"; shift; "$@"`,
		"stage", filepath.Join(root, "appliance", "appliance.sh"), function}, args...)...)
	cmd.Env = append(append(os.Environ(), "SLM_ROOT="+root), env...)
	return cmd
}
