// Type declaration for the Moddable SDK's TLS record/handshake engine as hosts/moddable/tls-stream.ts
// uses it: `ssl/session`, which $(MODULES)/crypt/tls_419.json maps to modules/crypt/ssl/session_419.js
// (SDK 8.2.x). The SDK ships no typings for it; this describes only what the project uses, as read
// in that file. tls-stream.ts pulls it in with a triple-slash reference, so no manifest lists it.

declare module "ssl/session" {
  /**
   * What the session reads and writes through. The session calls read()/write() on it and keeps
   * the two counts itself as it goes: the owner sets `readable` from each onReadable(count) and
   * `writable` from each onWritable(count) of the TCP socket underneath.
   */
  export interface SessionSocket {
    /** Bytes the TCP socket holds for reading; the session subtracts what it reads. */
    readable: number;
    /** Bytes the TCP socket accepts for writing; the session subtracts (or re-reads) what it writes. */
    writable: number;
    /** Fills the whole view (never more than `readable`). */
    read(into: Uint8Array): unknown;
    /** Sends the whole record; returns what the socket accepts after it. */
    write(bytes: ArrayBuffer | Uint8Array): number;
  }

  export interface SessionOptions {
    /** SNI, and the name the server certificate must carry. */
    serverName?: string;
    /** Offered in the ClientHello; the choice is not read back from the ServerHello. */
    applicationLayerProtocolNegotiation?: string[];
    /** 0x303: TLS 1.2. */
    protocolVersion?: number;
    /** Default true. */
    verify?: boolean;
    /** Trust anchor, DER. */
    certificate?: ArrayBuffer;
    /** DER, leaf first. */
    clientCertificates?: ArrayBuffer[];
    /** PKCS#8 DER. */
    clientKey?: ArrayBuffer;
    /** false: no session-ID cache. */
    cache?: boolean;
    trace?: boolean;
  }

  export default class Session {
    /** Throws a TLSError for an unsupported protocolVersion; the certificate manager may throw too. */
    constructor(options: SessionOptions);
    /** This end is the client: the next handshake() sends the ClientHello. */
    initiateHandshake(): void;
    /**
     * One step: sends the ClientHello, or reads and processes at most one record, or sends the
     * client's flight (what the records read so far call for). True once the handshake is done, or
     * when a close_notify alert arrived (then `alert` is set). Throws a TLSError on anything else
     * (a rejected certificate, a fatal alert, a failed MAC or Finished).
     */
    handshake(socket: SessionSocket): boolean;
    /** One whole record (header included) from the socket, or undefined until one has arrived. */
    readPacket(socket: SessionSocket): ArrayBuffer | undefined;
    /**
     * Reads records until one carries application data and returns its plaintext (a view of a new
     * buffer, possibly empty); undefined when no complete record is left (a partial one is kept);
     * null when a close_notify alert arrived. Throws a TLSError on a bad record or a fatal alert.
     */
    read(socket: SessionSocket): Uint8Array | undefined | null;
    /** One application_data record; data at most 16384 bytes ("too large"). Returns writable - 32. */
    write(socket: SessionSocket, data: Uint8Array): number;
    /** Sends a close_notify alert. */
    close(socket: SessionSocket): void;
    /** The alert the peer sent; only a close_notify is ever kept (others throw). */
    readonly alert?: { level: number; description: number };
    /**
     * The certificate manager (the project's ssl/cert, made from these options); deleted once the
     * handshake is done. rejection: why it refused the server's chain.
     */
    readonly certificateManager?: { rejection?: string };
  }
}
