// A PKCS#10 certificate request (RFC 2986) for the node's identity, and the CertificateSigningRequest
// object that carries it, as the kubelet's certificate manager makes them: subject
// CN=system:node:<name>, O=system:nodes; a kubelet-serving request adds the node's addresses as
// subjectAltNames. The request is signed by the host (Host.sign) with the key the board already
// holds; everything else — the DER, the choice of signature algorithm — is here, identical on every host.
import { children, contents, encode, oid, oidText, sequence, set, tlv, toBase64, toPem, utf8String } from "./der";

export type SignatureAlgorithm = "rsa-pkcs1-sha256" | "ecdsa-p256-sha256";

export const CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet";
export const SERVING_SIGNER = "kubernetes.io/kubelet-serving";

/** What the signers accept for the kubelet's two certificates (RSA keys also list key encipherment). */
export function csrUsages(signer: string, algorithm: SignatureAlgorithm): string[] {
  const usages = algorithm === "rsa-pkcs1-sha256" ? ["digital signature", "key encipherment"] : ["digital signature"];
  usages.push(signer === SERVING_SIGNER ? "server auth" : "client auth");
  return usages;
}

const RSA_ENCRYPTION = "1.2.840.113549.1.1.1";
const EC_PUBLIC_KEY = "1.2.840.10045.2.1";

/** Which algorithm signs with the key a subjectPublicKeyInfo holds; undefined for any other key. */
export function signatureAlgorithmOf(publicKeyInfo: Uint8Array): SignatureAlgorithm | undefined {
  const spki = tlv(publicKeyInfo, 0);
  const alg = spki && children(publicKeyInfo, spki)[0];
  const id = alg && children(publicKeyInfo, alg)[0];
  const text = id && id.tag === 0x06 ? oidText(contents(publicKeyInfo, id)) : "";
  return text === RSA_ENCRYPTION ? "rsa-pkcs1-sha256" : text === EC_PUBLIC_KEY ? "ecdsa-p256-sha256" : undefined;
}

function ipBytes(address: string): Uint8Array | undefined {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (v4) {
    const parts = v4.slice(1).map(Number);
    return parts.every((p) => p <= 255) ? new Uint8Array(parts) : undefined;
  }
  if (!address.includes(":")) return undefined;
  const [head, tail, extra] = address.split("::");
  if (extra !== undefined) return undefined;
  const groups = (s: string | undefined) => (s ? s.split(":") : []);
  const h = groups(head);
  const t = groups(tail);
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  const all = [...h, ...new Array(fill).fill("0"), ...t];
  if (all.length !== 8 || !all.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

/** The same address however it was written ("::1" and "0:0:…:1"): for comparing SANs with the board's address. */
export function canonicalIp(address: string): string | undefined {
  const b = ipBytes(address);
  if (!b) return undefined;
  if (b.length === 4) return address;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] << 8) | b[i + 1]).toString(16));
  return groups.join(":");
}

export interface RequestSubject {
  nodeName: string;
  /** subjectAltNames (the serving certificate): IP addresses and DNS names. */
  addresses?: string[];
}

/** certificationRequestInfo: the bytes the host signs. */
export function certificationRequestInfo(subject: RequestSubject, publicKeyInfo: Uint8Array): Uint8Array {
  const name = sequence(set(sequence(oid("2.5.4.10"), utf8String("system:nodes"))), set(sequence(oid("2.5.4.3"), utf8String(`system:node:${subject.nodeName}`))));
  const attributes: Uint8Array[] = [];
  if (subject.addresses?.length) {
    const names: Uint8Array[] = [];
    for (const a of subject.addresses) {
      const ip = ipBytes(a);
      names.push(ip ? encode(0x87, ip) : encode(0x82, new Uint8Array(Array.from(a, (c) => c.charCodeAt(0) & 0x7f))));
    }
    const san = sequence(oid("2.5.29.17"), encode(0x04, sequence(...names)));
    attributes.push(sequence(oid("1.2.840.113549.1.9.14"), set(sequence(san)))); // extensionRequest
  }
  return sequence(encode(0x02, new Uint8Array([0])), name, publicKeyInfo, encode(0xa0, ...attributes));
}

/** The whole request: the info, the algorithm, the host's signature (PKCS#1 v1.5 bytes, or an ECDSA DER signature). */
export function certificationRequest(info: Uint8Array, algorithm: SignatureAlgorithm, signature: Uint8Array): Uint8Array {
  const alg = algorithm === "rsa-pkcs1-sha256" ? sequence(oid("1.2.840.113549.1.1.11"), encode(0x05, new Uint8Array(0))) : sequence(oid("1.2.840.10045.4.3.2"));
  const bits = new Uint8Array(signature.length + 1);
  bits.set(signature, 1);
  return sequence(info, alg, encode(0x03, bits));
}

/** The CertificateSigningRequest object the API takes (generateName csr-, as the kubelet's). */
export function csrObject(request: Uint8Array, signerName: string, usages: string[]): unknown {
  return {
    apiVersion: "certificates.k8s.io/v1",
    kind: "CertificateSigningRequest",
    metadata: { generateName: "csr-" },
    spec: { request: toBase64(new Uint8Array(Array.from(toPem(request, "CERTIFICATE REQUEST"), (c) => c.charCodeAt(0)))), signerName, usages },
  };
}
