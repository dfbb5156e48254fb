// Package copilot is the client side of an SLM-Copilot instance: how a certifier reaches
// it (TLS policy, credentials, the OpenAI client) and how it reads raw responses, so that
// checks can see what an SDK hides (stream framing, arrival times, headers).
package copilot

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"

	openai "github.com/sashabaranov/go-openai"
)

// Target is an SLM-Copilot instance as its operator describes it.
type Target struct {
	Endpoint     *url.URL // https://host[:port], where the API is served
	HTTPEndpoint *url.URL // where plain HTTP is expected to redirect
	Username     string
	Password     string
	Model        string
	// Roots verifies the server's chain when set (the -ca-cert flag); when nil the
	// certificate is accepted, as the appliance ships self-signed, and inspected by checks.
	Roots *x509.CertPool

	modelCalls atomic.Int64 // see ModelCalls
}

// NewTarget validates the operator's flags. An empty httpEndpoint means http://<endpoint host>.
func NewTarget(endpoint, httpEndpoint, username, password, model, caCertFile string) (*Target, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("endpoint %q: want https://HOST[:PORT], the appliance's base address", endpoint)
	}
	u.Path = ""
	if httpEndpoint == "" {
		httpEndpoint = "http://" + bracketIPv6(u.Hostname())
	}
	h, err := url.Parse(httpEndpoint)
	if err != nil || h.Scheme != "http" || h.Host == "" {
		return nil, fmt.Errorf("http endpoint %q: want http://HOST[:PORT]", httpEndpoint)
	}
	if password == "" {
		return nil, fmt.Errorf("no password: pass -password (the appliance's ONEAPP_COPILOT_PASSWORD or the one in its report file)")
	}
	t := &Target{Endpoint: u, HTTPEndpoint: h, Username: username, Password: password, Model: model}
	if caCertFile != "" {
		pem, err := os.ReadFile(caCertFile)
		if err != nil {
			return nil, fmt.Errorf("read CA certificate: %w", err)
		}
		t.Roots = x509.NewCertPool()
		if !t.Roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA certificate %s: no PEM certificate in it", caCertFile)
		}
	}
	return t, nil
}

func bracketIPv6(host string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}

// Host is the endpoint's host name or address, as the certificate must cover it.
func (t *Target) Host() string { return t.Endpoint.Hostname() }

// Address is host:port of the TLS listener.
func (t *Target) Address() string {
	if t.Endpoint.Port() != "" {
		return t.Endpoint.Host
	}
	return net.JoinHostPort(t.Host(), "443")
}

// URL joins a path (with an optional query) to the endpoint.
func (t *Target) URL(path string) string { return t.Endpoint.String() + path }

// TLSConfig is the client side of the appliance's TLS policy: the chain is verified
// against Roots when given; otherwise it is accepted here and inspected by the checks.
func (t *Target) TLSConfig() *tls.Config {
	if t.Roots != nil {
		return &tls.Config{RootCAs: t.Roots, ServerName: t.Host(), MinVersion: tls.VersionTLS12}
	}
	return &tls.Config{InsecureSkipVerify: true, ServerName: t.Host(), MinVersion: tls.VersionTLS12} //nolint:gosec // self-signed by design; the certificate check inspects it
}

// HTTPClient returns a client that never follows redirects (a redirect is something to
// check, not to obey), counts its model calls (ModelCalls) and, when tap is set, records
// raw responses.
func (t *Target) HTTPClient(tap *Tap) *http.Client {
	tr := &http.Transport{TLSClientConfig: t.TLSConfig(), ForceAttemptHTTP2: false, MaxIdleConnsPerHost: 4}
	var rt http.RoundTripper = callCounter{base: tr, calls: &t.modelCalls}
	if tap != nil {
		tap.Base = rt
		rt = tap
	}
	return &http.Client{
		Transport:     rt,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ModelCalls is how many model calls the clients of HTTPClient have sent so far.
func (t *Target) ModelCalls() int64 { return t.modelCalls.Load() }

// OpenAI returns a go-openai client that authenticates the way Cline and every OpenAI
// SDK do: the password as API key, sent as a Bearer token.
func (t *Target) OpenAI(hc *http.Client) *openai.Client {
	cfg := openai.DefaultConfig(t.Password)
	cfg.BaseURL = t.URL("/v1")
	cfg.HTTPClient = hc
	return openai.NewClientWithConfig(cfg)
}

// Redact removes every form of the password a response could echo, so that failure
// messages can quote what came back without leaking it.
func (t *Target) Redact(s string) string {
	if t.Password == "" {
		return s
	}
	forms := []string{
		base64.StdEncoding.EncodeToString([]byte(t.Username + ":" + t.Password)),
		base64.StdEncoding.EncodeToString([]byte(t.Password)),
		url.QueryEscape(t.Password),
		t.Password,
	}
	for _, f := range forms {
		s = strings.ReplaceAll(s, f, "[REDACTED]")
	}
	return s
}
