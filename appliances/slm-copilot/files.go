// Package slmcopilot embeds the SLM-Copilot appliance's own files, so the reference
// appliance runs exactly what the image installs rather than a copy.
package slmcopilot

import "embed"

// Files holds the appliance script (appliance.sh), the front door it renders (frontdoor.sh,
// site.conf.tmpl) and the readiness marker script (slm-copilot-ready).
//
//go:embed appliance.sh frontdoor.sh site.conf.tmpl slm-copilot-ready
var Files embed.FS
