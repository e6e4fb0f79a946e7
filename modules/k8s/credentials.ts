// When the agent's credentials expire: an X.509 certificate's validity (a small DER walk, no
// crypto), a JWT's exp and iat claims (ServiceAccount tokens). Never throws: undefined when the
// bytes are not what they should be.
import { children, contents, oidText, slice, tlv, type Tlv } from "./der";

export interface Validity {
  /** Epoch ms. */
  notBefore: number;
  notAfter: number;
}

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) → epoch ms. */
function derTime(der: Uint8Array, t: Tlv): number | undefined {
  let s = "";
  for (let i = t.start; i < t.end; i++) s += String.fromCharCode(der[i]);
  const m = t.tag === 0x17 ? /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s) : t.tag === 0x18 ? /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s) : null;
  if (!m) return undefined;
  let year = Number(m[1]);
  if (t.tag === 0x17) year += year < 50 ? 2000 : 1900; // RFC 5280 4.1.2.5.1
  return Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

/** What the agent needs to know of one of its certificates. */
export interface CertificateFacts {
  validity: Validity;
  /** subjectPublicKeyInfo, DER: the key the certificate is for. */
  publicKeyInfo: Uint8Array;
  /** The subject's CN and O values. */
  commonName: string;
  organizations: string[];
  /** subjectAltName entries: IP addresses as text (IPv4 dotted, IPv6 hex groups), DNS names. */
  ipAddresses: string[];
  dnsNames: string[];
}

function ipText(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: string[] = [];
  for (let i = 0; i + 1 < b.length; i += 2) groups.push(((b[i] << 8) | b[i + 1]).toString(16));
  return groups.join(":");
}

function ascii(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}

/** Certificate → tbsCertificate → [version] serial signature issuer validity subject spki … [3] extensions */
export function certificateFacts(der: Uint8Array | undefined): CertificateFacts | undefined {
  if (!der) return undefined;
  const cert = tlv(der, 0);
  if (!cert || cert.tag !== 0x30) return undefined;
  const tbs = tlv(der, cert.start, cert.end);
  if (!tbs || tbs.tag !== 0x30) return undefined;
  const fields = children(der, tbs);
  if (fields[0]?.tag === 0xa0) fields.shift(); // explicit version
  const [, , , validity, subject, spki] = fields;
  if (!validity || validity.tag !== 0x30 || !subject || subject.tag !== 0x30 || !spki || spki.tag !== 0x30) return undefined;
  const [from, to] = children(der, validity);
  const notBefore = from && derTime(der, from);
  const notAfter = to && derTime(der, to);
  if (notBefore === undefined || notAfter === undefined) return undefined;
  const facts: CertificateFacts = { validity: { notBefore, notAfter }, publicKeyInfo: slice(der, spki), commonName: "", organizations: [], ipAddresses: [], dnsNames: [] };
  for (const rdn of children(der, subject)) {
    for (const atv of children(der, rdn)) {
      const [type, value] = children(der, atv);
      if (!type || !value) continue;
      const id = oidText(contents(der, type));
      if (id === "2.5.4.3") facts.commonName = ascii(contents(der, value));
      else if (id === "2.5.4.10") facts.organizations.push(ascii(contents(der, value)));
    }
  }
  const extensions = fields.find((f) => f.tag === 0xa3);
  const list = extensions && tlv(der, extensions.start, extensions.end);
  for (const ext of list ? children(der, list) : []) {
    const parts = children(der, ext);
    if (!parts.length || oidText(contents(der, parts[0])) !== "2.5.29.17") continue;
    const value = parts[parts.length - 1];
    const names = tlv(der, value.start, value.end);
    for (const name of names ? children(der, names) : []) {
      if (name.tag === 0x87) facts.ipAddresses.push(ipText(contents(der, name)));
      else if (name.tag === 0x82) facts.dnsNames.push(ascii(contents(der, name)));
    }
  }
  return facts;
}

export function certificateValidity(der: Uint8Array | undefined): Validity | undefined {
  return certificateFacts(der)?.validity;
}

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

function base64url(text: string): string | undefined {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const ch of text.replace(/=+$/, "")) {
    const v = B64URL.indexOf(ch === "+" ? "-" : ch === "/" ? "_" : ch);
    if (v < 0) return undefined;
    value = (value << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += String.fromCharCode((value >> bits) & 0xff);
    }
  }
  return out;
}

/** A JWT's exp (and iat as notBefore, when present); undefined for a token that is no JWT (a static token). */
export function tokenValidity(token: string | undefined): Validity | undefined {
  if (!token) return undefined;
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const payload = base64url(parts[1]);
    if (payload === undefined) return undefined;
    const claims = JSON.parse(payload);
    if (typeof claims?.exp !== "number") return undefined;
    const iat = typeof claims.iat === "number" ? claims.iat : typeof claims.nbf === "number" ? claims.nbf : claims.exp;
    return { notBefore: iat * 1000, notAfter: claims.exp * 1000 };
  } catch {
    return undefined;
  }
}

/** Warn when less than this share of a credential's lifetime is left … */
export const EXPIRY_WARNING_FRACTION = 0.2;
/** … but never earlier than this before it expires. */
export const EXPIRY_WARNING_MAX_MS = 30 * 24 * 3600_000;

/** Is the credential close enough to its end to say so (or past it)? */
export function expiringSoon(v: Validity, now: number): boolean {
  const threshold = Math.min(EXPIRY_WARNING_MAX_MS, (v.notAfter - v.notBefore) * EXPIRY_WARNING_FRACTION);
  return v.notAfter - now <= threshold;
}
