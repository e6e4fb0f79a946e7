// The SDK modules hosts/moddable/listener.ts uses to run the server side of a TLS 1.2 handshake
// with ECDHE_RSA (which the SDK's ssl_handshake.js does not implement as a server). SDK 8.2.x.
declare module "ssl/handshake" {
  const handshakeProtocol: {
    serverHello: object;
    certificate: object;
    serverHelloDone: object;
    /** Frames a handshake message (type, length, body.getChunk()), adds it to the transcript and returns the record. */
    packetize(session: object, msgType: number, body: object): ArrayBuffer;
  };
  export default handshakeProtocol;
}
declare module "ssl/stream" {
  export default class SSLStream {
    constructor(buffer?: ArrayBuffer, size?: number);
  }
}
declare module "ssl/prf" {
  export default function PRF(session: object, secret: ArrayBuffer, label: string, seed: ArrayBuffer, n: number, hash?: string): ArrayBuffer;
}
declare module "ssl/alert" {
  const SSLAlert: {
    /** An alert record, encrypted when the session is (recordProtocol.packetize). */
    packetize(session: object, level: number, description: number): ArrayBuffer;
  };
  export default SSLAlert;
}
declare module "ssl/ciphersuites" {
  const supportedCipherSuites: readonly { value: readonly number[]; keyExchangeAlgorithm: number }[];
  export default supportedCipherSuites;
}
declare module "ssl/constants" {
  export const ECDHE_RSA: number;
}
declare module "rng" {
  /** init: seeds the RC4 state again (absent: from the C library's rand()). */
  const RNG: { get(n: number): ArrayBuffer; init(seed?: ArrayBuffer): void };
  export default RNG;
}

// The project's own certificate manager (hosts/moddable/ssl/cert.ts, mapped to "ssl/cert" by the
// manifest): the server-side checks the listener uses. Kept in step with that file by hand.
declare module "ssl/cert" {
  export interface ClientIdentity {
    commonName: string;
    organizations: string[];
  }
  export const CLIENT_SIGNATURE_SCHEMES: readonly number[];
  export function verifyClientChain(certs: Uint8Array[], anchors: (ArrayBuffer | Uint8Array)[], now: number): { identity: ClientIdentity; key: object } | string;
  export function publicKeyOf(der: Uint8Array): object | undefined;
  export function verifyTlsSignature(key: object, scheme: number, transcriptSha256: ArrayBuffer, signature: Uint8Array): boolean;
  export function signWithKey(key: Uint8Array, data: Uint8Array): Uint8Array;
}
