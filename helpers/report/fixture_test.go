package report

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/slm-copilot/slm-copilot/helpers/copilot"
	"github.com/slm-copilot/slm-copilot/helpers/metrics"
)

// canary is a password with every character an encoding treats specially: HTML/XML
// (<&>"'), URLs (+/= %), Markdown (|*_`), JSON (\).
const canary = `Can4ry-7f3e<&>"'+/= %pw|*_` + "`" + `\x`

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func chunk(content string) string {
	return fmt.Sprintf(`{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":%q}}]}`, content)
}

// stream is a synthetic stream sent at sent: content every gap after ttft, usage with
// tokens, [DONE]. Its content may carry text (the canary).
func stream(sent time.Time, ttft, gap time.Duration, tokens int, text string) []copilot.Event {
	var ev []copilot.Event
	at := sent.Add(ttft)
	ev = append(ev, copilot.Event{At: sent.Add(ttft / 2), Data: `{"choices":[{"index":0,"delta":{"role":"assistant"}}]}`})
	for i := range tokens {
		c := fmt.Sprintf("tok%d ", i)
		if i == 1 {
			c = text
		}
		ev = append(ev, copilot.Event{At: at, Data: chunk(c)})
		at = at.Add(gap)
	}
	ev = append(ev, copilot.Event{At: at, Data: fmt.Sprintf(`{"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":%d}}`, tokens)})
	ev = append(ev, copilot.Event{At: at.Add(time.Millisecond), Data: `[DONE]`})
	return ev
}

func selfSigned(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "slm-copilot"},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(365 * 24 * time.Hour),
		DNSNames: []string{"copilot.example"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.5")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c
}

// fixture is a recorder fed as a suite would, with secret in every place a report
// shows: messages, headers, bodies, stream content, metadata.
func fixture(t *testing.T, secret string) *Recorder {
	t.Helper()
	basic := base64.StdEncoding.EncodeToString([]byte("copilot:" + secret))
	run := Run{
		SuiteVersion: "v1.2.0", SuiteCommit: "0123456789abcdef", Start: t0, End: t0.Add(95 * time.Second),
		Mode: ModeDeploy, Endpoint: "https://10.0.0.5", Model: "devstral-small-2",
		Engine: "llama-server", EngineVersion: "b1234 (" + secret + ")",
		Certificate: CertificateOf(selfSigned(t)), TLSVersions: []string{"TLS 1.2", "TLS 1.3"},
		OpenNebula: &OpenNebula{Endpoint: "http://oneadmin:" + url.QueryEscape(secret) + "@one.example:2633/RPC2", Objects: []Object{
			{Kind: "image", ID: 12, Name: "slm-copilot-ci", Note: "created by the run"},
			{Kind: "vm", ID: 345, Name: "slm-copilot-ci-" + secret, Note: "terminated"},
		}},
		Settings: []Setting{{"-request-timeout", "5m0s"}, {"password given as", secret}},
	}
	rec := NewRecorder(run, NewRedactor([]string{"copilot"}, secret))
	rec.Result("TestTLSVersions/TLS_1.2", Pass, 120*time.Millisecond, "")
	rec.Result("TestTLSVersions/TLS_1.0", Pass, 80*time.Millisecond, "")
	rec.Result("TestCertificate/chain", Skip, time.Millisecond, "self-signed and no -ca-cert: nothing to verify the chain against")
	rec.Result("TestAuthentication/wrong_basic/v1_models", Fail, 40*time.Millisecond,
		"auth_test.go:88: GET /v1/models with a wrong Basic password: want 401, got 200\nthe password was "+secret+" and the header Basic "+basic)

	req, err := http.NewRequest(http.MethodGet, "https://copilot:"+url.PathEscape(secret)+"@10.0.0.5/v1/models?key="+url.QueryEscape(secret), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Basic "+basic)
	req.Header.Set("X-Trace", secret)
	resp := &http.Response{StatusCode: 200, Header: http.Header{
		"Content-Type": {"application/json"}, "X-Echo": {secret}, "X-Echo-B64": {base64.StdEncoding.EncodeToString([]byte(secret))},
		"Www-Authenticate": {`Basic realm="copilot"`}, "X-Api-Key": {"engine-key"},
	}}
	body := fmt.Sprintf(`{"object":"list","data":[{"id":"devstral-small-2"}],"echo":%q,"pct":%q,"path":%q,"b64url":%q,"inner":%q}`,
		secret, url.QueryEscape(secret), url.PathEscape(secret), base64.URLEncoding.EncodeToString([]byte(secret)),
		base64.StdEncoding.EncodeToString([]byte("xy"+secret+"trailing")))
	// A long body, so the excerpt cuts it; the secret sits across the cut.
	body += strings.Repeat(" ", excerptHead-len(body)-5) + secret + strings.Repeat(".", 4000)
	rec.Evidence("TestAuthentication/wrong_basic", Exchange(req, resp, []byte(body)))
	rec.Evidence("TestAuthentication/wrong_basic/v1_models", Evidence{Request: "GET /v1/models", Status: 200, Note: "note with " + secret})

	rec.Result("TestAuthentication/right_bearer/v1_models", Pass, 30*time.Millisecond, "")
	rec.Result("TestHealthEndpoints/readyz", Pass, 5*time.Millisecond, "")
	rec.Result("TestChatStream", Pass, 2*time.Second, "chat_test.go:140: 24 content events over 1.9 s, the first at 310 ms")
	rec.Result("Suite/model_calls", Pass, 0, "12 model calls of 30")

	for i, d := range []struct{ ttft, gap time.Duration }{{310 * time.Millisecond, 80 * time.Millisecond}, {450 * time.Millisecond, 95 * time.Millisecond}, {280 * time.Millisecond, 70 * time.Millisecond}} {
		sent := t0.Add(time.Duration(i) * 10 * time.Second)
		s := metrics.Measure("TestChatStream", sent, stream(sent, d.ttft, d.gap, 24, " "+secret+" "))
		rec.Sample(s)
		if i == 0 {
			rec.Evidence("TestChatStream", Evidence{Request: "POST /v1/chat/completions", Status: 200,
				Headers: map[string]string{"Content-Type": "text/event-stream"}, BodyExcerpt: "data: " + chunk(secret) + "\n\n", Timeline: s.Events})
		}
	}
	require.NoError(t, rec.SetSLOs("opennebula-gpu,tps_min=5"))
	return rec
}
