// The project's `ssl/cert` module: the certificate manager that the Moddable SDK's TLS handshake
// (ssl/session → ssl_handshake.js) consults. It replaces the SDK's module in the firmware manifest:
//
//   "modules": { "~": ["$(MODULES)/crypt/ssl/ssl_cert"], "ssl/cert": "<repo>/hosts/moddable/ssl/cert" }
//
// Why: the SDK 8.2.3 version throws when a server sends leaf + a self-signed CA without an
// Authority Key Identifier (what Go, k3s and kube-apiserver send), and rejects every leaf-only
// chain. A throw there ends the program (the handshake runs inside a socket callback).
//
// Verification (TLS client side):
//   - trust anchors: the DER certificate(s) given as `secure.certificate`; nothing else;
//   - the leaf's validity period must cover Date.now(), and so must every certificate on the path;
//   - the leaf must match the server name: DNS SANs (one leading "*." label allowed), IPv4/IPv6
//     SANs for address literals, the subject CN only when the certificate has no SAN extension;
//   - the path leaf → intermediates → anchor is built by issuer/subject DN equality and checked by
//     signature (ECDSA P-256/P-384 with SHA-256/384/512, RSA PKCS#1 v1.5 with SHA-256/384/512).
//     Key identifiers only rule out a candidate when both the AKI and the SKI are present and differ.
//     Intermediates must carry basicConstraints cA=TRUE. A presented certificate byte-equal to an
//     anchor is trusted as is.
//   - `verify: false` skips all of it, as with the SDK.
// verify() never throws: any failure is traced, kept as `rejection` (why, in words) and returns
// false, and the handshake then throws TLSError("certificate: auth err").
//
// The module is preloaded and frozen: all state lives in instances.

import X509, { type Certificate, type TBSCertificate, type PublicKey, type RSAPublicKey, type ECPublicKey } from "x509";
import BER from "ber";
import ECDSA from "ecdsa";
import PKCS1_5, { type RSAKey } from "pkcs1_5";
import PKCS8 from "pkcs8";
import { Digest } from "crypt";
import Resource from "Resource";

export interface CertificateManagerOptions {
  /** false: accept any server certificate (no chain, date or name checks). Default true. */
  verify?: boolean;
  /** Trust anchor(s), DER. Usually the one cluster CA. */
  certificate?: DERBytes | DERBytes[];
  /** This side's certificate chain, DER, leaf first (client certificates: RSA keys only). */
  clientCertificates?: DERBytes[];
  /** PKCS#8 DER private key for clientCertificates[0]. */
  clientKey?: DERBytes;
}

/** The session's options as the handshake passes them to verify(). */
export interface VerifyOptions {
  tls_server_name?: string;
}

interface Parsed {
  der: Uint8Array;
  cert: Certificate;
  tbs: TBSCertificate;
}

type HashName = "SHA256" | "SHA384" | "SHA512";

// Frozen: the module is preloaded, and xsl flags any mutable module-level object.
const OID_EXT_SUBJECT_KEY_ID = Object.freeze([2, 5, 29, 14]);
const OID_EXT_BASIC_CONSTRAINTS = Object.freeze([2, 5, 29, 19]);
const OID_EXT_KEY_USAGE = Object.freeze([2, 5, 29, 37]);
const OID_COMMON_NAME = "2,5,4,3";
const OID_ORGANIZATION = "2,5,4,10";
const OID_KP_CLIENT_AUTH = "1,3,6,1,5,5,7,3,2";
const OID_ANY_EKU = "2,5,29,37,0";
const OID_RSA_ENCRYPTION = "1,2,840,113549,1,1,1";

/** signatureAlgorithm OID → [key type, hash, DigestInfo OID for RSA]. */
function signatureAlgorithm(algo: Uint32Array): { ec: boolean; hash: HashName; digestOid: number[] } | undefined {
  switch (algo.toString()) {
    case "1,2,840,10045,4,3,2": return { ec: true, hash: "SHA256", digestOid: [] };
    case "1,2,840,10045,4,3,3": return { ec: true, hash: "SHA384", digestOid: [] };
    case "1,2,840,10045,4,3,4": return { ec: true, hash: "SHA512", digestOid: [] };
    case "1,2,840,113549,1,1,11": return { ec: false, hash: "SHA256", digestOid: [2, 16, 840, 1, 101, 3, 4, 2, 1] };
    case "1,2,840,113549,1,1,12": return { ec: false, hash: "SHA384", digestOid: [2, 16, 840, 1, 101, 3, 4, 2, 2] };
    case "1,2,840,113549,1,1,13": return { ec: false, hash: "SHA512", digestOid: [2, 16, 840, 1, 101, 3, 4, 2, 3] };
    default: return undefined;
  }
}

