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
declare module "ssl/constants" {
  export const ECDHE_RSA: number;
}
declare module "rng" {
  const RNG: { get(n: number): ArrayBuffer };
  export default RNG;
}

