// Node certificates issued straight from the local control plane's CA key, for lifetimes the CSR API
// cannot give (its expirationSeconds minimum is 10 minutes): what tests of certificate rotation start
// from. The same shape the controller-manager's signers issue — RSA-2048 (the board's TLS signs only
// with RSA), CN=system:node:<name>, O=system:nodes, client auth or server auth with SANs — signed by
// the cluster CA, so kube-apiserver and metrics-server take them as they take the signer's.
import "reflect-metadata";
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, webcrypto } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";

export interface MintOptions {
  /** From now (the certificate starts a second ago, so a fresh one is valid at once). */
  lifetimeSeconds: number;
  /** A serving certificate with these SANs (IPs and DNS names); absent: a client certificate. */
  addresses?: string[];
  /** Certify this RSA key (PKCS#8 DER) instead of a new one: a fleet of simulated boards shares one, saving a key generation each. */
  key?: Uint8Array;
}

export async function mintNodeCertificate(pkiDir: string, node: string, options: MintOptions): Promise<{ certificate: Uint8Array; key: Uint8Array }> {
  const ca = new x509.X509Certificate(readFileSync(join(pkiDir, "ca.crt"), "utf8"));
  const caKeyDer = createPrivateKey(readFileSync(join(pkiDir, "ca.key"), "utf8")).export({ type: "pkcs8", format: "der" });
  const ecdsa = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const signingKey = await webcrypto.subtle.importKey("pkcs8", caKeyDer, ecdsa, false, ["sign"]);
  const { privateKey, publicKey } = options.key
    ? (() => {
        const privateKey = createPrivateKey({ key: Buffer.from(options.key!), format: "der", type: "pkcs8" });
        return { privateKey, publicKey: createPublicKey(privateKey) };
      })()
    : generateKeyPairSync("rsa", { modulusLength: 2048 });
  const rsa = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  const pub = await webcrypto.subtle.importKey("spki", publicKey.export({ type: "spki", format: "der" }), rsa, true, ["verify"]);
  const serving = !!options.addresses;
  const extensions: x509.Extension[] = [
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension([serving ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
    new x509.BasicConstraintsExtension(false, undefined, true),
  ];
  if (options.addresses) extensions.push(new x509.SubjectAlternativeNameExtension(options.addresses.map((value) => ({ type: isIP(value) ? "ip" : "dns", value }))));
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomBytes(8).toString("hex").replace(/^[89a-f]/, "1"),
      subject: `O=system:nodes, CN=system:node:${node}`,
      // The CA's subject as it is encoded, so the issuer matches it byte for byte.
      issuer: ca.subjectName,
      notBefore: new Date(Math.floor(now / 1000) * 1000 - 1000),
      notAfter: new Date(Math.floor(now / 1000) * 1000 + options.lifetimeSeconds * 1000),
      signingKey,
      publicKey: pub,
      signingAlgorithm: ecdsa,
      extensions,
    },
    webcrypto as any,
  );
  return { certificate: new Uint8Array(cert.rawData), key: new Uint8Array(privateKey.export({ type: "pkcs8", format: "der" })) };
}

/**
 * A serving certificate from the cluster CA: P-256 like the Go pki's own (tools/controlplane/util/cmd/pki),
 * as PEM: the chain leaf + CA (what kube-apiserver serves) and the PKCS#8 key; the leaf as DER too.
 */
export async function mintServingCertificate(pkiDir: string, options: { subject: string; names: string[]; lifetimeSeconds: number }): Promise<{ chainPem: string; keyPem: string; der: Uint8Array }> {
  const caPem = readFileSync(join(pkiDir, "ca.crt"), "utf8");
  const ca = new x509.X509Certificate(caPem);
  const ecdsa = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const caKey = createPrivateKey(readFileSync(join(pkiDir, "ca.key"), "utf8")).export({ type: "pkcs8", format: "der" });
  const signingKey = await webcrypto.subtle.importKey("pkcs8", caKey, ecdsa, false, ["sign"]);
  const pair = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const publicKey = await webcrypto.subtle.importKey("spki", pair.publicKey.export({ type: "spki", format: "der" }), ecdsa, true, ["verify"]);
  const now = Math.floor(Date.now() / 1000) * 1000;
  const leaf = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomBytes(8).toString("hex").replace(/^[89a-f]/, "1"),
      subject: `CN=${options.subject}`,
      issuer: ca.subjectName, // as the CA encodes it, so the issuer matches byte for byte
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + options.lifetimeSeconds * 1000),
      signingKey,
      publicKey,
      signingAlgorithm: ecdsa,
      extensions: [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.SubjectAlternativeNameExtension(options.names.map((value) => ({ type: isIP(value) ? "ip" : "dns", value }))),
      ],
    },
    webcrypto as any,
  );
  return { chainPem: `${leaf.toString("pem")}\n${caPem}`, keyPem: pair.privateKey.export({ type: "pkcs8", format: "pem" }) as string, der: new Uint8Array(leaf.rawData) };
}

/** kube-apiserver's serving certificate issued anew (new key, same CA and names), written where it reads it at start. */
export async function reissueServingCertificate(pkiDir: string, extraNames: string[]): Promise<void> {
  const names = [...new Set(["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "127.0.0.1", "10.43.0.1", ...extraNames])];
  const issued = await mintServingCertificate(pkiDir, { subject: "kube-apiserver", names, lifetimeSeconds: 365 * 24 * 3600 });
  writeFileSync(join(pkiDir, "apiserver.crt"), issued.chainPem);
  writeFileSync(join(pkiDir, "apiserver.key"), issued.keyPem, { mode: 0o600 });
}
