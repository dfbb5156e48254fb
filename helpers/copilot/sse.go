package copilot

import (
	"bytes"
	"strings"
	"time"
)

// Event is one server-sent event and the read that completed it.
type Event struct {
	Data string    // the event's data lines, joined by newlines
	Read int       // index of the read that completed the event
	At   time.Time // when that read returned: when the client could first act on the event
}

// Events splits the recorded body into server-sent events (blank-line separated), the
// way a client sees them arrive. A trailing event without its blank line is incomplete
// and not returned: a stream cut mid-event must not look finished.
func (c *Capture) Events() []Event {
	var (
		events  []Event
		pending bytes.Buffer
		data    []string
	)
	for i, r := range c.Reads() {
		pending.Write(r.Data)
		for {
			line, err := pending.ReadBytes('\n')
			if err != nil {
				// Incomplete line: keep it for the next read.
				rest := append(line, pending.Bytes()...)
				pending.Reset()
				pending.Write(rest)
				break
			}
			line = bytes.TrimRight(line, "\r\n")
			switch {
			case len(line) == 0:
				if len(data) > 0 {
					events = append(events, Event{Data: strings.Join(data, "\n"), Read: i, At: r.At})
					data = nil
				}
			case bytes.HasPrefix(line, []byte("data:")):
				data = append(data, string(bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))))
			}
		}
	}
	return events
}
