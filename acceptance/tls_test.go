package acceptance

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// handshake connects with exactly one TLS version and every cipher suite Go knows, so a
// refusal is the server's policy, not a client limitation. It does not verify the chain:
// the certificate is what TestCertificate inspects.
func handshake(ctx context.Context, version uint16) (*tls.ConnectionState, error) {
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: target.Host(), MinVersion: version, MaxVersion: version} //nolint:gosec // inspection only
	if version < tls.VersionTLS13 {
		for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
			cfg.CipherSuites = append(cfg.CipherSuites, s.ID)
		}
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 30 * time.Second}, Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", target.Address())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	state := conn.(*tls.Conn).ConnectionState()
	return &state, nil
}

func TestTLSVersions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		version  uint16
		accepted bool
	}{
		{"TLS1.0_refused", tls.VersionTLS10, false},
		{"TLS1.1_refused", tls.VersionTLS11, false},
		{"TLS1.2_accepted", tls.VersionTLS12, true},
		{"TLS1.3_accepted", tls.VersionTLS13, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := handshake(requestContext(t), tc.version)
			if tc.accepted {
				require.NoError(t, err, "expected a %s handshake with %s to succeed; look at ssl_protocols and the certificate in the nginx site",
					tls.VersionName(tc.version), target.Address())
				// The client offers only tc.version, so a success is that version.
				return
			}
			if err == nil {
				t.Errorf("expected %s to be refused, but the handshake succeeded; the nginx site must set ssl_protocols TLSv1.2 TLSv1.3",
					tls.VersionName(tc.version))
				return
			}
			refusal, ok := tlsRefusal(err)
			assert.True(t, ok, "expected %s to be refused by a TLS alert or a protocol-version error, got %s",
				tls.VersionName(tc.version), refusal)
			t.Logf("%s refused: %s", tls.VersionName(tc.version), refusal)
		})
	}
}

// tlsRefusal tells whether a failed handshake is the server's TLS refusal (an alert, or
// a protocol version the client cannot speak) and describes the error either way, so a
// closed port or a non-TLS answer is not mistaken for a version policy.
func tlsRefusal(err error) (string, bool) {
	var op *net.OpError
	switch {
	case errors.As(err, &op) && op.Op == "remote error":
		return "the server's alert: " + op.Err.Error(), true
	case strings.Contains(err.Error(), "protocol version"):
		return "a protocol-version error: " + err.Error(), true
	case errors.As(err, &op) && op.Op == "dial":
		return "a dial failure, no TLS at all: " + err.Error(), false
	default:
		return "an error that is no TLS refusal: " + err.Error(), false
	}
}

// serverCertificate returns the leaf and chain the endpoint presents.
func serverCertificate(t *testing.T) []*x509.Certificate {
	t.Helper()
	state, err := handshake(requestContext(t), tls.VersionTLS13)
	if err != nil {
		state, err = handshake(requestContext(t), tls.VersionTLS12)
	}
	require.NoError(t, err, "no TLS 1.2 or 1.3 handshake with %s", target.Address())
	require.NotEmpty(t, state.PeerCertificates, "the server sent no certificate")
	return state.PeerCertificates
}

func TestCertificate(t *testing.T) {
	t.Parallel()
	chain := serverCertificate(t)
	leaf := chain[0]
	t.Run("valid_now", func(t *testing.T) {
		now := time.Now()
		assert.False(t, now.Before(leaf.NotBefore), "certificate not valid before %s (now %s); look at the VM's clock or regenerate the certificate", leaf.NotBefore, now)
		assert.False(t, now.After(leaf.NotAfter), "certificate expired at %s (now %s); regenerate it (re-run the appliance's configure stage)", leaf.NotAfter, now)
	})
	t.Run("san_covers_host", func(t *testing.T) {
		err := leaf.VerifyHostname(target.Host())
		assert.NoError(t, err, "certificate subjectAltName (DNS %v, IP %v) does not cover %q, the host users connect to; the appliance puts the VM's addresses and domain in it",
			leaf.DNSNames, leaf.IPAddresses, target.Host())
	})
	t.Run("chain", func(t *testing.T) {
		intermediates := x509.NewCertPool()
		for _, c := range chain[1:] {
			intermediates.AddCert(c)
		}
		opts := x509.VerifyOptions{DNSName: target.Host(), Roots: target.Roots, Intermediates: intermediates}
		if target.Roots == nil {
			if leaf.CheckSignatureFrom(leaf) == nil {
				t.Skip("self-signed certificate (as the appliance ships it): nothing to verify its chain against; pass -ca-cert with its PEM")
			}
			opts.Roots = nil // the system's roots, as for a Let's Encrypt certificate
		}
		_, err := leaf.Verify(opts)
		assert.NoError(t, err, "certificate chain does not verify against %s; look at the certificate the nginx site serves",
			rootsName())
	})
}

func rootsName() string {
	if target.Roots != nil {
		return "-ca-cert " + strings.TrimSpace(*caCertFlag)
	}
	return "the system's roots"
}
