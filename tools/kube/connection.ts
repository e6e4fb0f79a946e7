// Where a simulated board connects and as whom: from a kubeconfig, or from server + CA + token.
import { readFileSync } from "node:fs";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { request as httpsRequest } from "node:https";
import { isIP } from "node:net";
import { dirname, resolve } from "node:path";
import { checkServerIdentity } from "node:tls";
import { parse as parseYaml } from "yaml";
import { derToPem } from "../../hosts/node/host";

export interface ClusterConnection {
  host: string;
  port: number;
  serverName: string;
  caDer?: Uint8Array;
  token?: string;
  clientCertificate?: Uint8Array;
  clientKey?: Uint8Array;
  verify: boolean;
}

function pemToDer(pem: string, what: string): Uint8Array {
  const m = /-----BEGIN [A-Z ]+-----([\s\S]+?)-----END/.exec(pem);
  if (!m) throw new Error(`${what} is not PEM`);
  return new Uint8Array(Buffer.from(m[1].replace(/\s+/g, ""), "base64"));
}

/** The CA as DER from a PEM or DER file. */
export function readCa(file: string): Uint8Array {
  const bytes = readFileSync(file);
  const text = bytes.toString("latin1");
  const der = text.includes("-----BEGIN") ? pemToDer(text, file) : new Uint8Array(bytes);
  new X509Certificate(Buffer.from(der)); // throws a clear error for a file that is no certificate
  return der;
}

export function parseServer(url: string): { host: string; port: number } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--server "${url}" is not a URL like https://192.168.1.10:6443`);
  }
  if (u.protocol !== "https:") throw new Error(`--server "${url}" must be https://`);
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port: Number(u.port || 443) };
}

/** Reads server, CA and credentials of the current context of a kubeconfig. */
/** "HOST:PORT" as a command line gives it (what names the option in the error). */
export function parseHostPort(text: string, what: string): { host: string; port: number } {
  const m = /^(.+):(\d{1,5})$/.exec(text);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new Error(`${what} must be HOST:PORT, not "${text}"`);
  return { host: m[1], port: Number(m[2]) };
}

export function fromKubeconfig(file: string): ClusterConnection {
  const doc = parseYaml(readFileSync(file, "utf8"));
  const ctxName = doc?.["current-context"];
  const ctx = doc?.contexts?.find((c: any) => c.name === ctxName)?.context;
  if (!ctx) throw new Error(`${file}: no current-context`);
  const cluster = doc.clusters?.find((c: any) => c.name === ctx.cluster)?.cluster;
  const user = doc.users?.find((u: any) => u.name === ctx.user)?.user ?? {};
  if (!cluster?.server) throw new Error(`${file}: cluster "${ctx.cluster}" has no server`);
  const base = dirname(resolve(file));
  const { host, port } = parseServer(cluster.server);
  const data = (inline: string | undefined, path: string | undefined, what: string): Uint8Array | undefined => {
    if (inline) return pemToDer(Buffer.from(inline, "base64").toString("latin1"), what);
    if (path) return pemToDer(readFileSync(resolve(base, path), "latin1"), what);
    return undefined;
  };
  // Keys come as PKCS#8, SEC1 (EC) or PKCS#1 (RSA) PEM; everything downstream takes PKCS#8 DER.
  const keyPem = user["client-key-data"] ? Buffer.from(user["client-key-data"], "base64").toString("latin1") : user["client-key"] ? readFileSync(resolve(base, user["client-key"]), "latin1") : undefined;
  const clientKey = keyPem ? new Uint8Array(createPrivateKey(keyPem).export({ type: "pkcs8", format: "der" })) : undefined;
  const token = user.token ?? (user.tokenFile ? readFileSync(resolve(base, user.tokenFile), "utf8").trim() : undefined);
  return {
    host,
    port,
    serverName: cluster["tls-server-name"] ?? host,
    caDer: data(cluster["certificate-authority-data"], cluster["certificate-authority"], "certificate-authority"),
    token,
    clientCertificate: data(user["client-certificate-data"], user["client-certificate"], "client-certificate"),
    clientKey,
    verify: !cluster["insecure-skip-tls-verify"],
  };
}

export interface ClusterResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The parsed body, when it was JSON. */
  json: any;
}

/**
 * One HTTPS request to the API server as the connection's identity, verifying the server against
 * its CA and server name exactly as the Node host's agent does. For tools and tests; the agent
 * itself speaks through the core's own HTTP client.
 */
export function clusterRequest(
  conn: ClusterConnection,
  method: string,
  path: string,
  options: { body?: unknown; contentType?: string; accept?: string; timeoutMs?: number } = {},
): Promise<ClusterResponse> {
  const { body, contentType = "application/json", accept = "application/json", timeoutMs } = options;
  const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
  return new Promise((resolvePromise, reject) => {
    const req = httpsRequest(
      {
        host: conn.host,
        port: conn.port,
        path,
        method,
        ca: conn.caDer ? derToPem(conn.caDer, "CERTIFICATE") : undefined,
        rejectUnauthorized: conn.verify,
        servername: isIP(conn.serverName) ? undefined : conn.serverName,
        checkServerIdentity: (_host, cert) => checkServerIdentity(conn.serverName, cert),
        cert: conn.clientCertificate ? derToPem(conn.clientCertificate, "CERTIFICATE") : undefined,
        key: conn.clientKey ? derToPem(conn.clientKey, "PRIVATE KEY") : undefined,
        headers: {
          Accept: accept,
          ...(payload !== undefined ? { "Content-Type": contentType, "Content-Length": Buffer.byteLength(payload) } : {}),
          ...(conn.token ? { Authorization: `Bearer ${conn.token}` } : {}),
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => {
          let json: any;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolvePromise({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on("error", reject);
    if (timeoutMs !== undefined) req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)));
    req.end(payload);
  });
}
