// A raw HTTPS request to the API server, for asserting exact status codes in tests.
import { clusterRequest } from "../../tools/kube/connection";
import type { ControlPlane } from "../../tools/controlplane/launcher";

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json<T = any>(): T;
}

/** A raw request as the holder of `token` (verified against the cluster CA), for exact status codes. */
export async function apiRequest(
  cp: ControlPlane,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  contentType = "application/json",
): Promise<RawResponse> {
  const conn = { host: cp.host, port: cp.port, serverName: cp.host, caDer: cp.caDer, token, verify: true };
  const res = await clusterRequest(conn, method, path, { body, contentType });
  return { status: res.status, headers: res.headers, body: res.text, json: () => JSON.parse(res.text) };
}

/** Polls fn until it returns a truthy value or the deadline passes; returns that value. */
export async function eventually<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined | false>, intervalMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`);
}