function bytes(der: DERBytes): Uint8Array {
  return der instanceof Uint8Array ? der : new Uint8Array(der as ArrayBuffer);
}

function sameBytes(a: DERBytes, b: DERBytes): boolean {
  const x = bytes(a), y = bytes(b);
  if (x.byteLength !== y.byteLength) return false;
  for (let i = 0; i < x.byteLength; i++) if (x[i] !== y[i]) return false;
  return true;
}

function parse(der: DERBytes): Parsed {
  const view = bytes(der);
  const cert = X509.decode(view);
  return { der: view, cert, tbs: X509.decodeTBS(cert.tbs) };
}

function isCurrent(p: Parsed, now: number): boolean {
  const { from, to } = p.tbs.validity;
  return from <= now && now <= to;
}

function isECKey(key: PublicKey): key is ECPublicKey {
  return "curve" in key && "pub" in key;
}

function isRSAKey(key: PublicKey): key is RSAPublicKey {
  return "modulus" in key && "exponent" in key;
}

/** Does `key` verify the signature on `cert`? false for unsupported or mismatched algorithms. */
function signatureValid(cert: Certificate, key: PublicKey): boolean {
  const alg = signatureAlgorithm(cert.algo);
  if (!alg) {
    trace(`ssl/cert: unsupported signature algorithm ${cert.algo.toString()}\n`);
    return false;
  }
  return signed(alg, key, new Digest(alg.hash).process(cert.tbs), cert.sig);
}

/** Is `signature` by `key` over the message hashed to `hash` (ECDSA: DER Ecdsa-Sig-Value; RSA: PKCS#1 v1.5)? */
function signed(alg: { ec: boolean; hash: HashName; digestOid: number[] }, key: PublicKey, hash: ArrayBuffer, signature: Uint8Array): boolean {
  try {
    let H = hash;
    if (alg.ec) {
      if (!isECKey(key)) return false;
      const n = key.curve.n, size = key.curve.orderSize;
      // Reject r or s outside [1, n-1] before the SDK's verify sees them (it does not check).
      const sig = new BER(new BER(signature).getSequence());
      const r = sig.getInteger(), s = sig.getInteger();
      if (r <= 0n || r >= n || s <= 0n || s >= n) return false;
      if (H.byteLength > size) H = H.slice(0, size);   // leftmost bits of the hash (FIPS 186-4 6.4)
      return new ECDSA(key.pub, key.curve, false, []).verify(H, signature, true);
    }
    if (!isRSAKey(key)) return false;
    // Encode the expected EMSA-PKCS1-v1_5 block and compare it whole with sig^e mod n.
    const pk = new PKCS1_5(key, false, alg.digestOid);
    const k = pk.modulusSize;
    if (signature.byteLength !== k) return false;
    const s = BigInt.fromArrayBuffer(signature.slice().buffer);
    if (s >= key.modulus) return false;
    return pk.rsa.process(s) === pk.emsaEncode(H, k - 1);
  }
  catch (e) {
    trace(`ssl/cert: signature check failed: ${String(e)}\n`);
    return false;
  }
}

/**
 * TLS 1.2 SignatureScheme → how to check it; undefined: not offered. These are the schemes the
 * listener's CertificateRequest lists: SHA-256 only, the one transcript hash the SDK keeps in
 * TLS 1.2 (RSASSA-PSS is not offered: the SDK has no PSS).
 */
function tlsScheme(scheme: number): { ec: boolean; hash: HashName; digestOid: number[] } | undefined {
  switch (scheme) {
    case 0x0403: return { ec: true, hash: "SHA256", digestOid: [] };
    case 0x0401: return { ec: false, hash: "SHA256", digestOid: [2, 16, 840, 1, 101, 3, 4, 2, 1] };
    default: return undefined;
  }
}

