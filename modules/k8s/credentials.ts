// When the agent's credentials expire: an X.509 certificate's validity (a small DER walk, no
// crypto), a JWT's exp and iat claims (ServiceAccount tokens). Never throws: undefined when the
// bytes are not what they should be.

export interface Validity {
  /** Epoch ms. */
  notBefore: number;
  notAfter: number;
}

/** One DER TLV at `at`: its tag, where its contents start and end. */
function tlv(der: Uint8Array, at: number): { tag: number; start: number; end: number } | undefined {
  if (at + 2 > der.length) return undefined;
  const tag = der[at];
  let len = der[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 3 || start + n > der.length) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | der[start + i];
    start += n;
  }
  const end = start + len;
  return end <= der.length ? { tag, start, end } : undefined;
}

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) → epoch ms. */
function derTime(der: Uint8Array, t: { tag: number; start: number; end: number }): number | undefined {
  let s = "";
  for (let i = t.start; i < t.end; i++) s += String.fromCharCode(der[i]);
  const m = t.tag === 0x17 ? /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s) : t.tag === 0x18 ? /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(s) : null;
  if (!m) return undefined;
  let year = Number(m[1]);
  if (t.tag === 0x17) year += year < 50 ? 2000 : 1900; // RFC 5280 4.1.2.5.1
  return Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

/** Certificate → tbsCertificate → [version] serial signature issuer validity … */
export function certificateValidity(der: Uint8Array | undefined): Validity | undefined {
  if (!der) return undefined;
  const cert = tlv(der, 0);
  if (!cert || cert.tag !== 0x30) return undefined;
  const tbs = tlv(der, cert.start);
  if (!tbs || tbs.tag !== 0x30) return undefined;
  let at = tbs.start;
  let field = tlv(der, at);
  if (field && field.tag === 0xa0) field = tlv(der, (at = field.end)); // explicit version
  for (let i = 0; i < 3 && field; i++) field = tlv(der, (at = field.end)); // serial, signature, issuer
  if (!field || field.tag !== 0x30) return undefined;
  const from = tlv(der, field.start);
  const to = from && tlv(der, from.end);
  if (!from || !to) return undefined;
  const notBefore = derTime(der, from);
  const notAfter = derTime(der, to);
  return notBefore !== undefined && notAfter !== undefined ? { notBefore, notAfter } : undefined;
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
