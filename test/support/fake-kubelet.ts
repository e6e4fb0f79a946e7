// A stand-in for a node's kubelet API, for tests of what the cluster does towards kubelets
// (kube-apiserver's nodes/<n>/proxy, metrics-server's scrapes): an HTTPS server on 127.0.0.1 with a
// given serving certificate that records who called it, and a Node object that points at it.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import type { ControlPlane } from "../../tools/controlplane/launcher";

export interface KubeletCall {
  method: string;
  path: string;
  authorization?: string;
  /** The client certificate's subject (CN=…, O=…) when one was presented, and whether it chains to clientCaPem. */
  clientCertificate?: { subject: string; authorized: boolean };
}

export interface FakeKubelet {
  port: number;
  calls: KubeletCall[];
  close(): Promise<void>;
}

export type KubeletHandler = (req: IncomingMessage, res: ServerResponse, call: KubeletCall) => void | Promise<void>;

export const derCertToPem = (der: Uint8Array): string => new X509Certificate(Buffer.from(der)).toString();
export const pkcs8ToPem = (der: Uint8Array): string => createPrivateKey({ key: Buffer.from(der), format: "der", type: "pkcs8" }).export({ type: "pkcs8", format: "pem" }) as string;

/**
 * Serves `handler` over TLS on host (127.0.0.1 by default) with the certificate (DER or PEM) and
 * PKCS#8 key; asks for, but does not require, a client certificate.
 */
export async function startFakeKubelet(options: { certificate: Uint8Array | string; key: Uint8Array | string; clientCaPem?: string; host?: string; handler: KubeletHandler }): Promise<FakeKubelet> {
  const calls: KubeletCall[] = [];
  const server: Server = createServer(
    {
      cert: typeof options.certificate === "string" ? options.certificate : derCertToPem(options.certificate),
      key: typeof options.key === "string" ? options.key : pkcs8ToPem(options.key),
      ca: options.clientCaPem,
      requestCert: true, // as the kubelet does with --client-ca-file: optional, checked when given
      rejectUnauthorized: false,
    },
    (req, res) => {
      const socket = req.socket as TLSSocket;
      const peer = socket.getPeerCertificate();
      const call: KubeletCall = {
        method: req.method ?? "",
        path: req.url ?? "",
        authorization: req.headers.authorization,
        clientCertificate: peer && peer.subject ? { subject: Object.entries(peer.subject).map(([k, v]) => `${k}=${v}`).join(", "), authorized: socket.authorized } : undefined,
      };
      calls.push(call);
      Promise.resolve(options.handler(req, res, call)).catch((err: Error) => {
        if (!res.headersSent) res.writeHead(500, { "Content-Type": "text/plain" });
        res.end(`fake kubelet: ${err.message}\n`);
      });
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, options.host ?? "127.0.0.1", () => resolve());
  });
  return {
    port: (server.address() as { port: number }).port,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Creates (as admin) a Node whose status points at a kubelet on internalIP:port, the way a kubelet
 * registers: addresses (an unresolvable Hostname first, so a client that ignores the
 * InternalIP-first preference fails), daemonEndpoints, capacity 1 CPU and 64Mi.
 * Note: kube-apiserver's nodes/<name>/proxy refuses a node address that is not global unicast
 * ("address not allowed"), so 127.0.0.1 serves pod logs and metrics-server, not nodes/proxy.
 */
export async function registerFakeNode(cp: ControlPlane, name: string, port: number, options: { labels?: Record<string, string>; internalIP?: string } = {}): Promise<void> {
  const labels = options.labels ?? {};
  const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const resources = { cpu: "1", memory: "64Mi", pods: "1" };
  const node = {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name, labels: { "kubernetes.io/hostname": name, ...labels } },
    status: {
      addresses: [
        { type: "Hostname", address: `${name}.invalid` },
        { type: "InternalIP", address: options.internalIP ?? "127.0.0.1" },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: port } },
      capacity: resources,
      allocatable: resources,
      conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", message: "kubelet is posting ready status", lastHeartbeatTime: now, lastTransitionTime: now }],
    },
  };
  await cp.kubectl(["create", "-f", "-"], { input: JSON.stringify(node) });
}
