package metrics

import (
	"encoding/json"
	"math"
	"time"
)

// results.json carries latencies as milliseconds (fractional), as benchmark tools print
// them; these convert the Go durations both ways without loss below 100 days.

func toMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fromMS(v float64) time.Duration { return time.Duration(math.Round(v * float64(time.Millisecond))) }

type eventJSON struct {
	OffsetMS float64 `json:"offset_ms"`
	Kind     Kind    `json:"kind"`
	Text     string  `json:"text,omitempty"`
}

// MarshalJSON writes the offset in milliseconds.
func (e Event) MarshalJSON() ([]byte, error) {
	return json.Marshal(eventJSON{OffsetMS: toMS(e.Offset), Kind: e.Kind, Text: e.Text})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (e *Event) UnmarshalJSON(b []byte) error {
	var j eventJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*e = Event{Offset: fromMS(j.OffsetMS), Kind: j.Kind, Text: j.Text}
	return nil
}

type sampleJSON struct {
	Name                  string    `json:"name"`
	Start                 time.Time `json:"start"`
	TTFTMS                float64   `json:"ttft_ms"`
	ITLMS                 []float64 `json:"itl_ms"`
	E2EMS                 float64   `json:"e2e_ms"`
	TPOTMS                float64   `json:"tpot_ms"`
	Usage                 bool      `json:"usage"`
	PromptTokens          int       `json:"prompt_tokens"`
	OutputTokens          int       `json:"output_tokens"`
	OutputTokensPerSecond float64   `json:"output_tokens_per_second"`
	OutputEvents          int       `json:"output_events"`
	Done                  bool      `json:"done"`
	Error                 string    `json:"error,omitempty"`
	Events                []Event   `json:"events"`
}

// MarshalJSON writes durations in milliseconds.
func (s Sample) MarshalJSON() ([]byte, error) {
	j := sampleJSON{
		Name: s.Name, Start: s.Start, TTFTMS: toMS(s.TTFT), ITLMS: ms(s.ITLs...), E2EMS: toMS(s.E2E), TPOTMS: toMS(s.TPOT),
		Usage: s.Usage, PromptTokens: s.PromptTokens, OutputTokens: s.OutputTokens,
		OutputTokensPerSecond: s.OutputTokensPerSecond, OutputEvents: s.OutputEvents,
		Done: s.Done, Error: s.Error, Events: s.Events,
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Sample) UnmarshalJSON(b []byte) error {
	var j sampleJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Sample{
		Name: j.Name, Start: j.Start, TTFT: fromMS(j.TTFTMS), E2E: fromMS(j.E2EMS), TPOT: fromMS(j.TPOTMS),
		Usage: j.Usage, PromptTokens: j.PromptTokens, OutputTokens: j.OutputTokens,
		OutputTokensPerSecond: j.OutputTokensPerSecond, OutputEvents: j.OutputEvents,
		Done: j.Done, Error: j.Error, Events: j.Events,
	}
	for _, v := range j.ITLMS {
		s.ITLs = append(s.ITLs, fromMS(v))
	}
	return nil
}
