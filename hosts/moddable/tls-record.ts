// The record layer both TLS ends share (tls-stream.ts the client, listener.ts the server): the
// counting socket ssl/session reads and writes through, handshake steps, draining every complete
// record, writing queued plaintext in records, and closing with close_notify where it can.
/// <reference path="./types/ssl-session.d.ts" />
/// <reference path="./types/ssl-server.d.ts" />
import type TCP from "embedded:io/socket/tcp";
import type Session from "ssl/session";
import type { SessionSocket } from "ssl/session";
import SSLAlert from "ssl/alert";

/** Alert level warning and description close_notify (RFC 5246 7.2). */
const WARNING = 1;
const CLOSE_NOTIFY = 0;

/**
 * What a TLS failure says. The SDK's session reads each record into a buffer that may grow to
 * 32 KiB; a header claiming more (garbage, or another protocol on the port) makes XS throw only
 * "newLength > maxByteLength", which names nothing the reader knows.
 */
export function tlsFailure(e: unknown): Error {
  const message = String((e as Error)?.message ?? e ?? "TLS failure");
  if (/maxByteLength/.test(message)) return new Error("TLS: the peer's record header claims more than 32 KiB: not TLS (garbage, or another protocol)");
  return e instanceof Error ? e : new Error(message);
}

/**
 * The SDK's TLS stack wants ArrayBuffers it keeps (certificates, keys, the CA) for as long as a
 * connection or the listener lives. A view over all of its buffer (what Preferences and the CSR
 * decoding give) is handed over as it is — nothing writes into these bytes — and anything else is
 * copied: a second copy of a chain and a key is kilobytes of chunks held for nothing.
 */
export function keepable(bytes: Uint8Array): ArrayBuffer {
  const buffer = bytes.buffer as ArrayBuffer;
  return bytes.byteOffset === 0 && bytes.byteLength === buffer.byteLength ? buffer : (bytes.slice().buffer as ArrayBuffer);
}

/** TLS plaintext per record (2^14). */
export const MAX_FRAGMENT = 16384;
/**
 * Bytes a record adds to its plaintext, rounded up: 5 header, then AES-CBC 16 IV + 32 MAC + up to
 * 16 padding, or AES-GCM 8 nonce + 16 tag.
 */
export const RECORD_OVERHEAD = 96;
/** Handshake steps in one callback; far more than any real flight needs (a guard against a loop). */
const MAX_STEPS = 256;

/** What the session reads and writes through: the TCP socket plus the counts it keeps. */
export function wireOf(tcp: TCP): SessionSocket {
  return {
    readable: 0,
    writable: 0,
    read: (into: Uint8Array) => tcp.read(into as any),
    write: (bytes: ArrayBuffer | Uint8Array) => {
      const left = tcp.write(bytes as any) as unknown;
      return typeof left === "number" ? left : 0; // undefined once the SDK saw the socket close
    },
  };
}

/**
 * Steps the handshake as far as the bytes at hand allow; true once it is done. One step reads at
 * most one record or writes one flight; a step that did neither waits for the peer.
 */
export function stepHandshake(session: Session, wire: SessionSocket): boolean {
  for (let step = 0; ; step++) {
    if (step === MAX_STEPS) throw new Error("TLS handshake does not progress");
    const readable = wire.readable;
    const writable = wire.writable;
    if (session.handshake(wire)) return true;
    if (wire.readable === readable && wire.writable === writable) return false;
  }
}

/**
 * Every complete record the socket holds, decrypted and delivered in order (a partial one stays in
 * the session). Returns true when the peer closed the session (close_notify).
 */
export function drainRecords(session: Session, wire: SessionSocket, alive: () => boolean, deliver: (data: Uint8Array) => void): boolean {
  while (alive() && wire.readable > 0) {
    const data = session.read(wire);
    if (data === null) return true;
    if (data === undefined) return false;
    if (data.byteLength) deliver(data);
  }
  return false;
}

/** Writes queued plaintext in records, as much as the socket takes; the rest stays queued. */
export function flushRecords(session: Session, wire: SessionSocket, pending: Uint8Array[], alive: () => boolean): void {
  while (alive() && pending.length) {
    const room = wire.writable - RECORD_OVERHEAD;
    if (room <= 0) return;
    const head = pending[0];
    const n = Math.min(head.byteLength, room, MAX_FRAGMENT);
    session.write(wire, n === head.byteLength ? head : head.subarray(0, n));
    if (n === head.byteLength) pending.shift();
    else pending[0] = head.subarray(n);
  }
}

/** close_notify when asked and there is room, then the socket; nothing thrown. */
export function closeQuietly(tcp: TCP, session: Session | undefined, wire: SessionSocket, notify: boolean): void {
  if (notify && session && wire.writable > RECORD_OVERHEAD) {
    try {
      // Not session.close(): the SDK 8.2 sends close_notify with alert level 0, which OpenSSL peers
      // reject as "unknown alert type" (and answer with a fatal illegal_parameter).
      const packet = SSLAlert.packetize(session, WARNING, CLOSE_NOTIFY);
      wire.writable = wire.write(packet);
    } catch {
      // the session or the socket is past sending
    }
  }
  try {
    tcp.close();
  } catch {
    // already closed by the SDK
  }
}
