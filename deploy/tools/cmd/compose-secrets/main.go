// Command compose-secrets generates the secrets docker-compose.yml mounts, so that no secret is
// ever committed: run it once before the first `docker compose up` (deploy/compose/init-secrets.sh
// does, with the right directory).
//
//	cd deploy/tools && GOWORK=off go run ./cmd/compose-secrets -out ../compose/secrets
//
// It writes, under -out:
//
//	kek-1                     key-encryption key of the signing keys: 32 random bytes, 64 hex digits
//	redis-password            the Redis password (requirepass) and VALET_REDIS_PASSWORD_FILE
//	grafana-admin-password    Grafana's admin password
//	admin-client-secret       secret of the admin client the issuers' bootstrap section declares
//	                          (deploy/compose/issuer.yaml): 32 random bytes, base64url
//	demo-client-secret        secret of the demo client (client credentials for the demo API)
//	nats/issuer.nk            NKey user seeds, one per NATS user (nkey_seed_file)
//	nats/introspection.nk
//	nats/revocation.nk
//	nats/edge.nk
//	nats/admin.nk             the operators' user (nats CLI, stream backups)
//	nats/nkeys.conf           the public NKeys as NATS config variables, included by
//	                          deploy/nats/accounts.conf (public, rewritten from the seeds each run)
//	tls/ca.pem                a local certificate authority the Valet containers trust (SSL_CERT_DIR)
//	tls/server.pem            its certificate for -hosts, served by the TLS front and the gateway
//	tls/server-key.pem        that certificate's private key
//
// Existing files are kept: running it again changes nothing, and above all never replaces the
// key-encryption key, which would make every stored signing key unreadable. -force-tls renews the
// authority and the certificate (restart the stack after). The CA's private key is not kept. To
// rotate a client secret, delete its file, run it again and restart the issuers: the bootstrap
// finds the stored secret drifted and replaces it (docs/bootstrap.md).
//
// Files are written 0644 in a 0700 directory: compose mounts file secrets as they are on the host,
// and the Valet containers run as a non-root user that must read them. This is for a local
// demonstration; production takes secrets from a secret store (docs/operations.md).
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ClientSecrets are the client secrets deploy/compose/issuer.yaml reads (file:/run/secrets/<name>),
// in the bootstrap section that gives the stack its first clients.
var ClientSecrets = []string{"admin-client-secret", "demo-client-secret"}

// NATSUsers are the NKey users deploy/nats/accounts.conf names, each as VALET_<NAME>_NKEY.
var NATSUsers = []string{"issuer", "introspection", "revocation", "edge", "admin"}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("compose-secrets", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write the secrets to (deploy/compose/secrets)")
	hosts := fs.String("hosts", "valet.localhost,localhost,127.0.0.1", "names and addresses of the TLS certificate")
	forceTLS := fs.Bool("force-tls", false, "renew the TLS authority and certificate even if they exist")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: compose-secrets -out DIR [-hosts a,b] [-force-tls]")
		return 2
	}
	g := &generator{dir: *out, log: stdout}
	if err := g.all(strings.Split(*hosts, ","), *forceTLS); err != nil {
		fmt.Fprintf(stderr, "compose-secrets: %v\n", err)
		return 1
	}
	return 0
}

type generator struct {
	dir string
	log io.Writer
}

