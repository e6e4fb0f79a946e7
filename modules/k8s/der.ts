// Just enough DER for the agent's own certificates: read a TLV, walk a certificate to its validity,
// public key, subject and SANs, and write the few structures a PKCS#10 request needs; base64 and PEM
// for the CSR API. Hand-written because the XS core cannot take the npm ASN.1 libraries (they need
// Node built-ins or are far larger than the dozen structures used here). Readers never throw:
// undefined when the bytes are not what they should be.

export interface Tlv {
  tag: number;
  /** Where the TLV starts (its tag byte), where its contents start and where it ends. */
  at: number;
  start: number;
  end: number;
}

/** One DER TLV at `at`, inside [0, limit). */
export function tlv(der: Uint8Array, at: number, limit = der.length): Tlv | undefined {
  if (at + 2 > limit) return undefined;
  const tag = der[at];
  let len = der[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 3 || start + n > limit) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | der[start + i];
    start += n;
  }
  const end = start + len;
  return end <= limit ? { tag, at, start, end } : undefined;
}

/** The TLVs directly inside a constructed one. */
export function children(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const t = tlv(der, at, parent.end);
    if (!t) return out;
    out.push(t);
    at = t.end;
  }
  return out;
}

function length(n: number): number[] {
  if (n < 0x80) return [n];
  if (n < 0x100) return [0x81, n];
  if (n < 0x10000) return [0x82, n >> 8, n & 0xff];
  return [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
}

/** A TLV from its tag and contents. */
export function encode(tag: number, ...contents: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const c of contents) size += c.length;
  const head = [tag, ...length(size)];
  const out = new Uint8Array(head.length + size);
  out.set(head, 0);
  let at = head.length;
  for (const c of contents) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export const sequence = (...contents: Uint8Array[]) => encode(0x30, ...contents);
export const set = (...contents: Uint8Array[]) => encode(0x31, ...contents);

/** An OBJECT IDENTIFIER from its dotted form. */
export function oid(dotted: string): Uint8Array {
  const parts = dotted.split(".").map(Number);
  const bytes = [parts[0] * 40 + parts[1]];
  for (let i = 2; i < parts.length; i++) {
    let v = parts[i];
    const base128 = [v & 0x7f];
    while ((v = Math.floor(v / 128)) > 0) base128.unshift((v & 0x7f) | 0x80);
    bytes.push(...base128);
  }
  return encode(0x06, new Uint8Array(bytes));
}

/** UTF8String (the agent's names are ASCII: node names are DNS labels). */
export function utf8String(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 0x7f;
  return encode(0x0c, bytes);
}

export const slice = (der: Uint8Array, t: Tlv) => der.subarray(t.at, t.end);
export const contents = (der: Uint8Array, t: Tlv) => der.subarray(t.start, t.end);

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The dotted form of an OBJECT IDENTIFIER's contents. */
export function oidText(bytes: Uint8Array): string {
  if (!bytes.length) return "";
  const parts = [Math.floor(bytes[0] / 40), bytes[0] % 40];
  let v = 0;
  for (let i = 1; i < bytes.length; i++) {
    v = v * 128 + (bytes[i] & 0x7f);
    if (!(bytes[i] & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join(".");
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

export function toBase64(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63] + (i + 1 < bytes.length ? B64[(n >> 6) & 63] : "=") + (i + 2 < bytes.length ? B64[n & 63] : "=");
  }
  return out;
}

/** Standard or URL-safe base64, whitespace ignored; undefined on anything else. */
export function fromBase64(text: string): Uint8Array | undefined {
  const clean = text.replace(/[\s=]+/g, "");
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let bits = 0;
  let value = 0;
  let at = 0;
  for (let i = 0; i < clean.length; i++) {
    const ch = clean[i];
    const v = B64.indexOf(ch === "-" ? "+" : ch === "_" ? "/" : ch);
    if (v < 0) return undefined;
    value = ((value << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (value >> bits) & 0xff;
    }
  }
  return out.subarray(0, at);
}

export function toPem(der: Uint8Array, label: string): string {
  const b64 = toBase64(der);
  let body = "";
  for (let i = 0; i < b64.length; i += 64) body += `${b64.slice(i, i + 64)}\n`;
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}

/** The first PEM block with this label, as DER. */
export function fromPem(pem: string, label: string): Uint8Array | undefined {
  const begin = `-----BEGIN ${label}-----`;
  const from = pem.indexOf(begin);
  if (from < 0) return undefined;
  const to = pem.indexOf(`-----END ${label}-----`, from);
  if (to < 0) return undefined;
  return fromBase64(pem.slice(from + begin.length, to));
}
