// Package faults proves that every acceptance check can fail: its tests start the
// reference appliance with exactly one property broken, run the acceptance suite against
// it as a user does (`go test ./acceptance -endpoint ... -json`, in a subprocess), and
// assert that the matching check fails for the right reason while unrelated checks pass.
package faults
