// CI only (tsconfig.json; never listed in the manifest): what SDK 8.2.x's own typings declare but
// @moddable/typings 5.6.0 lacks or types differently. In mcconfig builds the SDK's typings apply.

// typings/neopixel.d.ts (new after 5.6.0).
declare module "neopixel" {
  export default class NeoPixel extends HostBuffer {
    constructor(options?: { pin?: number; length?: number; order?: string });
    close(): void;
    update(): void;
    makeRGB(r: number, g: number, b: number): number;
    makeHSB(h: number, s: number, b: number): number;
    setPixel(index: number, color: number): void;
    fill(color: number, index?: number, count?: number): void;
    getPixel(index: number): number;
    brightness: number;
    readonly length: number;
  }
}

// typings/crypt.d.ts: 5.6.0 has none; hosts/moddable/types/ssl.d.ts augments this class.
declare module "crypt" {
  export class Digest {
    constructor(type: "MD5" | "SHA1" | "SHA224" | "SHA256" | "SHA384" | "SHA512");
    close(): ArrayBuffer;
    reset(): void;
    readonly blockSize: number;
    readonly outputSize: number;
  }
}

// xs/includes/xs.d.ts (8.2.x) returns the primitive bigint; 5.6.0 said BigInt. A later interface
// declaration's overloads come first, so this one wins.
interface BigIntConstructor {
  fromArrayBuffer(buffer: ArrayBufferLike): bigint;
}

// modules/io: the ECMA-419 listener (@moddable/typings 5.6.0 lacks it; SDK 8.2 declares it). read() hands over an
// accepted connection, for new TCP({from}).
declare module "embedded:io/socket/listener" {
  export default class Listener {
    constructor(options: { port: number; address?: string; onReadable?: (this: Listener, count: number) => void; onError?: (this: Listener) => void; [key: string]: unknown });
    read(): unknown;
    close(): void;
  }
}
