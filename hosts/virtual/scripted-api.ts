// A scripted, in-memory stand-in for the parts of the Kubernetes API the agent uses — a test double
// for fast unit tests, the XS engine and the bench only. The real control plane (tools/controlplane) is what proves behaviour;
// this only has to be faithful where the tests look. Pure JavaScript (runs inside XS too).
import type { ParsedRequest, VirtualTime } from "./host";

export interface Fault {
  match: (req: ParsedRequest) => boolean;
  /** HTTP status to answer with, or a connection drop, or no answer at all. */
  status?: number;
  drop?: boolean;
  hang?: boolean;
  times: number;
}

const REASONS: Record<number, string> = { 200: "OK", 201: "Created", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict", 422: "Unprocessable Entity", 500: "Internal Server Error", 503: "Service Unavailable" };
const STATUS_REASON: Record<number, string> = { 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "AlreadyExists", 422: "Invalid", 500: "InternalError", 503: "ServiceUnavailable" };
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

export function httpDate(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${DAYS[d.getUTCDay()]}, ${p(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} GMT`;
}

function isObject(v: unknown): v is Record<string, any> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: any, patch: any): any {
  if (!isObject(patch)) return patch;
  const out: Record<string, any> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Just enough strategic merge for node status: conditions and addresses merge by type. */
export function strategicMergeNode(target: any, patch: any): any {
  const out = mergePatch(target, { ...patch, status: undefined });
  if (patch.status) {
    const status = { ...(target.status ?? {}) };
    for (const [k, v] of Object.entries(patch.status as Record<string, any>)) {
      if ((k === "conditions" || k === "addresses") && Array.isArray(v)) {
        const replace = v.some((e: any) => e && e.$patch === "replace");
        const items = v.filter((e: any) => !(e && e.$patch));
        const merged: any[] = replace ? [] : [...(status[k] ?? [])];
        for (const item of items) {
          const i = merged.findIndex((m: any) => m.type === item.type);
          if (i >= 0) merged[i] = { ...merged[i], ...item };
          else merged.push(item);
        }
        status[k] = merged;
      } else status[k] = mergePatch(status[k], v);
    }
    out.status = status;
  }
  return out;
}

export class FakeApi {
  nodes = new Map<string, any>();
  leases = new Map<string, any>();
  faults: Fault[] = [];
  /** Accepted bearer token; undefined accepts any. */
  token: string | undefined;
  /** Server wall clock = epochStart + virtual now, plus skew. */
  epochStart = Date.UTC(2026, 10, 21, 12, 0, 0);
  skewMs = 0;
  /** Answer with chunked transfer encoding. */
  chunked = false;
  /** Pad every Node response with this many bytes (a big managedFields). */
  nodePadding = 0;
  #rv = 100;
  #uid = 0;
  #time: VirtualTime;

  constructor(time: VirtualTime) {
    this.#time = time;
  }

  now(): number {
    return this.epochStart + this.#time.now + this.skewMs;
  }

  fail(match: (req: ParsedRequest) => boolean, fault: Omit<Fault, "match" | "times">, times = 1): void {
    this.faults.push({ match, times, ...fault });
  }

  #respond(status: number, body?: unknown): string {
    let text = body === undefined ? "" : JSON.stringify(body);
    const head = [`HTTP/1.1 ${status} ${REASONS[status] ?? "Status"}`, "Audit-Id: 00000000-0000-0000-0000-000000000000", "Cache-Control: no-cache, private", "Content-Type: application/json", `Date: ${httpDate(this.now())}`];
    if (this.chunked && text.length > 0) {
      // two chunks, with a chunk extension to make sure it is ignored
      const mid = Math.floor(text.length / 2);
      const enc = new TextEncoder();
      const a = text.slice(0, mid);
      const b = text.slice(mid);
      text = `${enc.encode(a).length.toString(16)};ext=1\r\n${a}\r\n${enc.encode(b).length.toString(16)}\r\n${b}\r\n0\r\n\r\n`;
      head.push("Transfer-Encoding: chunked");
    } else {
      head.push(`Content-Length: ${new TextEncoder().encode(text).length}`);
    }
    return `${head.join("\r\n")}\r\n\r\n${text}`;
  }

  #status(code: number, message: string): string {
    return this.#respond(code, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason: STATUS_REASON[code] ?? "", code });
  }

  #node(n: any): any {
    return this.nodePadding ? { ...n, metadata: { ...n.metadata, managedFields: [{ manager: "x".repeat(this.nodePadding) }] } } : n;
  }

  handle = (req: ParsedRequest): string | { drop: true } | { hang: true } => {
    for (const f of this.faults) {
      if (f.times > 0 && f.match(req)) {
        f.times--;
        if (f.drop) return { drop: true };
        if (f.hang) return { hang: true };
        return this.#status(f.status!, `scripted failure ${f.status}`);
      }
    }
    if (this.token !== undefined && req.headers.get("authorization") !== `Bearer ${this.token}`) return this.#status(401, "Unauthorized");
    const body = req.body ? JSON.parse(req.body) : undefined;
    const path = req.path.split("?")[0];
    const rv = () => String(++this.#rv);
    let m: RegExpExecArray | null;
    if (req.method === "GET" && path === "/version") return this.#respond(200, { major: "1", minor: "33", gitVersion: "v1.33.13" });
    if (path === "/api/v1/nodes" && req.method === "POST") {
      const name = body.metadata.name;
      if (this.nodes.has(name)) return this.#status(409, `nodes "${name}" already exists`);
      const node = { ...body, metadata: { ...body.metadata, uid: `uid-${++this.#uid}`, resourceVersion: rv(), creationTimestamp: new Date(this.now()).toISOString().replace(/\.\d+Z$/, "Z") } };
      this.nodes.set(name, node);
      return this.#respond(201, this.#node(node));
    }
    if ((m = /^\/api\/v1\/nodes\/([^/]+)(\/status)?$/.exec(path))) {
      const name = m[1];
      const node = this.nodes.get(name);
      if (!node) return this.#status(404, `nodes "${name}" not found`);
      if (req.method === "GET") return this.#respond(200, this.#node(node));
      if (req.method === "PATCH") {
        const type = req.headers.get("content-type");
        const next = type === "application/strategic-merge-patch+json" ? strategicMergeNode(node, body) : mergePatch(node, body);
        if (m[2]) next.spec = node.spec; // the status subresource ignores spec
        next.metadata.resourceVersion = rv();
        this.nodes.set(name, next);
        return this.#respond(200, this.#node(next));
      }
      if (req.method === "DELETE") {
        this.nodes.delete(name);
        // the garbage collector: Leases owned by this Node go with it
        for (const [k, l] of this.leases) if ((l.metadata.ownerReferences ?? []).some((o: any) => o.uid === node.metadata.uid)) this.leases.delete(k);
        return this.#respond(200, { kind: "Status", status: "Success" });
      }
    }
    const leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
    if (path === leases && req.method === "POST") {
      const name = body.metadata.name;
      if (this.leases.has(name)) return this.#status(409, `leases.coordination.k8s.io "${name}" already exists`);
      const lease = { ...body, metadata: { ...body.metadata, uid: `uid-${++this.#uid}`, resourceVersion: rv() } };
      this.leases.set(name, lease);
      return this.#respond(201, lease);
    }
    if (path.startsWith(`${leases}/`)) {
      const name = path.slice(leases.length + 1);
      const lease = this.leases.get(name);
      if (!lease) return this.#status(404, `leases.coordination.k8s.io "${name}" not found`);
      if (req.method === "GET") return this.#respond(200, lease);
      if (req.method === "PATCH") {
        const next = mergePatch(lease, body);
        if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(next.spec.renewTime)) {
          return this.#status(422, `Lease.coordination.k8s.io "${name}" is invalid: spec.renewTime: Invalid value: "${next.spec.renewTime}"`);
        }
        next.metadata.resourceVersion = rv();
        this.leases.set(name, next);
        return this.#respond(200, next);
      }
    }
    return this.#status(404, `the server could not find the requested resource (${req.method} ${path})`);
  };
}
