package redispool_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/claudecap/claudecap/internal/testutil/redistest"
	"github.com/claudecap/claudecap/pkg/redispool"
)

// selfSignedCert writes a certificate for 127.0.0.1 and its key as PEM files
// and returns their paths and a pool that trusts the certificate.
func selfSignedCert(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redistest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("creating certificate: %v", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("marshalling key: %v", err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatalf("writing certificate: %v", err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatalf("writing key: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parsing certificate: %v", err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

// enableTLS opens a TLS port on a running test server (Redis 7 applies the
// tls-* settings at runtime) and returns its address.
func enableTLS(t *testing.T, srv *redistest.Server) (addr string, roots *x509.CertPool) {
	t.Helper()
	certFile, keyFile, roots := selfSignedCert(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("freeing port: %v", err)
	}
	err = srv.Client().ConfigSet(context.Background(), "tls-cert-file", certFile).Err()
	for _, kv := range [][2]string{
		{"tls-key-file", keyFile}, {"tls-ca-cert-file", certFile},
		{"tls-auth-clients", "no"}, {"tls-port", strconv.Itoa(port)},
	} {
		if err == nil {
			err = srv.Client().ConfigSet(context.Background(), kv[0], kv[1]).Err()
		}
	}
	if err != nil {
		t.Fatalf("turning on TLS (redis-server must be built with TLS): %v", err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), roots
}

func TestTLSConnection(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	if err := srv.Client().RPush(ctx, "jobs", "a", "b", "c").Err(); err != nil {
		t.Fatalf("RPUSH: %v", err)
	}
	addr, roots := enableTLS(t, srv)
	conn := redispool.Connection{Address: addr, TLS: true}

	trusting := newPool(t, redispool.Options{TLSConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}})
	n, err := lease(t, trusting, conn).LLen(ctx, "jobs").Result()
	if err != nil || n != 3 {
		t.Fatalf("LLEN over TLS: %d, %v; want 3", n, err)
	}

	// Without the private CA the certificate must be refused, not ignored.
	systemRoots := newPool(t, redispool.Options{})
	err = lease(t, systemRoots, conn).LLen(ctx, "jobs").Err()
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("LLEN with an untrusted certificate = %v, want a certificate error", err)
	}
}

// lease returns the client of a lease released when the test ends.
func lease(t *testing.T, p *redispool.Pool, conn redispool.Connection) *redis.Client {
	t.Helper()
	l, err := p.Acquire(conn)
	if err != nil {
		t.Fatalf("Acquire(%v): %v", conn, err)
	}
	t.Cleanup(l.Release)
	return l.Client()
}