/** The signature schemes a server may ask a client to sign CertificateVerify with, in preference order. */
export const CLIENT_SIGNATURE_SCHEMES = Object.freeze([0x0403, 0x0401]);

/** Was `child` issued (and signed) by `parent`? */
function issuedBy(child: Parsed, parent: Parsed): boolean {
  if (!sameBytes(child.tbs.issuer, parent.tbs.subject)) return false;
  // Key identifiers are only a hint: a mismatch rules the candidate out when both are present.
  const aki = X509.decodeAKI(child.der);
  const skiExt = X509.decodeExtension(parent.der, OID_EXT_SUBJECT_KEY_ID);
  if (aki && skiExt && !sameBytes(aki, new BER(skiExt).getOctetString())) return false;
  return signatureValid(child.cert, parent.cert.spki);
}

/** basicConstraints present with cA TRUE. */
function isCA(p: Parsed): boolean {
  const ext = X509.decodeExtension(p.der, OID_EXT_BASIC_CONSTRAINTS);
  if (!ext) return false;
  const ber = new BER(ext);
  if (ber.getTag() !== 0x30 || ber.getLength() <= 0) return false;
  if (ber.peek() !== 0x01) return false;    // first field absent: cA defaults to FALSE
  ber.getTag();
  return ber.getLength() === 1 && ber.getc() !== 0;
}

function parseIPv4(s: string): Uint8Array | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  let i = 0;
  for (const part of parts) {
    if (!/^[0-9]{1,3}$/.test(part)) return undefined;
    const v = Number(part);
    if (v > 255) return undefined;
    out[i++] = v;
  }
  return out;
}

function parseIPv6(s: string): Uint8Array | undefined {
  if (s.startsWith("[") && s.endsWith("]")) s = s.slice(1, -1);
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  if (s.indexOf(":") < 0) return undefined;
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (text: string): number[] | undefined => {
    if (!text) return [];
    const out: number[] = [];
    const items = text.split(":");
    const last = items.length - 1;
    for (const [i, item] of items.entries()) {
      if (i === last && item.indexOf(".") >= 0) {   // trailing embedded IPv4
        const v4 = parseIPv4(item);
        if (!v4) return undefined;
        const [a = 0, b = 0, c = 0, d = 0] = v4;
        out.push((a << 8) | b, (c << 8) | d);
      }
      else {
        if (!/^[0-9a-f]{1,4}$/.test(item)) return undefined;
        out.push(parseInt(item, 16));
      }
    }
    return out;
  };
  const [first = "", second] = halves;
  const head = groups(first);
  const tail = second === undefined ? [] : groups(second);
  if (!head || !tail) return undefined;
  const count = head.length + tail.length;
  if (second === undefined ? count !== 8 : count > 7) return undefined;
  const all = head.concat(new Array<number>(8 - count).fill(0), tail);
  const out = new Uint8Array(16);
  for (const [i, group] of all.entries()) {
    out[i * 2] = group >> 8;
    out[i * 2 + 1] = group & 0xff;
  }
  return out;
}

/** RFC 6125 matching of a DNS name from a certificate; host is already lower case without a final dot. */
function dnsNameMatches(pattern: string, host: string): boolean {
  pattern = pattern.toLowerCase();
  if (pattern.endsWith(".")) pattern = pattern.slice(0, -1);
  if (!pattern || !host) return false;
  if (pattern === host) return true;
  if (!pattern.startsWith("*.")) return false;
  const suffix = pattern.slice(1);              // ".example.com"
  if (suffix.indexOf("*") >= 0 || suffix.length < 2) return false;
  const dot = host.indexOf(".");
  return dot > 0 && host.slice(dot) === suffix;
}

/** The leaf as a rejection names it: subject CN, the names it carries, issuer CN. */
function describe(p: Parsed): string {
  const names: string[] = [];
  for (const { tag, value } of X509.decodeSAN(p.der) ?? []) {
    if (tag === 2 && typeof value === "string") names.push(value);
    else if (tag === 7 && typeof value !== "string") names.push(`IP ${ipText(new Uint8Array(value))}`);
  }
  return `CN=${commonNames(p.tbs.subject)[0] ?? ""}${names.length ? ` (${names.join(", ")})` : ""}, issued by CN=${commonNames(p.tbs.issuer)[0] ?? ""}`;
}

