package report

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// Redacted replaces every form of a secret.
const Redacted = "[REDACTED]"

// Redactor removes secrets in every form a response or a log could carry them: as
// given, base64 (standard and URL alphabets, padded or not), base64 of "user:secret"
// (HTTP Basic), base64 of the secret inside a longer base64 text at any of the three
// byte alignments, and URL-escaped (query and path). The zero value and nil redact
// nothing.
type Redactor struct {
	forms []form // longest first, so a form containing another is replaced whole
}

type form struct {
	text string
	what string // how the secret was encoded, for a message that must not show it
}

// minInnerBase64 is the shortest base64 run, cut out of a longer text, worth treating
// as the secret: shorter runs would match ordinary words.
const minInnerBase64 = 8

// NewRedactor redacts secrets; users are the HTTP Basic user names they may be paired
// with. Empty secrets are ignored.
func NewRedactor(users []string, secrets ...string) *Redactor {
	seen := map[string]bool{}
	r := &Redactor{}
	add := func(text, what string) {
		if text == "" || seen[text] {
			return
		}
		seen[text] = true
		r.forms = append(r.forms, form{text, what})
	}
	encodings := []struct {
		name string
		enc  *base64.Encoding
	}{
		{"base64", base64.StdEncoding}, {"base64 (unpadded)", base64.RawStdEncoding},
		{"base64url", base64.URLEncoding}, {"base64url (unpadded)", base64.RawURLEncoding},
	}
	for i, s := range secrets {
		if s == "" {
			continue
		}
		name := fmt.Sprintf("secret %d", i+1)
		add(s, name)
		add(url.QueryEscape(s), name+" query-escaped")
		add(url.PathEscape(s), name+" path-escaped")
		// As a JSON or HTML body quotes it (a server echoing it in an error message).
		add(jsonEscape(s, true), name+" JSON-escaped")
		add(jsonEscape(s, false), name+" JSON-escaped")
		add(html.EscapeString(s), name+" HTML-escaped")
		add(template.HTMLEscapeString(s), name+" HTML-escaped")
		for _, e := range encodings {
			add(e.enc.EncodeToString([]byte(s)), name+" "+e.name)
			for _, u := range users {
				add(e.enc.EncodeToString([]byte(u+":"+s)), name+" "+e.name+" with its user (HTTP Basic)")
			}
			for k := range 3 {
				if inner := innerBase64(e.enc, []byte(s), k); len(inner) >= minInnerBase64 {
					add(inner, fmt.Sprintf("%s %s inside a longer text (offset %d)", name, e.name, k))
				}
			}
		}
	}
	sort.SliceStable(r.forms, func(i, j int) bool { return len(r.forms[i].text) > len(r.forms[j].text) })
	return r
}

// jsonEscape is s as inside a JSON string, with or without Go's escaping of <, > and &.
func jsonEscape(s string, escapeHTML bool) string {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(escapeHTML)
	_ = e.Encode(s) // a string always encodes
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(b.String()), `"`), `"`)
}

// innerBase64 is the part of the base64 encoding of (k bytes, secret, more bytes) that
// depends on the secret alone: the characters whose six bits all fall inside it.
func innerBase64(enc *base64.Encoding, secret []byte, k int) string {
	full := enc.Strict().EncodeToString(append(make([]byte, k), secret...))
	startBit, endBit := 8*k, 8*(k+len(secret))
	first := (startBit + 5) / 6 // first character starting at or after startBit
	last := endBit / 6          // characters [first, last) end at or before endBit
	if last <= first || last > len(full) {
		return ""
	}
	return full[first:last]
}

// Redact replaces every form of every secret in s.
func (r *Redactor) Redact(s string) string {
	if r == nil {
		return s
	}
	for _, f := range r.forms {
		if strings.Contains(s, f.text) {
			s = strings.ReplaceAll(s, f.text, Redacted)
		}
	}
	return s
}

// find reports the first form of a secret in s, by description.
func (r *Redactor) find(s string) (string, bool) {
	if r == nil {
		return "", false
	}
	for _, f := range r.forms {
		if strings.Contains(s, f.text) {
			return f.what, true
		}
	}
	return "", false
}

// Leak looks for a secret in a file's content as a reader would decode it: the raw
// bytes, HTML/XML entities decoded, backslash escapes dropped (Markdown), and for JSON
// every string value and key. It names the form found, never the secret.
func (r *Redactor) Leak(name string, content []byte) error {
	raw, unescaped := string(content), html.UnescapeString(string(content))
	views := []string{raw, unescaped, backslashes.ReplaceAllString(raw, "$1"), backslashes.ReplaceAllString(unescaped, "$1")}
	if strings.HasSuffix(name, ".json") {
		var v any
		if err := json.Unmarshal(content, &v); err == nil {
			var b strings.Builder
			walkStrings(v, func(s string) string { b.WriteString(s); b.WriteByte(0); return s })
			views = append(views, b.String())
		}
	}
	for _, v := range views {
		if what, ok := r.find(v); ok {
			return fmt.Errorf("%s still holds %s", name, what)
		}
	}
	return nil
}

var backslashes = regexp.MustCompile(`\\([[:punct:]])`)

// redactValue applies r to every string in v (keys too) through its JSON form, so no
// field of any type is missed; v must be a pointer.
func (r *Redactor) redactValue(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("redact: %w", err)
	}
	var generic any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&generic); err != nil {
		return fmt.Errorf("redact: %w", err)
	}
	generic = walkStrings(generic, r.Redact)
	if b, err = json.Marshal(generic); err != nil {
		return fmt.Errorf("redact: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("redact: %w", err)
	}
	return nil
}

// walkStrings maps f over every string and map key in a decoded JSON value.
func walkStrings(v any, f func(string) string) any {
	switch x := v.(type) {
	case string:
		return f(x)
	case []any:
		for i := range x {
			x[i] = walkStrings(x[i], f)
		}
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[f(k)] = walkStrings(val, f)
		}
		return out
	}
	return v
}