func (g *generator) all(hosts []string, forceTLS bool) error {
	for _, d := range []string{"", "nats", "tls"} {
		if err := os.MkdirAll(filepath.Join(g.dir, d), 0o700); err != nil {
			return err
		}
	}
	random := func(n int, enc func([]byte) string) func() ([]byte, error) {
		return func() ([]byte, error) {
			b := make([]byte, n)
			if _, err := rand.Read(b); err != nil {
				return nil, err
			}
			return []byte(enc(b) + "\n"), nil
		}
	}
	if err := g.keep("kek-1", random(32, hex.EncodeToString)); err != nil {
		return err
	}
	if err := g.keep("redis-password", random(32, base64.RawURLEncoding.EncodeToString)); err != nil {
		return err
	}
	if err := g.keep("grafana-admin-password", random(18, base64.RawURLEncoding.EncodeToString)); err != nil {
		return err
	}
	// 256 bits, 43 characters: above the 32 the bootstrap requires of a secret it reads, and
	// base64url, so that client_secret_basic needs no escaping (RFC 6749 §2.3.1).
	for _, name := range ClientSecrets {
		if err := g.keep(name, random(32, base64.RawURLEncoding.EncodeToString)); err != nil {
			return err
		}
	}

	var conf bytes.Buffer
	conf.WriteString("# Generated by deploy/tools/cmd/compose-secrets from the seeds beside it: the public NKeys\n")
	conf.WriteString("# of the Valet NATS users, included by deploy/nats/accounts.conf. Public, not secret.\n")
	for _, u := range NATSUsers {
		name := filepath.Join("nats", u+".nk")
		if err := g.keep(name, func() ([]byte, error) {
			seed, err := newUserSeed()
			return append(seed, '\n'), err
		}); err != nil {
			return err
		}
		raw, err := os.ReadFile(filepath.Join(g.dir, name))
		if err != nil {
			return err
		}
		pub, err := userPublicKey(strings.TrimSpace(string(raw)))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(&conf, "VALET_%s_NKEY: %q\n", strings.ToUpper(u), pub)
	}
	if err := g.write(filepath.Join("nats", "nkeys.conf"), conf.Bytes()); err != nil {
		return err
	}

	tlsFiles := []string{"tls/ca.pem", "tls/server.pem", "tls/server-key.pem"}
	missing := forceTLS
	for _, f := range tlsFiles {
		if _, err := os.Stat(filepath.Join(g.dir, f)); err != nil {
			missing = true
		}
	}
	if !missing {
		for _, f := range tlsFiles {
			fmt.Fprintf(g.log, "kept     %s\n", f)
		}
		return nil
	}
	ca, cert, key, err := newTLS(hosts, time.Now())
	if err != nil {
		return err
	}
	for i, b := range [][]byte{ca, cert, key} {
		if err := g.write(tlsFiles[i], b); err != nil {
			return err
		}
	}
	return nil
}

// keep writes name with make() unless it exists.
func (g *generator) keep(name string, make func() ([]byte, error)) error {
	if _, err := os.Stat(filepath.Join(g.dir, name)); err == nil {
		fmt.Fprintf(g.log, "kept     %s\n", name)
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	b, err := make()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return g.write(name, b)
}

// write replaces name atomically, mode 0644 (see the package comment).
func (g *generator) write(name string, b []byte) error {
	path := filepath.Join(g.dir, name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil { // whatever the umask
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	fmt.Fprintf(g.log, "wrote    %s\n", name)
	return nil
}

// NKeys (github.com/nats-io/nkeys), written with the standard library: a seed is base32 (no
// padding) of two prefix bytes, the 32-byte Ed25519 seed and a little-endian CRC-16/XMODEM; a
// public key is base32 of one prefix byte, the 32-byte Ed25519 public key and the CRC.
const (
	prefixSeed byte = 18 << 3 // 'S'
	prefixUser byte = 20 << 3 // 'U'
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func newUserSeed() ([]byte, error) {
	raw := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	b := []byte{prefixSeed | prefixUser>>5, (prefixUser & 31) << 3}
	b = append(b, raw...)
	b = binary.LittleEndian.AppendUint16(b, crc16(b))
	return []byte(b32.EncodeToString(b)), nil
}

// userPublicKey returns the public NKey ("U...") of a user seed ("SU...").
func userPublicKey(seed string) (string, error) {
	b, err := b32.DecodeString(seed)
	if err != nil || len(b) != 2+ed25519.SeedSize+2 {
		return "", errors.New("not an NKey seed")
	}
	body, sum := b[:len(b)-2], binary.LittleEndian.Uint16(b[len(b)-2:])
	if crc16(body) != sum {
		return "", errors.New("NKey seed checksum mismatch")
	}
	if body[0]&0xf8 != prefixSeed || (body[0]&7)<<5|body[1]>>3 != prefixUser {
		return "", errors.New("not an NKey user seed")
	}
	pub := ed25519.NewKeyFromSeed(body[2:]).Public().(ed25519.PublicKey)
	p := append([]byte{prefixUser}, pub...)
	p = binary.LittleEndian.AppendUint16(p, crc16(p))
	return b32.EncodeToString(p), nil
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), as NKeys use it.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// newTLS returns a fresh certificate authority (PEM), a server certificate it signed for hosts
// (PEM, followed by the CA) and the server's private key (PKCS #8 PEM). ECDSA P-256 throughout.
func newTLS(hosts []string, now time.Time) (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Valet compose local CA " + now.UTC().Format("2006-01-02")},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(2, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(&caKey.PublicKey),
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: strings.TrimSpace(hosts[0])},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		SubjectKeyId: keyID(&key.PublicKey),
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), caPEM...)
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
	return caPEM, certPEM, keyPEM, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

func keyID(pub *ecdsa.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return sum[:20]
}
