package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate and its key as PEM files and returns their paths.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "valet-test"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestClientConfig(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		tls       TLS
		wantRoots bool
		wantCerts int
		err       string
	}{
		{"system roots", TLS{Enabled: true}, false, 0, ""},
		{"CA file", TLS{CAFile: certFile, ServerName: "redis.internal"}, true, 0, ""},
		{"mutual TLS", TLS{CAFile: certFile, CertFile: certFile, KeyFile: keyFile}, true, 1, ""},
		{"missing CA", TLS{CAFile: filepath.Join(dir, "missing.pem")}, false, 0, "read TLS CA file"},
		{"CA without PEM", TLS{CAFile: notPEM}, false, 0, "holds no PEM certificate"},
		{"certificate without key", TLS{CertFile: certFile}, false, 0, "load TLS client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.tls.ClientConfig()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.MinVersion != tls.VersionTLS12 || got.ServerName != tt.tls.ServerName {
				t.Errorf("MinVersion %x, ServerName %q", got.MinVersion, got.ServerName)
			}
			if (got.RootCAs != nil) != tt.wantRoots || len(got.Certificates) != tt.wantCerts {
				t.Errorf("roots %v, %d certificates; want roots %v, %d", got.RootCAs != nil, len(got.Certificates), tt.wantRoots, tt.wantCerts)
			}
		})
	}
}
