// Package slmcopilot embeds the SLM-Copilot appliance's own files, so the reference
// appliance runs exactly what the image installs rather than a copy.
package slmcopilot

import "embed"

// Files holds the front door: frontdoor.sh and the nginx site template site.conf.tmpl.
//
//go:embed frontdoor.sh site.conf.tmpl
var Files embed.FS
