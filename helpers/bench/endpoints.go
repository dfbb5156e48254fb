package bench

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/slm-copilot/slm-copilot/helpers/reference"
)

// Engine is the chat completions route of the engine behind a front door, reached
// directly at base (http://127.0.0.1:8080 on the appliance), with the key in keyFile
// (the one the front door presents; none when empty) as Bearer. Each request opens a
// connection of its own: llama-server (b11669) closes its connection after a stream
// although it announced keep-alive, so a reused one may be closing; on loopback a
// connection costs a fraction of a millisecond.
func Engine(base, keyFile, model string, requestTimeout time.Duration) (*Endpoint, error) {
	header := http.Header{}
	if keyFile != "" {
		key, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("the engine's key: %w", err)
		}
		header.Set("Authorization", "Bearer "+strings.TrimSpace(string(key)))
	}
	return &Endpoint{
		Name: "engine", URL: strings.TrimSuffix(base, "/") + "/v1/chat/completions",
		Transport: &http.Transport{DisableKeepAlives: true}, Header: header, Model: model,
		RequestTimeout: requestTimeout,
	}, nil
}

// Reference is a reference appliance's chat completions route through its front door
// (the password as Bearer, its own certificate trusted) and straight to its engine.
func Reference(in *reference.Instance, requestTimeout time.Duration) (front, engine *Endpoint, err error) {
	pem, err := os.ReadFile(in.CACert)
	if err != nil {
		return nil, nil, fmt.Errorf("the reference appliance's certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("the reference appliance's certificate %s: no PEM certificate in it", in.CACert)
	}
	front = &Endpoint{
		Name: "front door", URL: in.Endpoint + "/v1/chat/completions",
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 8},
		Header:    http.Header{"Authorization": {"Bearer " + in.Password}}, Model: in.Model, RequestTimeout: requestTimeout,
	}
	engine, err = Engine("http://"+in.Files.Upstream, in.Files.EngineKey, in.Model, requestTimeout)
	return front, engine, err
}
