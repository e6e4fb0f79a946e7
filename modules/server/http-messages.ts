// What the kubelet API's HTTP server hands its handler and takes back: requests, responses (whole or
// streamed), the status texts.
import type { PeerInfo } from "../host";

export interface ServerRequest {
  method: string;
  /** The request-target as sent. */
  target: string;
  /** Percent-decoded path without the query; never holds "." or ".." segments. */
  path: string;
  /** What follows "?" in the target, undecoded ("" for none). */
  query: string;
  /** Lower-case names. */
  headers: Map<string, string>;
  body: Uint8Array;
  peer: PeerInfo;
}

export interface ServerResponse {
  status: number;
  /** Content-Type and the like; Content-Length, Connection and Date are the server's. */
  headers?: [string, string][];
  body?: string | Uint8Array;
  /**
   * A streamed body (kubectl logs -f): after `body`, everything stream() writes goes out as one
   * chunk each (Transfer-Encoding: chunked) until it calls end(); the connection closes after it.
   * stream() returns what to call when the client goes first.
   */
  stream?: (write: (text: string) => void, end: () => void) => () => void;
}

/** Answers one request; a throw or a rejection becomes a 500, a late answer a 503. */
export type RequestHandler = (request: ServerRequest) => ServerResponse | Promise<ServerResponse>;

export interface HttpServerStats {
  /** Connections accepted, and refused because maxConnections were open. */
  accepted: number;
  refused: number;
  /** Requests answered (by the handler or by the server itself). */
  responses: number;
  /** Requests the server refused itself: malformed, too big, too slow, handler failures. */
  rejected: number;
  bytesReceived: number;
  bytesSent: number;
}

export const REASONS: Readonly<Record<number, string>> = Object.freeze({
  100: "Continue",
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
});

/** A plain-text answer: Go's http.Error shape (the message, a newline unless it has one). */
export function textResponse(status: number, message: string, newline = true): ServerResponse {
  return { status, headers: [["Content-Type", "text/plain; charset=utf-8"]], body: newline && !message.endsWith("\n") ? `${message}\n` : message };
}
