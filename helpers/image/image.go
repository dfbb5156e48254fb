// Package image finishes a built appliance image for the marketplace: it compresses the
// qcow2, checks it, computes its checksums, writes a manifest and updates the marketplace
// YAML in place. Each step is a function so the build suite can run and test them alone.
package image

import (
	"bytes"
	"context"
	"crypto/md5" //nolint:gosec // the marketplace format asks for md5 next to sha256
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Info is what qemu-img reports about an image.
type Info struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
	ActualSize  int64  `json:"actual-size"`
}

// Inspect runs qemu-img info on path.
func Inspect(ctx context.Context, path string) (Info, error) {
	out, err := qemuImg(ctx, "info", "--output=json", path)
	if err != nil {
		return Info{}, fmt.Errorf("inspect %s: %w", path, err)
	}
	var info Info
	if err := json.Unmarshal(out, &info); err != nil {
		return Info{}, fmt.Errorf("inspect %s: qemu-img info: %w", path, err)
	}
	return info, nil
}

// Check runs qemu-img check, which fails on a corrupt qcow2.
func Check(ctx context.Context, path string) error {
	if _, err := qemuImg(ctx, "check", "-q", path); err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	return nil
}

// Compress writes a compressed qcow2 copy of src to dst, with qemu-img's progress going to
// progress (nil: none). -W lets qemu-img write out of order, so its coroutines compress in
// parallel. dst appears only when complete, so an interrupted run never leaves a truncated
// image that looks finished.
func Compress(ctx context.Context, src, dst string, progress io.Writer) error {
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	tmp := dst + ".part"
	defer os.Remove(tmp)
	args := []string{"convert", "-c", "-W", "-O", "qcow2", src, tmp}
	if progress != nil {
		args = append([]string{"convert", "-p"}, args[1:]...)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "qemu-img", args...)
	cmd.Stdout, cmd.Stderr = progress, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("compress %s: qemu-img convert: %w: %s", src, err, bytes.TrimSpace(stderr.Bytes()))
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("compress %s: %w", src, err)
	}
	return nil
}

func qemuImg(ctx context.Context, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "qemu-img", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("qemu-img %s: %w: %s", args[0], err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// Sums are the checksums the marketplace publishes.
type Sums struct {
	MD5    string `json:"md5"`
	SHA256 string `json:"sha256"`
}

// Checksum reads path once and computes both checksums.
func Checksum(path string) (Sums, error) {
	f, err := os.Open(path)
	if err != nil {
		return Sums{}, fmt.Errorf("checksum: %w", err)
	}
	defer f.Close()
	m, s := md5.New(), sha256.New() //nolint:gosec // see import
	if _, err := io.Copy(io.MultiWriter(m, s), f); err != nil {
		return Sums{}, fmt.Errorf("checksum %s: %w", path, err)
	}
	return Sums{MD5: hex.EncodeToString(m.Sum(nil)), SHA256: hex.EncodeToString(s.Sum(nil))}, nil
}

// WriteSumFiles writes path.md5 and path.sha256 in the format md5sum -c and sha256sum -c read.
func WriteSumFiles(path string, sums Sums) error {
	name := filepath.Base(path)
	for ext, sum := range map[string]string{".md5": sums.MD5, ".sha256": sums.SHA256} {
		if err := os.WriteFile(path+ext, []byte(sum+"  "+name+"\n"), 0o644); err != nil {
			return fmt.Errorf("write checksum file: %w", err)
		}
	}
	return nil
}

// Manifest describes a finished image and what went into it.
type Manifest struct {
	Image       string            `json:"image"`
	VirtualSize int64             `json:"virtual_size"`
	FileSize    int64             `json:"file_size"`
	Checksums   Sums              `json:"checksums"`
	Versions    map[string]string `json:"versions"`
	Created     time.Time         `json:"created"`
}

// ErrOverBudget is returned when the compressed image is larger than FinishOptions.MaxBytes.
var ErrOverBudget = errors.New("compressed image over its size budget")

// FinishOptions tune Finish.
type FinishOptions struct {
	Versions map[string]string // what went into the image, for the manifest
	Now      time.Time         // the manifest's creation time
	// MaxBytes is the compressed image's budget (zero: none). Over it, Finish fails with
	// ErrOverBudget and leaves the image for inspection, without checksums or manifest.
	MaxBytes int64
	Progress io.Writer // qemu-img's progress (nil: none)
}

// Finish compresses raw into dst, verifies the result and returns its manifest, written
// next to it as dst.manifest.json with the checksum files.
func Finish(ctx context.Context, raw, dst string, opts FinishOptions) (Manifest, error) {
	if err := Check(ctx, raw); err != nil {
		return Manifest{}, err
	}
	if err := Compress(ctx, raw, dst, opts.Progress); err != nil {
		return Manifest{}, err
	}
	if err := Check(ctx, dst); err != nil {
		return Manifest{}, err
	}
	info, err := Inspect(ctx, dst)
	if err != nil {
		return Manifest{}, err
	}
	if info.Format != "qcow2" {
		return Manifest{}, fmt.Errorf("finish %s: format %q, want qcow2", dst, info.Format)
	}
	st, err := os.Stat(dst)
	if err != nil {
		return Manifest{}, fmt.Errorf("finish: %w", err)
	}
	if opts.MaxBytes > 0 && st.Size() > opts.MaxBytes {
		return Manifest{}, fmt.Errorf("finish %s: %w: %s (%d bytes), budget %s: look for what the build left in the image",
			dst, ErrOverBudget, GB(st.Size()), st.Size(), GB(opts.MaxBytes))
	}
	sums, err := Checksum(dst)
	if err != nil {
		return Manifest{}, err
	}
	if err := WriteSumFiles(dst, sums); err != nil {
		return Manifest{}, err
	}
	m := Manifest{Image: filepath.Base(dst), VirtualSize: info.VirtualSize, FileSize: st.Size(), Checksums: sums, Versions: opts.Versions, Created: opts.Now.UTC()}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, err
	}
	if err := os.WriteFile(dst+".manifest.json", append(b, '\n'), 0o644); err != nil {
		return Manifest{}, fmt.Errorf("write manifest: %w", err)
	}
	return m, nil
}

// GB formats a byte count in decimal gigabytes, as disk budgets are stated.
func GB(n int64) string { return fmt.Sprintf("%.2f GB", float64(n)/1e9) }

// ErrNoImage is returned when the marketplace YAML has no images entry to update.
var ErrNoImage = errors.New("marketplace YAML has no images[0] entry")