function ipText(b: Uint8Array): string {
  if (b.length === 4) return b.join(".");
  const groups: string[] = [];
  for (let i = 0; i + 1 < b.length; i += 2) groups.push(((b[i] << 8) | b[i + 1]).toString(16));
  return groups.join(":");
}

/** The subject's commonName values (string types only). */
function commonNames(subject: Uint8Array): string[] {
  return attributeValues(subject, OID_COMMON_NAME);
}

/** The values of one attribute type (OID as "2,5,4,3") in a Name, string types only, in order. */
function attributeValues(subject: Uint8Array, wanted: string): string[] {
  const names: string[] = [];
  const rdns = new BER(subject);
  if (rdns.getTag() !== 0x30) return names;
  rdns.getLength();
  while (rdns.readable > 0) {
    const set = new BER(rdns.next());
    if (set.getTag() !== 0x31) return names;
    set.getLength();
    while (set.readable > 0) {
      const atv = new BER(set.getSequence());
      const oid = atv.getObjectIdentifier().toString();
      const tag = atv.getTag();
      const value = atv.getChunk(atv.getLength());
      // UTF8String, PrintableString, T61String, IA5String
      if (oid === wanted && (tag === 0x0c || tag === 0x13 || tag === 0x14 || tag === 0x16))
        names.push(String.fromArrayBuffer(value.slice().buffer));
    }
  }
  return names;
}

/** Does the certificate name `serverName` (a DNS name or an IP literal)? */
function nameMatches(p: Parsed, serverName: string): boolean {
  let host = serverName.toLowerCase();
  if (host.endsWith(".")) host = host.slice(0, -1);
  const ip = parseIPv4(host) ?? parseIPv6(host);
  const sans = X509.decodeSAN(p.der);
  if (sans) {
    for (const { tag, value } of sans) {
      if (ip) {
        if (tag === 7 && typeof value !== "string" && sameBytes(value, ip)) return true;
      }
      else if (tag === 2 && typeof value === "string" && dnsNameMatches(value, host))
        return true;
    }
    return false;
  }
  // No SAN extension at all: legacy certificates name the host in the CN.
  if (ip) return false;
  return commonNames(p.tbs.subject).some((cn) => dnsNameMatches(cn, host));
}

function isRSAPrivateKey(key: Uint8Array): boolean {
  try {
    const info = new BER(key);
    if (info.getTag() !== 0x30) return false;
    info.getLength();
    info.getInteger();                                   // version
    return new BER(info.getSequence()).getObjectIdentifier().toString() === OID_RSA_ENCRYPTION;
  }
  catch {
    return false;
  }
}

/** Walks leaf → presented issuers until a certificate is an anchor or is signed by one. */
function chainsToAnchor(certs: Uint8Array[], leaf: Parsed, now: number, anchors: DERBytes[]): boolean {
  const used: boolean[] = [true];
  let current = leaf;
  for (let depth = 0; depth < certs.length; depth++) {
    for (const anchor of anchors) {
      if (sameBytes(anchor, current.der)) return true;
    }
    for (const der of anchors) {
      const anchor = parse(der);
      if (!issuedBy(current, anchor)) continue;
      if (isCurrent(anchor, now)) return true;
      trace("ssl/cert: trusted CA certificate not valid now\n");
    }
    let next: Parsed | undefined;
    for (const [i, der] of certs.entries()) {
      if (next) break;
      if (used[i]) continue;
      const candidate = parse(der);
      if (!issuedBy(current, candidate)) continue;
      if (!isCA(candidate)) {
        trace("ssl/cert: chain certificate is not a CA\n");
        continue;
      }
      if (!isCurrent(candidate, now)) {
        trace("ssl/cert: chain certificate not valid now\n");
        continue;
      }
      used[i] = true;
      next = candidate;
    }
    if (!next) return false;
    current = next;
  }
  return false;
}

/** A client certificate the listener verified: the identity Kubernetes derives from it. */
export interface ClientIdentity {
  commonName: string;
  organizations: string[];
}

