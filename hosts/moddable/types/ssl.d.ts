// Type declarations for the Moddable SDK crypto modules that hosts/moddable/ssl/cert.ts imports.
// The SDK (8.2.x) ships no typings for them; these describe only what the project uses, as read in
// $MODDABLE/modules/crypt/etc/*.js and digest/crypt.js. Wire this file into a manifest with
//   "typescript": {"tsconfig": {"compilerOptions": {"types": ["<repo>/hosts/moddable/types/ssl"]}}}

/** DER bytes as the TLS code hands them around: an ArrayBuffer, a view into a record, or a Resource. */
type DERBytes = ArrayBuffer | Uint8Array | HostBuffer;

declare module "ber" {
  export default class BER {
    /** Anything but an ArrayBuffer or Uint8Array gives an empty, growable encoder. */
    constructor(buffer?: ArrayBuffer | Uint8Array);
    readonly readable: number;
    readonly i: number;
    getTag(): number;
    /** -1 for the indefinite form. */
    getLength(): number;
    peek(): number;
    skip(length: number): void;
    getc(): number;
    /** The whole next TLV (tag, length and value) as a view. */
    next(): Uint8Array;
    getInteger(): bigint;
    getBitString(): Uint8Array;
    getOctetString(): Uint8Array;
    getObjectIdentifier(): Uint32Array;
    /** The contents of a SEQUENCE as a view. */
    getSequence(): Uint8Array;
    getChunk(n: number): Uint8Array;
  }
}

declare module "bin" {
  const Bin: {
    comp(a: DERBytes, b: DERBytes, n?: number): number;
    xor(a: DERBytes, b: DERBytes): ArrayBuffer;
  };
  export default Bin;
}

declare module "curve" {
  export default class Curve {
    constructor(name: "secp256r1" | "secp384r1");
    readonly n: bigint;
    readonly orderSize: number;
  }
}

declare module "x509" {
  import type Curve from "curve";

  export interface RSAPublicKey {
    modulus: bigint;
    exponent: bigint;
    algo: Uint32Array;
  }
  export interface ECPublicKey {
    curve: Curve;
    /** An ECPoint. */
    pub: object;
    algo: Uint32Array;
  }
  /** decodeSPKI gives `{}` for key types it does not know. */
  export type PublicKey = RSAPublicKey | ECPublicKey | Record<string, never>;

  export interface Certificate {
    /** The whole TBSCertificate TLV: what the signature covers. */
    tbs: Uint8Array;
    /** signatureAlgorithm OID, e.g. "1,2,840,10045,4,3,2" when converted with toString(). */
    algo: Uint32Array;
    /** The signatureValue BIT STRING contents (DER Ecdsa-Sig-Value for ECDSA). */
    sig: Uint8Array;
    spki: PublicKey;
  }
  export interface TBSCertificate {
    version?: Uint8Array;
    serialNumber: Uint8Array;
    signature: Uint8Array;
    /** Full TLV of the issuer Name. */
    issuer: Uint8Array;
    /** Milliseconds since the epoch (Date.UTC). */
    validity: { from: number; to: number };
    /** Full TLV of the subject Name. */
    subject: Uint8Array;
    subjectPublicKeyInfo: Uint8Array;
  }
  export interface GeneralName {
    /** 1 rfc822Name, 2 dNSName, 6 URI (string values); 7 iPAddress (ArrayBuffer of 4 or 16 bytes). */
    tag: number;
    value: string | ArrayBuffer;
  }

  const X509: {
    /** Needs an ArrayBuffer or a Uint8Array (wrap HostBuffers). Throws on malformed input or unknown curves. */
    decode(buf: ArrayBuffer | Uint8Array): Certificate;
    decodeTBS(tbs: ArrayBuffer | Uint8Array): TBSCertificate;
    decodeSPKI(buf: ArrayBuffer | Uint8Array): PublicKey;
    /** keyIdentifier of the Authority Key Identifier extension, if present. */
    decodeAKI(buf: ArrayBuffer | Uint8Array): Uint8Array | undefined;
    /** Subject Key Identifier, or SHA-1 of the public key when the extension is absent. */
    decodeSKI(buf: ArrayBuffer | Uint8Array): Uint8Array | ArrayBuffer;
    decodeSAN(buf: ArrayBuffer | Uint8Array): GeneralName[] | undefined;
    /** The extnValue contents (the DER inside the OCTET STRING), or undefined when absent. */
    decodeExtension(buf: ArrayBuffer | Uint8Array, oid: readonly number[]): ArrayBuffer | undefined;
  };
  export default X509;
}

declare module "ecdsa" {
  import type Curve from "curve";
  export default class ECDSA {
    constructor(key: object | bigint, curve: Curve, priv?: boolean, oid?: number[]);
    /** With asn1, sig is a DER Ecdsa-Sig-Value; otherwise r || s. H must not exceed the order size. */
    verify(H: ArrayBuffer, sig: ArrayBuffer | Uint8Array, asn1?: boolean): boolean;
    sign(H: ArrayBuffer, asn1?: boolean): ArrayBuffer;
  }
}

declare module "pkcs1_5" {
  export interface RSAKey {
    modulus: bigint;
    exponent: bigint;
    privExponent?: bigint;
    prim1?: bigint;
    prim2?: bigint;
    exponent1?: bigint;
    exponent2?: bigint;
    coefficient?: bigint;
  }
  export default class PKCS1_5 {
    constructor(key: RSAKey, priv?: boolean, oid?: number[]);
    readonly modulusSize: number;
    readonly rsa: { process(c: bigint): bigint; readonly modulusSize: number };
    /** EMSA-PKCS1-v1_5 encoding of H (DigestInfo with this instance's OID) as an integer of emLen bytes. */
    emsaEncode(H: ArrayBuffer, emLen: number): bigint;
    verify(H: ArrayBuffer, sig: ArrayBuffer | Uint8Array): boolean;
    sign(H: ArrayBuffer): ArrayBuffer;
  }
}

declare module "pkcs8" {
  import type { RSAKey } from "pkcs1_5";
  const PKCS8: {
    /** RSA keys only (PrivateKeyInfo with an RSAPrivateKey inside). */
    parse(buf: ArrayBuffer | Uint8Array): Required<RSAKey>;
  };
  export default PKCS8;
}

// The SDK's typings/crypt.d.ts declares Digest with write(string | ArrayBuffer) and no process();
// the native write accepts any buffer view, and process() exists in crypt.js.
declare module "crypt" {
  export interface Digest {
    write(message: string | ArrayBufferLike | ArrayBufferView): void;
    process(...parts: (string | ArrayBufferLike | ArrayBufferView)[]): ArrayBuffer;
  }
}
