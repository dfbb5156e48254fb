package slmcopilot_test

import (
	"image/png"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLogo: the logo the marketplace YAML names is a real PNG, square and large enough for
// the marketplace's 100x100 detail view (marketplace-community fa6fbbd resized NemoClaw's
// to 300x300 for its 80x80 card and 100x100 detail containers). On submission it goes to
// marketplace-community's logos/.
func TestLogo(t *testing.T) {
	t.Parallel()
	m := readMarketplace(t)
	require.NotEmpty(t, m.Logo)
	f, err := os.Open(m.Logo)
	require.NoError(t, err, "the logo %s the marketplace YAML names", m.Logo)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err, "%s is not a PNG", m.Logo)
	b := img.Bounds()
	assert.Equal(t, b.Dx(), b.Dy(), "square, or the marketplace distorts it")
	assert.GreaterOrEqual(t, b.Dx(), 100)
	assert.LessOrEqual(t, b.Dx(), 512)
}