/**
 * The server side of client certificates (the kubelet API listener): the chain a client presented,
 * checked as the kubelet's x509 authenticator checks it — leaf valid now, extendedKeyUsage (when
 * present) allowing clientAuth, issued through presented CA certificates by one of `anchors`.
 * Returns the leaf's public key and the identity, or a sentence saying what was wrong. Never throws.
 */
export function verifyClientChain(certs: Uint8Array[], anchors: DERBytes[], now: number): { identity: ClientIdentity; key: PublicKey } | string {
  try {
    const first = certs[0];
    if (!first) return "no client certificate";
    if (!anchors.length) return "no client CA configured";
    const leaf = parse(first);
    if (!isCurrent(leaf, now))
      return `client certificate not valid now (${new Date(leaf.tbs.validity.from).toISOString()} .. ${new Date(leaf.tbs.validity.to).toISOString()})`;
    if (!allowsClientAuth(leaf)) return "client certificate's extendedKeyUsage does not allow clientAuth";
    if (!chainsToAnchor(certs, leaf, now, anchors)) return "client certificate not issued by the client CA";
    const commonName = commonNames(leaf.tbs.subject)[0] ?? "";
    if (!commonName) return "client certificate has no subject commonName";
    return { identity: { commonName, organizations: attributeValues(leaf.tbs.subject, OID_ORGANIZATION) }, key: leaf.cert.spki };
  }
  catch (e) {
    return `cannot parse the client certificate: ${String((e as Error)?.message ?? e)}`;
  }
}

/** The public key of a certificate (for CertificateVerify when the chain did not verify). Never throws. */
export function publicKeyOf(der: Uint8Array): PublicKey | undefined {
  try {
    return parse(der).cert.spki;
  }
  catch {
    return undefined;
  }
}

/**
 * TLS 1.2 CertificateVerify: is `signature` (under SignatureScheme `scheme`) `key`'s over the
 * handshake transcript whose SHA-256 is `transcriptSha256`?
 */
export function verifyTlsSignature(key: PublicKey, scheme: number, transcriptSha256: ArrayBuffer, signature: Uint8Array): boolean {
  const alg = tlsScheme(scheme);
  return !!alg && signed(alg, key, transcriptSha256, signature);
}

/** No extendedKeyUsage extension, or one listing clientAuth or anyExtendedKeyUsage. */
function allowsClientAuth(p: Parsed): boolean {
  const ext = X509.decodeExtension(p.der, OID_EXT_KEY_USAGE);
  if (!ext) return true;
  const ber = new BER(new BER(ext).getSequence());
  while (ber.readable > 0) {
    const oid = ber.getObjectIdentifier().toString();
    if (oid === OID_KP_CLIENT_AUTH || oid === OID_ANY_EKU) return true;
  }
  return false;
}

const SHA256_DIGEST_OID = Object.freeze([2, 16, 840, 1, 101, 3, 4, 2, 1]);

/**
 * Host.sign on the board and in mcsim: RSASSA-PKCS1-v1_5 with SHA-256, by the SDK's RSA (bigint, CRT
 * with the key's primes). The board's keys are RSA: its TLS client can present no other kind.
 */
export function signWithKey(key: Uint8Array, data: Uint8Array): Uint8Array {
  let rsa: Required<RSAKey>;
  try {
    rsa = PKCS8.parse(key);
  } catch (e) {
    throw new Error(`the board signs with RSA keys only, and this key is not one (${(e as Error)?.message ?? e})`);
  }
  const H = new Digest("SHA256").process(data);
  return new Uint8Array(new PKCS1_5(rsa, true, SHA256_DIGEST_OID.slice()).sign(H));
}

export default class CertificateManager {
  #verify: boolean;
  #anchors: DERBytes[];
  /** Certificates the handshake registered after verifying them (the peer's leaf), for getKey(). */
  #registered: DERBytes[] = [];
  #ownCerts: DERBytes[] | undefined;
  #ownKey: DERBytes | undefined;

  constructor(options: CertificateManagerOptions) {
    this.#verify = options.verify ?? true;
    const anchors = options.certificate;
    this.#anchors = anchors === undefined ? [] : Array.isArray(anchors) ? anchors.slice() : [anchors];
    this.#ownCerts = options.clientCertificates;
    this.#ownKey = options.clientKey;
  }

