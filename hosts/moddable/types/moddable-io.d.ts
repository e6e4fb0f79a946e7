// Project-written declarations for SDK 8.2.x modules that no typings (SDK or @moddable/typings
// 5.6.0) declare under the specifier this project imports. Listed in the manifest's typescript
// types and in tsconfig.json.

// examples/io/tcp/tlssocket/tlssocket.js. The SDK's typings/embedded_io/socket/tls.d.ts is wired to
// the specifier "embedded:io/socket/tls", so it never resolves for this one.
declare module "embedded:io/socket/tcp/tls" {
  export interface TLSSecureOptions {
    /** One trusted CA, DER. */
    certificate?: ArrayBuffer;
    /** SNI and the name the server certificate must carry; defaults to host. */
    serverName?: string;
    /** Default true. */
    verify?: boolean;
    /** DER, leaf first (RSA keys only in 8.2.x). */
    clientCertificates?: ArrayBuffer[];
    /** PKCS#8 DER. */
    clientKey?: ArrayBuffer;
    trace?: boolean;
  }
  export interface TLSSocketOptions {
    /** The TCP class underneath: `new TCP.io({...options, onReadable, onWritable, onError})`. */
    TCP: { io: new (options: any) => any };
    /** Dotted IPv4 literal: the SDK's TCP does not resolve names. */
    address: string;
    port: number;
    host?: string;
    secure?: TLSSecureOptions;
    onReadable?: (this: TLSSocket, count: number) => void;
    /** Only after the handshake, with about 96 bytes less than the TCP socket reports. */
    onWritable?: (this: TLSSocket, count: number) => void;
    /** No argument: peer close, TLS alert or socket error. */
    onError?: (this: TLSSocket) => void;
    [key: string]: unknown;
  }
  export default class TLSSocket {
    constructor(options: TLSSocketOptions);
    close(): void;
    read(count?: number): ArrayBuffer | undefined;
    /** At most 16384 bytes per call ("too large"); returns about the writable count left. */
    write(buffer: ArrayBuffer | Uint8Array): number;
    format: "buffer" | "number";
  }
}
