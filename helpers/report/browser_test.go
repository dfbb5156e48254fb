package report

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// RequireChromiumEnv makes a missing Chromium a failure instead of a skip (CI sets it
// once fixtures/deps.sh has installed Debian's chromium).
const RequireChromiumEnv = "SLM_COPILOT_REQUIRE_CHROMIUM"

const chromiumPath = "/usr/bin/chromium"

// chromium renders page in headless Chromium at 1280×800 and returns the screenshot
// and the console messages (Chromium logs each as "…:CONSOLE(line)] "text", source: …"
// with --enable-logging=stderr). The profile is a fresh directory: no extension, sync
// or component update runs, and nothing is fetched in the background.
func chromium(t *testing.T, page string) (image.Image, []string) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv(RequireChromiumEnv) != "" {
			t.Fatalf("%s is missing and %s is set: install Debian's chromium (apt-get install -y chromium; fixtures/deps.sh does)", chromiumPath, RequireChromiumEnv)
		}
		t.Skipf("SKIP: %s is missing, so the page cannot be rendered: install Debian's chromium (apt-get install -y chromium), or set %s to make this a failure", chromiumPath, RequireChromiumEnv)
	}
	tmp := t.TempDir()
	shot := filepath.Join(tmp, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	abs, err := filepath.Abs(page)
	require.NoError(t, err)
	cmd := exec.CommandContext(ctx, chromiumPath,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--user-data-dir="+filepath.Join(tmp, "profile"),
		"--window-size=1280,800", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
		"--screenshot="+shot, "file://"+abs)
	cmd.Env = append(os.Environ(), "HOME="+tmp)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	require.NoError(t, cmd.Run(), "chromium: %s", stderr.String())
	var console []string
	sc := bufio.NewScanner(&stderr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), ":CONSOLE") {
			console = append(console, sc.Text())
		}
	}
	f, err := os.Open(shot)
	require.NoError(t, err, "no screenshot: %s", stderr.String())
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	return img, console
}

func hexColour(s string) color.RGBA {
	v, _ := strconv.ParseUint(strings.TrimPrefix(s, "#"), 16, 32)
	return color.RGBA{uint8(v >> 16), uint8(v >> 8), uint8(v), 255}
}

// pixels counts, in the rectangle r of img, the pixels of colour c, the non-white ones
// and the distinct colours.
func pixels(img image.Image, r image.Rectangle, c color.RGBA) (exact, nonWhite, distinct int) {
	seen := map[color.RGBA]bool{}
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			px := color.RGBA{uint8(cr >> 8), uint8(cg >> 8), uint8(cb >> 8), 255}
			seen[px] = true
			if px == c {
				exact++
			}
			if px != (color.RGBA{255, 255, 255, 255}) {
				nonWhite++
			}
		}
	}
	return exact, nonWhite, len(seen)
}

// TestHTMLInChromium renders report.html as a browser shows it: a real screenshot, not
// blank, the verdict banner in its colour across the top of the first screen, and no
// console message (the page has no script; a blocked fetch would log one).
func TestHTMLInChromium(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		verdict Verdict
		rec     func(t *testing.T) *Recorder
	}{
		{"failed run", Fail, func(t *testing.T) *Recorder { return fixture(t, canary) }},
		{"passed run", Pass, func(t *testing.T) *Recorder {
			rec := NewRecorder(Run{Endpoint: "https://10.0.0.5", Mode: ModeEndpoint, Start: t0, End: t0.Add(time.Minute)}, nil)
			rec.Result("TestTLSVersions/TLS_1.3", Pass, time.Millisecond, "")
			rec.Result("TestCertificate/chain", Skip, time.Millisecond, "no -ca-cert")
			return rec
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, res := written(t, tc.rec(t))
			require.Equal(t, tc.verdict, res.Verdict)
			img, console := chromium(t, filepath.Join(dir, HTMLFile))
			assert.Empty(t, console, "console messages")
			b := img.Bounds()
			require.Equal(t, 1280, b.Dx())
			require.Equal(t, 800, b.Dy())
			_, nonWhite, distinct := pixels(img, b, color.RGBA{})
			assert.Greater(t, distinct, 20, "a rendered page has text and charts, not a flat fill")
			assert.Greater(t, nonWhite, b.Dx()*b.Dy()/50, "not blank")
			// The banner: its colour across the top 60 px, over most of the width.
			banner, _, _ := pixels(img, image.Rect(0, 0, b.Dx(), 60), hexColour(BannerColour[tc.verdict]))
			assert.Greater(t, banner, b.Dx()*60/2, "the %s banner is at the top of the first screen", tc.verdict)
			for v, c := range BannerColour {
				if v != tc.verdict {
					other, _, _ := pixels(img, image.Rect(0, 0, b.Dx(), 60), hexColour(c))
					assert.Less(t, other, b.Dx()*60/10, "no %s banner colour", v)
				}
			}
		})
	}
}

// TestChromiumSeesErrors proves the console check catches what it must: a script that
// throws (on a copy of the page without its CSP) and a fetch of an external image.
func TestChromiumSeesErrors(t *testing.T) {
	t.Parallel()
	dir, _ := written(t, fixture(t, canary))
	page, err := os.ReadFile(filepath.Join(dir, HTMLFile))
	require.NoError(t, err)
	csp := `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`
	require.Contains(t, string(page), csp)
	for _, tc := range []struct{ name, change, want string }{
		{"broken script", strings.Replace(string(page), csp, "", 1), "Uncaught ReferenceError"},
		{"external fetch", string(page), "example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			html := tc.change
			switch tc.name {
			case "broken script":
				html = strings.Replace(html, "</body>", "<script>undefinedFunction();</script></body>", 1)
			case "external fetch":
				html = strings.Replace(html, "</body>", `<img src="https://example.com/pixel.png" alt=""></body>`, 1)
			}
			p := filepath.Join(t.TempDir(), "report.html")
			require.NoError(t, os.WriteFile(p, []byte(html), 0o644))
			_, console := chromium(t, p)
			assert.True(t, strings.Contains(fmt.Sprint(console), tc.want), "console should show %q, got %q", tc.want, console)
		})
	}
}