  /**
   * Why verify() last refused the server's chain (which check failed, the name expected, the
   * subject seen); undefined while it has refused none. The handshake only throws "certificate:
   * auth err": the TLS stream reads this to tell the host contract why (CERTIFICATE_REJECTED).
   */
  rejection: string | undefined;

  /** Called by the handshake with the server's chain, leaf first. Never throws. */
  verify(certs: Uint8Array[], options: VerifyOptions): boolean {
    if (!this.#verify) return true;
    let reason: string | undefined;
    try {
      reason = this.#check(certs, options.tls_server_name);
    }
    catch (e) {
      reason = `it cannot be verified: ${String(e)}`;
    }
    if (reason === undefined) return true;
    this.rejection = reason;
    trace(`ssl/cert: server certificate rejected: ${reason}\n`);
    return false;
  }

  /** undefined when the chain verifies, else why not. */
  #check(certs: Uint8Array[], serverName: string | undefined): string | undefined {
    if (!serverName) return "no server name to verify it against";
    const first = certs[0];
    if (!first) return "the server sent none";
    if (!this.#anchors.length) return "no trust anchor (the cluster CA) configured";
    const now = Date.now();
    const leaf = parse(first);
    const seen = `the server presented ${describe(leaf)}`;
    const { from, to } = leaf.tbs.validity;
    // The board has no RTC: its clock comes from the API server's Date header, so say what it read.
    if (!isCurrent(leaf, now)) return `not valid now (valid ${new Date(from).toISOString()} .. ${new Date(to).toISOString()}, the clock here reads ${new Date(now).toISOString()}); ${seen}`;
    if (!nameMatches(leaf, serverName)) return `it does not name ${serverName}; ${seen}`;
    if (!chainsToAnchor(certs, leaf, now, this.#anchors)) return `not issued by the configured CA; ${seen}`;
    return undefined;
  }

  /** The handshake registers the peer's leaf after verify(), then asks getKey() for its public key. */
  register(cert: DERBytes): void {
    this.#registered.push(cert);
  }

  /**
   * Peer certificate → its public key as X509.decodeSPKI gives it ({modulus, exponent} or {curve, pub}).
   * Own certificate (or no argument) → the PKCS#8 private key parsed as the SDK's RSA code expects.
   */
  getKey(cert?: DERBytes): PublicKey | Required<RSAKey> | undefined {
    const own = this.#ownCerts?.[0];
    if (cert === undefined || (own !== undefined && (cert === own || sameBytes(cert, own))))
      return this.#ownKey === undefined ? undefined : PKCS8.parse(bytes(this.#ownKey));
    for (const known of this.#registered.concat(this.#anchors)) {
      if (known === cert || sameBytes(known, cert)) return X509.decodeSPKI(bytes(known));
    }
    return undefined;
  }

  /** The client chain to send when the server asks for one (empty = no client certificate). */
  findPreferredCert(_types?: unknown, _names?: unknown): DERBytes[] {
    const certs = this.#ownCerts;
    if (!certs?.length || this.#ownKey === undefined) return [];
    if (!isRSAPrivateKey(bytes(this.#ownKey))) {
      // The SDK signs CertificateVerify with RSA only: sending an EC certificate would fail later.
      trace("ssl/cert: client key is not RSA; sending no client certificate\n");
      return [];
    }
    return certs;
  }

  /** Server side: this side's chain. */
  getCerts(): DERBytes[] {
    return this.#ownCerts ?? [];
  }

  /** Server side, DHE suites only: {p, g} from the resource "dh.der" (DHParameter). */
  getDH(): { p: bigint; g: bigint } {
    const ber = new BER(bytes(new Resource("dh.der")));
    if (ber.getTag() !== 0x30) throw new Error("ssl/cert: bad dh.der");
    ber.getLength();
    const p = ber.getInteger();
    const g = ber.getInteger();
    return { p, g };
  }

  /** Process-wide anchors would need mutable module state, which a preloaded module cannot hold. */
  static register(_cert: DERBytes): never {
    throw new Error("ssl/cert: pass trust anchors as secure.certificate");
  }
}
