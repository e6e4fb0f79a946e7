// Command pki writes a throw-away cluster PKI into a directory:
//
//	ca.crt, ca.key, ca.der        self-signed ECDSA P-256 CA (Go omits the AKI on self-signed certificates)
//	apiserver.crt, apiserver.key  serving certificate, stored as the chain leaf + CA (what k3s serves)
//	<name>.crt, <name>.key        client certificates for the control-plane components and the admin,
//	                              and apiserver-kubelet-client (kube-apiserver's identity towards kubelets)
//	front-proxy-ca.crt/.key       a separate CA for the aggregation layer (as kubeadm makes it), and
//	front-proxy-client.crt/.key   the client certificate kube-apiserver proxies to extension API servers with
//	metrics-server.crt/.key       serving certificate for metrics-server.kube-system.svc (signed by ca.crt)
//	sa.key, sa.pub                ServiceAccount token signing key pair
//
// Usage: pki -dir DIR [-san host,ip,...]
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	dir := flag.String("dir", "", "output directory (created if missing)")
	extraSANs := flag.String("san", "", "extra serving-certificate SANs, comma separated")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "pki: -dir is required")
		os.Exit(2)
	}
	if err := run(*dir, *extraSANs); err != nil {
		fmt.Fprintln(os.Stderr, "pki:", err)
		os.Exit(1)
	}
}

type issued struct {
	cert *x509.Certificate
	der  []byte
	key  *ecdsa.PrivateKey
}

func run(dir, extraSANs string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	now := time.Now()
	ca, err := issue(&x509.Certificate{
		Subject:               pkix.Name{CommonName: fmt.Sprintf("xs-kubelet-server-ca@%d", now.Unix())},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil)
	if err != nil {
		return err
	}
	caPEM := pemCert(ca.der)
	if err := writeAll(dir, map[string][]byte{"ca.crt": caPEM, "ca.der": ca.der, "ca.key": pemKey(ca.key)}); err != nil {
		return err
	}

	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.43.0.1")},
	}
	for _, s := range strings.Split(extraSANs, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if ip := net.ParseIP(s); ip != nil {
			serving.IPAddresses = append(serving.IPAddresses, ip)
		} else {
			serving.DNSNames = append(serving.DNSNames, s)
		}
	}
	srv, err := issue(serving, ca)
	if err != nil {
		return err
	}
	chain := append(pemCert(srv.der), caPEM...)
	if err := writeAll(dir, map[string][]byte{"apiserver.crt": chain, "apiserver.key": pemKey(srv.key)}); err != nil {
		return err
	}

	clients := []struct{ file, cn, org string }{
		{"admin", "kubernetes-admin", "system:masters"},
		{"controller-manager", "system:kube-controller-manager", ""},
		{"scheduler", "system:kube-scheduler", ""},
		// kube-apiserver --kubelet-client-certificate, named and subjected as kubeadm issues it.
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"},
	}
	for _, c := range clients {
		if err := issueClient(dir, c.file, c.cn, c.org, ca, now); err != nil {
			return err
		}
	}

	// The aggregation layer's own CA (kubeadm's front-proxy-ca): extension API servers trust the
	// X-Remote-User headers only from a client certificate of this CA, never from one of ca.crt, which
	// the CSR API can be asked to sign.
	frontProxyCA, err := issue(&x509.Certificate{
		Subject:               pkix.Name{CommonName: fmt.Sprintf("xs-kubelet-front-proxy-ca@%d", now.Unix())},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil)
	if err != nil {
		return err
	}
	if err := writeAll(dir, map[string][]byte{"front-proxy-ca.crt": pemCert(frontProxyCA.der), "front-proxy-ca.key": pemKey(frontProxyCA.key)}); err != nil {
		return err
	}
	if err := issueClient(dir, "front-proxy-client", "front-proxy-client", "", frontProxyCA, now); err != nil {
		return err
	}

	// metrics-server's serving certificate: the aggregator verifies it as <service>.<namespace>.svc
	// against the APIService's caBundle (ca.crt).
	ms, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "metrics-server"},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"metrics-server.kube-system.svc", "metrics-server.kube-system", "metrics-server", "localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}, ca)
	if err != nil {
		return err
	}
	if err := writeAll(dir, map[string][]byte{"metrics-server.crt": append(pemCert(ms.der), caPEM...), "metrics-server.key": pemKey(ms.key)}); err != nil {
		return err
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	return writeAll(dir, map[string][]byte{
		"sa.key": pemKey(saKey),
		"sa.pub": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
	})
}

// issueClient writes <file>.crt and <file>.key: a client certificate for cn (in group org) signed by ca.
func issueClient(dir, file, cn, org string, ca *issued, now time.Time) error {
	subject := pkix.Name{CommonName: cn}
	if org != "" {
		subject.Organization = []string{org}
	}
	cl, err := issue(&x509.Certificate{
		Subject:     subject,
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca)
	if err != nil {
		return err
	}
	return writeAll(dir, map[string][]byte{file + ".crt": pemCert(cl.der), file + ".key": pemKey(cl.key)})
}

// issue signs template with parent (self-signed when parent is nil) using a fresh P-256 key.
func issue(template *x509.Certificate, parent *issued) (*issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return nil, err
	}
	template.SerialNumber = serial
	signerCert, signerKey := template, key
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, template, signerCert, &key.PublicKey, signerKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &issued{cert: cert, der: der, key: key}, nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemKey(key *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		panic(err) // only fails for unsupported curves
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func writeAll(dir string, files map[string][]byte) error {
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
