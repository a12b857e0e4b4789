package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ClientConfig builds the crypto/tls client configuration these settings describe: the CA file
// (or the system roots), the client certificate for mutual TLS, the server name override, and TLS
// 1.2 at least. It reads the files each time it is called, so a restarted client picks up rotated
// certificates. Whether TLS is used at all is the caller's decision (Redis.UseTLS, NATS.UseTLS).
func (t TLS) ClientConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA file %s holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// ReadPassword returns the Redis password: Password (from VALET_REDIS_PASSWORD) when set, else
// the contents of PasswordFile without the trailing newline, else "". It reads the file at each
// call, so a reconnecting client picks up a rotated password.
func (r Redis) ReadPassword() (string, error) {
	if r.Password != "" || r.PasswordFile == "" {
		return r.Password, nil
	}
	b, err := os.ReadFile(r.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("read redis.password_file: %w", err)
	}
	p := strings.TrimRight(string(b), "\r\n")
	if p == "" {
		return "", errors.New("redis.password_file is empty")
	}
	return p, nil
}
