package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrCannotLook is returned by Missing when this machine has no way to look inside an image.
var ErrCannotLook = errors.New("cannot look inside the image: install libguestfs-tools (virt-ls) or run as root (loop devices)")

// Missing returns which of paths (absolute, in the guest) the image's root filesystem lacks.
// It looks with libguestfs's virt-ls where installed; otherwise, as root, through a read-only
// loop device on a sparse raw copy made next to the image (removed afterwards).
func Missing(ctx context.Context, img string, paths []string) ([]string, error) {
	if _, err := exec.LookPath("virt-ls"); err == nil {
		return missingVirtLs(ctx, img, paths)
	}
	if os.Geteuid() != 0 {
		return nil, ErrCannotLook
	}
	return missingLoop(ctx, img, paths)
}

func missingVirtLs(ctx context.Context, img string, paths []string) ([]string, error) {
	var missing []string
	for _, p := range paths {
		out, err := exec.CommandContext(ctx, "virt-ls", "-a", img, filepath.Dir(p)).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("virt-ls %s in %s: %w: %s", filepath.Dir(p), img, err, strings.TrimSpace(string(out)))
		}
		if !containsLine(string(out), filepath.Base(p)) {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

func containsLine(text, line string) bool {
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

// missingLoop mounts each partition read-only until one holds /etc/os-release (the root
// filesystem), and looks for paths there.
func missingLoop(ctx context.Context, img string, paths []string) (missing []string, err error) {
	work, err := os.MkdirTemp(filepath.Dir(img), ".inspect-")
	if err != nil {
		return nil, fmt.Errorf("look inside %s: %w", img, err)
	}
	defer os.RemoveAll(work)
	raw, mnt := filepath.Join(work, "disk.raw"), filepath.Join(work, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		return nil, fmt.Errorf("look inside %s: %w", img, err)
	}
	if _, err := qemuImg(ctx, "convert", "-O", "raw", img, raw); err != nil {
		return nil, fmt.Errorf("look inside %s: %w", img, err)
	}
	loop, err := run(ctx, "losetup", "-r", "-P", "-f", "--show", raw)
	if err != nil {
		return nil, fmt.Errorf("look inside %s: %w", img, err)
	}
	defer func() { _, _ = run(context.Background(), "losetup", "-d", loop) }()
	parts, _ := filepath.Glob(loop + "p*")
	if len(parts) == 0 { // no udev here to make the partition nodes
		if _, err := run(ctx, "partx", "-a", loop); err == nil {
			defer func() { _, _ = run(context.Background(), "partx", "-d", loop) }()
		}
		parts, _ = filepath.Glob(loop + "p*")
	}
	for _, dev := range append(parts, loop) {
		if _, err := run(ctx, "mount", "-o", "ro,noload", dev, mnt); err != nil {
			continue
		}
		_, statErr := os.Stat(filepath.Join(mnt, "etc", "os-release"))
		if statErr == nil {
			for _, p := range paths {
				if _, err := os.Lstat(filepath.Join(mnt, p)); err != nil {
					missing = append(missing, p)
				}
			}
		}
		if _, err := run(context.Background(), "umount", mnt); err != nil {
			return nil, fmt.Errorf("look inside %s: %w", img, err)
		}
		if statErr == nil {
			return missing, nil
		}
	}
	return nil, fmt.Errorf("look inside %s: no partition holds a root filesystem (/etc/os-release)", img)
}

// run runs a command and returns its trimmed standard output.
func run(ctx context.Context, name string, args ...string) (string, error) {
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
