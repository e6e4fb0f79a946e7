// A scripted, in-memory stand-in for the parts of the Kubernetes API the agent uses — a test double
// for fast unit tests, the XS engine and the bench only. The real control plane (tools/controlplane) is what proves behaviour;
// this only has to be faithful where the tests look. Pure JavaScript (runs inside XS too).
import { certificateFacts } from "../../modules/k8s/credentials";
import { children, encode, fromBase64, fromPem, oid, sequence, set, slice, tlv, toBase64, toPem, utf8String } from "../../modules/k8s/der";
import { formatHttpDate } from "../../modules/time/clock";
import type { ParsedRequest, ScriptedAnswer, VirtualTime } from "./host";

export interface Fault {
  match: (req: ParsedRequest) => boolean;
  /** HTTP status to answer with, or a connection drop, or no answer at all. */
  status?: number;
  drop?: boolean;
  hang?: boolean;
  /** A Retry-After header on the answer (delay-seconds or an HTTP-date), as kube-apiserver sends with 429. */
  retryAfter?: string;
  times: number;
}

const REASONS: Record<number, string> = { 200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict", 415: "Unsupported Media Type", 422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable" };
const STATUS_REASON: Record<number, string> = { 400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "AlreadyExists", 415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable" };

export const httpDate = formatHttpDate;

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

/** The kinds the double stores, by their plural resource names. */
export type Kind = "nodes" | "leases" | "pods" | "configmaps" | "certificatesigningrequests";

interface KindInfo {
  kind: string;
  apiVersion: string;
  namespaced: boolean;
  /** As the API server names it in messages. */
  resource: string;
}

const KINDS: Readonly<Record<Kind, KindInfo>> = Object.freeze({
  nodes: Object.freeze({ kind: "Node", apiVersion: "v1", namespaced: false, resource: "nodes" }),
  leases: Object.freeze({ kind: "Lease", apiVersion: "coordination.k8s.io/v1", namespaced: true, resource: "leases.coordination.k8s.io" }),
  pods: Object.freeze({ kind: "Pod", apiVersion: "v1", namespaced: true, resource: "pods" }),
  configmaps: Object.freeze({ kind: "ConfigMap", apiVersion: "v1", namespaced: true, resource: "configmaps" }),
  certificatesigningrequests: Object.freeze({ kind: "CertificateSigningRequest", apiVersion: "certificates.k8s.io/v1", namespaced: false, resource: "certificatesigningrequests.certificates.k8s.io" }),
});
const KIND_NAMES = Object.freeze(Object.keys(KINDS) as Kind[]);

/** Events kept per kind for watches to replay; older ones are gone (a watch from before them gets 410). */
export const EVENT_LOG = 200;
/** The only namespace the Lease store knows (it is keyed by name). */
const LEASE_NS = "kube-node-lease";

export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED";
  /** The object's resourceVersion, as a number. */
  rv: number;
  /** The object as it was after the change (for DELETED: as it was, with the deletion's resourceVersion). */
  object: any;
}

interface Watcher {
  kind: Kind;
  namespace: string | undefined;
  match: (o: any) => boolean;
  bookmarks: boolean;
  write: (text: string) => void;
  end: () => void;
  timer: unknown;
}

const decodeComponent = (s: string) => {
  try {
    return decodeURIComponent(s.replace(/\+/g, " "));
  } catch {
    return s;
  }
};

/** The query string of a request target, decoded. */
export function parseQuery(target: string): Map<string, string> {
  const query = new Map<string, string>();
  const at = target.indexOf("?");
  if (at < 0) return query;
  for (const part of target.slice(at + 1).split("&")) {
    if (!part) continue;
    const eq = part.indexOf("=");
    query.set(decodeComponent(eq < 0 ? part : part.slice(0, eq)), eq < 0 ? "" : decodeComponent(part.slice(eq + 1)));
  }
  return query;
}

const FIELDS: Readonly<Record<string, (o: any) => string>> = Object.freeze({
  "metadata.name": (o: any) => o.metadata?.name ?? "",
  "metadata.namespace": (o: any) => o.metadata?.namespace ?? "",
  "spec.nodeName": (o: any) => o.spec?.nodeName ?? "",
});

/** fieldSelector: comma-separated field=value, field==value, field!=value; an error message when unsupported. */
export function fieldSelector(kind: Kind, selector: string): ((o: any) => boolean) | string {
  const tests: ((o: any) => boolean)[] = [];
  for (const term of selector.split(",").map((t) => t.trim()).filter(Boolean)) {
    const m = /^([^!=]+?)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!m) return `invalid field selector: ${term}`;
    const get = FIELDS[m[1]];
    if (!get || (m[1] === "spec.nodeName" && kind !== "pods")) return `field label not supported: ${m[1]}`;
    const value = m[3];
    tests.push(m[2] === "!=" ? (o) => get(o) !== value : (o) => get(o) === value);
  }
  return (o) => tests.every((t) => t(o));
}

/** labelSelector: comma-separated k=v, k==v, k!=v, k (exists), !k; set-based forms are not supported. */
export function labelSelector(selector: string): ((o: any) => boolean) | string {
  const tests: ((labels: Record<string, string>) => boolean)[] = [];
  for (const term of selector.split(",").map((t) => t.trim()).filter(Boolean)) {
    let m: RegExpExecArray | null;
    if ((m = /^([A-Za-z0-9._/-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)$/.exec(term))) {
      const [, key, op, value] = m;
      tests.push(op === "!=" ? (l) => l[key] !== value : (l) => l[key] === value);
    } else if ((m = /^(!?)([A-Za-z0-9._/-]+)$/.exec(term))) {
      const [, not, key] = m;
      tests.push(not ? (l) => !(key in l) : (l) => key in l);
    } else return `unable to parse requirement: ${term}`;
  }
  return (o) => {
    const labels = o.metadata?.labels ?? {};
    return tests.every((t) => t(labels));
  };
}

export class FakeApi {
  /** Stores; writing to them directly bypasses resourceVersions and watch events (use put/remove). */
  nodes = new Map<string, any>();
  /** By name; all in kube-node-lease. */
  leases = new Map<string, any>();
  /** By "namespace/name". */
  pods = new Map<string, any>();
  /** By "namespace/name". */
  configmaps = new Map<string, any>();
  /** By name. */
  certificatesigningrequests = new Map<string, any>();
  /**
   * What the scripted approver and signer do with a new CSR: approve and issue it (a certificate for
   * its key and subject, valid csrLifetimeMs from now, signed by nobody), deny it, or leave it pending.
   */
  csrPolicy: "issue" | "deny" | "pending" = "issue";
  csrLifetimeMs = 3600_000;
  /** core/v1 Events, "namespace/name" → event (not watchable here). */
  coreEvents = new Map<string, any>();
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
  /** The resourceVersion counter, shared by every kind (etcd's revision). */
  #rv = 100;
  #uid = 0;
  #time: VirtualTime;
  #log: Record<Kind, WatchEvent[]> = { nodes: [], leases: [], pods: [], configmaps: [], certificatesigningrequests: [] };
  /** Per kind: the log holds every event with a resourceVersion above this. */
  #since: Record<Kind, number> = { nodes: 0, leases: 0, pods: 0, configmaps: 0, certificatesigningrequests: 0 };
  #watchers = new Set<Watcher>();

  constructor(time: VirtualTime) {
    this.#time = time;
  }

  now(): number {
    return this.epochStart + this.#time.now + this.skewMs;
  }

  /** The current resourceVersion (the last one handed out). */
  get resourceVersion(): string {
    return String(this.#rv);
  }

  /** Open watches. */
  get watchers(): number {
    return this.#watchers.size;
  }

  /** The events a watch could still replay for a kind, oldest first. */
  events(kind: Kind): readonly WatchEvent[] {
    return this.#log[kind];
  }

  fail(match: (req: ParsedRequest) => boolean, fault: Omit<Fault, "match" | "times">, times = 1): void {
    this.faults.push({ match, times, ...fault });
  }

  /** Creates or replaces an object as an API write would: a new resourceVersion, an ADDED or MODIFIED event. */
  put(kind: Kind, object: any): any {
    const info = KINDS[kind];
    const namespace = info.namespaced ? (kind === "leases" ? LEASE_NS : (object.metadata?.namespace ?? "default")) : undefined;
    const key = this.#key(kind, namespace, object.metadata.name);
    const old = this.#store(kind).get(key);
    if (!old) return this.#create(kind, namespace, object);
    const metadata = { uid: old.metadata?.uid, creationTimestamp: old.metadata?.creationTimestamp, ...object.metadata };
    if (namespace !== undefined) metadata.namespace = namespace;
    return this.#replace(kind, key, { apiVersion: info.apiVersion, kind: info.kind, ...object, metadata });
  }

  /** Deletes an object as an API DELETE would (a DELETED event); remove("nodes", name) for cluster-scoped kinds. */
  remove(kind: Kind, namespace: string, name?: string): boolean {
    const key = name === undefined ? this.#key(kind, KINDS[kind].namespaced ? "default" : undefined, namespace) : this.#key(kind, namespace, name);
    if (!this.#store(kind).has(key)) return false;
    this.#delete(kind, key);
    return true;
  }

  /** A BOOKMARK, at the current resourceVersion, to every watch that allowed them. */
  bookmark(): void {
    for (const w of [...this.#watchers]) {
      if (!w.bookmarks) continue;
      const info = KINDS[w.kind];
      w.write(`${JSON.stringify({ type: "BOOKMARK", object: { kind: info.kind, apiVersion: info.apiVersion, metadata: { resourceVersion: String(this.#rv) } } })}\n`);
    }
  }

  /** Ends every open watch cleanly (as the server does at its request timeout). */
  endWatches(): void {
    for (const w of [...this.#watchers]) this.#finish(w);
  }

  /** Drops every kind's event log: a watch from any resourceVersion before now gets 410 Expired. */
  compact(): void {
    for (const kind of KIND_NAMES) {
      this.#log[kind] = [];
      this.#since[kind] = this.#rv;
    }
  }

  #head(status: number): string[] {
    return [`HTTP/1.1 ${status} ${REASONS[status] ?? "Status"}`, "Audit-Id: 00000000-0000-0000-0000-000000000000", "Cache-Control: no-cache, private", "Content-Type: application/json", `Date: ${httpDate(this.now())}`];
  }

  #respond(status: number, body?: unknown, extra: string[] = []): string {
    let text = body === undefined ? "" : JSON.stringify(body);
    const head = this.#head(status);
    head.push(...extra);
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

  #status(code: number, message: string, extra: string[] = []): string {
    return this.#respond(code, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason: STATUS_REASON[code] ?? "", code }, extra);
  }

  #node(n: any): any {
    return this.nodePadding ? { ...n, metadata: { ...n.metadata, managedFields: [{ manager: "x".repeat(this.nodePadding) }] } } : n;
  }

  #present(kind: Kind, o: any): any {
    return kind === "nodes" ? this.#node(o) : o;
  }

  #stamp(): string {
    return new Date(this.now()).toISOString().replace(/\.\d+Z$/, "Z");
  }

  #store(kind: Kind): Map<string, any> {
    return kind === "nodes" ? this.nodes : kind === "leases" ? this.leases : kind === "pods" ? this.pods : kind === "configmaps" ? this.configmaps : this.certificatesigningrequests;
  }

  #key(kind: Kind, namespace: string | undefined, name: string): string {
    return kind === "pods" || kind === "configmaps" ? `${namespace}/${name}` : name;
  }

  #namespaceOf(kind: Kind, o: any): string | undefined {
    return o.metadata?.namespace ?? (kind === "leases" ? LEASE_NS : undefined);
  }

  /** Logs an event and sends it to the watches it concerns. */
  #emit(kind: Kind, type: WatchEvent["type"], object: any): void {
    const log = this.#log[kind];
    log.push({ type, rv: Number(object.metadata?.resourceVersion), object });
    if (log.length > EVENT_LOG) this.#since[kind] = log.shift()!.rv;
    if (this.#watchers.size === 0) return;
    for (const w of [...this.#watchers]) if (w.kind === kind && this.#inScope(w, object)) w.write(`${JSON.stringify({ type, object: this.#present(kind, object) })}\n`);
  }

  #inScope(w: Watcher, o: any): boolean {
    return (w.namespace === undefined || this.#namespaceOf(w.kind, o) === w.namespace) && w.match(o);
  }

  #create(kind: Kind, namespace: string | undefined, body: any): any {
    const info = KINDS[kind];
    const metadata = { ...body.metadata };
    if (!metadata.name && metadata.generateName) metadata.name = `${metadata.generateName}${(this.#uid + 1).toString(36).padStart(5, "0")}`;
    if (namespace !== undefined && kind !== "leases") metadata.namespace = namespace;
    metadata.uid = metadata.uid ?? `uid-${++this.#uid}`;
    metadata.resourceVersion = String(++this.#rv);
    metadata.creationTimestamp = metadata.creationTimestamp ?? this.#stamp();
    const object = { apiVersion: info.apiVersion, kind: info.kind, ...body, metadata };
    if (kind === "pods" && object.status === undefined) object.status = { phase: "Pending" };
    this.#store(kind).set(this.#key(kind, namespace, metadata.name), object);
    this.#emit(kind, "ADDED", object);
    return object;
  }

  /** Stores next under key with a new resourceVersion (never mutating the version before: the log holds it). */
  #replace(kind: Kind, key: string, next: any): any {
    next.metadata = { ...next.metadata, resourceVersion: String(++this.#rv) };
    this.#store(kind).set(key, next);
    this.#emit(kind, "MODIFIED", next);
    return next;
  }

  #delete(kind: Kind, key: string): any {
    const store = this.#store(kind);
    const object = store.get(key);
    store.delete(key);
    const gone = { ...object, metadata: { ...object.metadata, resourceVersion: String(++this.#rv) } };
    this.#emit(kind, "DELETED", gone);
    return gone;
  }

  /** GET of a collection: LIST, or WATCH with ?watch=1. */
  #collection(kind: Kind, namespace: string | undefined, getQuery: () => Map<string, string>): ScriptedAnswer {
    const query = getQuery();
    const info = KINDS[kind];
    const fields = fieldSelector(kind, query.get("fieldSelector") ?? "");
    if (typeof fields === "string") return this.#status(400, fields);
    const labels = labelSelector(query.get("labelSelector") ?? "");
    if (typeof labels === "string") return this.#status(400, labels);
    const match = (o: any) => fields(o) && labels(o);
    const watch = query.get("watch");
    if (watch === "1" || watch === "true") return this.#watch(kind, namespace, match, query);
    const items: any[] = [];
    const keys = [...this.#store(kind).keys()].sort();
    for (const key of keys) {
      const o = this.#store(kind).get(key);
      if ((namespace === undefined || this.#namespaceOf(kind, o) === namespace) && match(o)) items.push(this.#present(kind, o));
    }
    return this.#respond(200, { kind: `${info.kind}List`, apiVersion: info.apiVersion, metadata: { resourceVersion: String(this.#rv) }, items });
  }

  #watch(kind: Kind, namespace: string | undefined, match: (o: any) => boolean, query: Map<string, string>): ScriptedAnswer {
    const from = query.get("resourceVersion");
    const bookmarks = query.get("allowWatchBookmarks") === "true";
    const timeout = Number(query.get("timeoutSeconds") ?? "0");
    const head = [...this.#head(200), "Transfer-Encoding: chunked"].join("\r\n");
    return {
      stream: {
        head: `${head}\r\n\r\n`,
        open: (write, end) => {
          const w: Watcher = { kind, namespace, match, bookmarks, write, end, timer: undefined };
          const send = (type: string, object: any) => write(`${JSON.stringify({ type, object })}\n`);
          if (from !== undefined && from !== "" && from !== "0") {
            const r = Number(from);
            if (!(r >= this.#since[kind])) {
              send("ERROR", { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: `too old resource version: ${from} (${this.#since[kind]})`, reason: "Expired", code: 410 });
              end();
              return () => {};
            }
            for (const e of this.#log[kind]) if (e.rv > r && this.#inScope(w, e.object)) send(e.type, this.#present(kind, e.object));
          } else {
            // No resourceVersion (or "0"): the current state as ADDED events, then what changes.
            for (const key of [...this.#store(kind).keys()].sort()) {
              const o = this.#store(kind).get(key);
              if (this.#inScope(w, o)) send("ADDED", this.#present(kind, o));
            }
          }
          this.#watchers.add(w);
          if (timeout > 0) w.timer = this.#time.setTimer(() => this.#finish(w), timeout * 1000);
          return () => this.#forget(w);
        },
      },
    };
  }

  #forget(w: Watcher): void {
    if (!this.#watchers.delete(w)) return;
    if (w.timer !== undefined) this.#time.clearTimer(w.timer);
  }

  #finish(w: Watcher): void {
    if (!this.#watchers.has(w)) return;
    this.#forget(w);
    w.end();
  }

  #patch(req: ParsedRequest, old: any, body: any): any | undefined {
    const type = req.headers.get("content-type");
    if (type === "application/strategic-merge-patch+json") return strategicMergeNode(old, body);
    if (type === "application/merge-patch+json" || type === "application/json") return mergePatch(old, body);
    return undefined;
  }

  /** Approves and issues a pending CSR (as kube-controller-manager's approver and signer would). */
  issueCsr(name: string): boolean {
    const csr = this.certificatesigningrequests.get(name);
    const request = csr && fromPem(latin1(fromBase64(csr.spec?.request ?? "") ?? new Uint8Array(0)), "CERTIFICATE REQUEST");
    const der = request && issueFor(request, this.now(), this.now() + this.csrLifetimeMs, ++this.#uid);
    if (!der) return false;
    const conditions = [{ type: "Approved", status: "True", reason: "AutoApproved", message: "scripted approver" }];
    const pem = toPem(der, "CERTIFICATE");
    this.#replace("certificatesigningrequests", name, { ...csr, status: { conditions, certificate: toBase64(Uint8Array.from(pem, (c) => c.charCodeAt(0))) } });
    return true;
  }

  denyCsr(name: string, message = "denied by the scripted approver"): boolean {
    const csr = this.certificatesigningrequests.get(name);
    if (!csr) return false;
    this.#replace("certificatesigningrequests", name, { ...csr, status: { conditions: [{ type: "Denied", status: "True", reason: "ScriptedDenial", message }] } });
    return true;
  }

  /** Bearer tokens TokenReview knows, and the users they name. */
  readonly reviewTokens = new Map<string, { username: string; groups: string[] }>();

  handle = (req: ParsedRequest): ScriptedAnswer => {
    for (const f of this.faults) {
      if (f.times > 0 && f.match(req)) {
        f.times--;
        if (f.drop) return { drop: true };
        if (f.hang) return { hang: true };
        return this.#status(f.status!, `scripted failure ${f.status}`, f.retryAfter === undefined ? [] : [`Retry-After: ${f.retryAfter}`]);
      }
    }
    if (this.token !== undefined && req.headers.get("authorization") !== `Bearer ${this.token}`) return this.#status(401, "Unauthorized");
    // As kube-apiserver: a client certificate past its notAfter authenticates nobody.
    const cert = req.tls?.clientCertificate ? certificateFacts(req.tls.clientCertificate) : undefined;
    if (cert && cert.validity.notAfter < this.now()) return this.#status(401, "Unauthorized");
    const user = cert ? cert.commonName : "system:anonymous";
    const body = req.body ? JSON.parse(req.body) : undefined;
    const path = req.path.split("?")[0];
    const query = () => parseQuery(req.path);
    const rv = () => String(++this.#rv);
    let m: RegExpExecArray | null;
    if (req.method === "GET" && path === "/version") return this.#respond(200, { major: "1", minor: "33", gitVersion: "v1.33.13" });
    // As kube-apiserver once every readiness check passes: text, not JSON.
    if (req.method === "GET" && path === "/readyz") {
      const head = this.#head(200).map((h) => (h.startsWith("Content-Type:") ? "Content-Type: text/plain; charset=utf-8" : h));
      return `${head.join("\r\n")}\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 2\r\n\r\nok`;
    }
    // The kubelet API's reviews, as the authorizer answers them for the scripted cluster: members of
    // system:masters may do anything; tokens are known by reviewTokens.
    if (req.method === "POST" && path === "/apis/authorization.k8s.io/v1/subjectaccessreviews") {
      const groups: unknown = body?.spec?.groups;
      const allowed = Array.isArray(groups) && groups.includes("system:masters");
      return this.#respond(201, { ...body, status: { allowed, reason: allowed ? "system:masters" : "" } });
    }
    if (req.method === "POST" && path === "/apis/authentication.k8s.io/v1/tokenreviews") {
      const user = this.reviewTokens.get(String(body?.spec?.token ?? ""));
      return this.#respond(201, { ...body, status: user ? { authenticated: true, user } : { authenticated: false } });
    }
    if (req.method === "POST" && path === "/apis/authentication.k8s.io/v1/selfsubjectreviews") {
      return this.#respond(201, { ...body, status: { userInfo: { username: user, groups: cert ? [...cert.organizations, "system:authenticated"] : ["system:unauthenticated"] } } });
    }
    const csrs = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
    if (path === csrs && req.method === "GET") return this.#collection("certificatesigningrequests", undefined, query);
    if (path === csrs && req.method === "POST") {
      if (!fromBase64(String(body?.spec?.request ?? ""))?.length) return this.#status(422, `CertificateSigningRequest.certificates.k8s.io "" is invalid: spec.request: Invalid value: []byte{}: PEM block type must be CERTIFICATE REQUEST`);
      const created = this.#create("certificatesigningrequests", undefined, { ...body, spec: { ...body.spec, username: user } });
      const name = created.metadata.name;
      if (this.csrPolicy === "issue") this.#time.setTimer(() => void this.issueCsr(name), 50);
      else if (this.csrPolicy === "deny") this.#time.setTimer(() => void this.denyCsr(name), 50);
      return this.#respond(201, created);
    }
    if (path === "/api/v1/nodes" && req.method === "POST") {
      const name = body.metadata.name;
      if (this.nodes.has(name)) return this.#status(409, `nodes "${name}" already exists`);
      const node = { ...body, metadata: { ...body.metadata, uid: `uid-${++this.#uid}`, resourceVersion: rv(), creationTimestamp: this.#stamp() } };
      this.nodes.set(name, node);
      this.#emit("nodes", "ADDED", node);
      return this.#respond(201, this.#node(node));
    }
    if (path === "/api/v1/nodes" && req.method === "GET") return this.#collection("nodes", undefined, query);
    if ((m = /^\/api\/v1\/nodes\/([^/]+)(\/status)?$/.exec(path))) {
      const name = m[1];
      const node = this.nodes.get(name);
      if (!node) return this.#status(404, `nodes "${name}" not found`);
      if (req.method === "GET") return this.#respond(200, this.#node(node));
      if (req.method === "PATCH") {
        const type = req.headers.get("content-type");
        const next = type === "application/strategic-merge-patch+json" ? strategicMergeNode(node, body) : mergePatch(node, body);
        if (m[2]) next.spec = node.spec; // the status subresource ignores spec
        return this.#respond(200, this.#node(this.#replace("nodes", name, next)));
      }
      if (req.method === "DELETE") {
        this.#delete("nodes", name);
        // the garbage collector: Leases owned by this Node go with it
        for (const [k, l] of [...this.leases]) if ((l.metadata.ownerReferences ?? []).some((o: any) => o.uid === node.metadata.uid)) this.#delete("leases", k);
        return this.#respond(200, { kind: "Status", status: "Success" });
      }
    }
    const leases = `/apis/coordination.k8s.io/v1/namespaces/${LEASE_NS}/leases`;
    if (path === leases && req.method === "POST") {
      const name = body.metadata.name;
      if (this.leases.has(name)) return this.#status(409, `leases.coordination.k8s.io "${name}" already exists`);
      const lease = { ...body, metadata: { ...body.metadata, uid: `uid-${++this.#uid}`, resourceVersion: rv() } };
      this.leases.set(name, lease);
      this.#emit("leases", "ADDED", lease);
      return this.#respond(201, lease);
    }
    if (path === leases && req.method === "GET") return this.#collection("leases", LEASE_NS, query);
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
        return this.#respond(200, this.#replace("leases", name, next));
      }
    }
    if (path === "/api/v1/pods" && req.method === "GET") return this.#collection("pods", undefined, query);
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/events(?:\/([^/]+))?$/.exec(path))) {
      const [, namespace, name] = m;
      if (!name && req.method === "POST") {
        const key = `${namespace}/${body?.metadata?.name}`;
        if (this.coreEvents.has(key)) return this.#status(409, `events "${body.metadata.name}" already exists`);
        const event = { ...body, metadata: { ...body.metadata, namespace, uid: `uid-ev-${this.coreEvents.size + 1}`, resourceVersion: String(this.coreEvents.size + 1) } };
        this.coreEvents.set(key, event);
        return this.#respond(201, event);
      }
      const key = `${namespace}/${name}`;
      const old = name ? this.coreEvents.get(key) : undefined;
      if (name && !old) return this.#status(404, `events "${name}" not found`);
      if (old && req.method === "PATCH") {
        const next = mergePatch(old, body);
        this.coreEvents.set(key, next);
        return this.#respond(200, next);
      }
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/(pods|configmaps)(?:\/([^/]+)(\/status)?)?$/.exec(path))) {
      const [, namespace, plural, name, status] = m;
      const kind = plural as Kind;
      const resource = KINDS[kind].resource;
      if (name === undefined) {
        if (req.method === "GET") return this.#collection(kind, namespace, query);
        if (req.method === "POST") {
          if (!body?.metadata?.name && !body?.metadata?.generateName) return this.#status(422, `${KINDS[kind].kind} "" is invalid: metadata.name: Required value: name or generateName is required`);
          if (body.metadata.name && this.#store(kind).has(this.#key(kind, namespace, body.metadata.name))) return this.#status(409, `${resource} "${body.metadata.name}" already exists`);
          return this.#respond(201, this.#create(kind, namespace, body));
        }
      } else if (!(status && kind !== "pods")) {
        const key = this.#key(kind, namespace, name);
        const old = this.#store(kind).get(key);
        if (!old) return this.#status(404, `${resource} "${name}" not found`);
        if (req.method === "GET") return this.#respond(200, old);
        if (req.method === "PATCH") {
          const next = this.#patch(req, old, body);
          if (next === undefined) return this.#status(415, `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json`);
          if (status) next.spec = old.spec; // the status subresource ignores spec …
          else if (kind === "pods") next.status = old.status; // … and the main resource ignores status
          return this.#respond(200, this.#replace(kind, key, next));
        }
        if (req.method === "DELETE") {
          const uid = body?.preconditions?.uid;
          if (uid !== undefined && uid !== old.metadata?.uid) {
            return this.#status(409, `Operation cannot be fulfilled on ${resource} "${name}": Precondition failed: UID in precondition: ${uid}, UID in object meta: ${old.metadata?.uid}`);
          }
          const gone = this.#delete(kind, key);
          return this.#respond(200, kind === "pods" ? gone : { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", details: { name, kind: plural } });
        }
      }
    }
    return this.#status(404, `the server could not find the requested resource (${req.method} ${path})`);
  };
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

function utcTime(ms: number): Uint8Array {
  const t = new Date(ms).toISOString(); // 2026-11-21T12:00:00.000Z
  const text = `${t.slice(2, 4)}${t.slice(5, 7)}${t.slice(8, 10)}${t.slice(11, 13)}${t.slice(14, 16)}${t.slice(17, 19)}Z`;
  return encode(0x17, Uint8Array.from(text, (c) => c.charCodeAt(0)));
}

/** An X.509 certificate for a PKCS#10 request's subject, key and SANs; its signature is no signature (nothing verifies it here). */
function issueFor(request: Uint8Array, notBefore: number, notAfter: number, serial: number): Uint8Array | undefined {
  const outer = tlv(request, 0);
  const info = outer && tlv(request, outer.start, outer.end);
  if (!info) return undefined;
  const [, subject, spki, attributes] = children(request, info);
  if (!subject || !spki) return undefined;
  const extensions: Uint8Array[] = [];
  // extensionRequest → SET { Extensions }: copied as they are (the SANs of a serving request)
  for (const attr of attributes ? children(request, attributes) : []) {
    const [, values] = children(request, attr);
    const exts = values && children(request, values)[0];
    if (exts) for (const e of children(request, exts)) extensions.push(slice(request, e));
  }
  return certificate(slice(request, subject), slice(request, spki), extensions, notBefore, notAfter, serial);
}

function certificate(subject: Uint8Array, spki: Uint8Array, extensions: Uint8Array[], notBefore: number, notAfter: number, serial: number): Uint8Array {
  const alg = sequence(oid("1.2.840.113549.1.1.11"), encode(0x05, new Uint8Array(0)));
  const tbs = sequence(
    encode(0xa0, encode(0x02, Uint8Array.of(2))),
    encode(0x02, Uint8Array.of(serial & 0x7f)),
    alg,
    sequence(set(sequence(oid("2.5.4.3"), utf8String("scripted-ca")))),
    sequence(utcTime(notBefore), utcTime(notAfter)),
    subject,
    spki,
    ...(extensions.length ? [encode(0xa3, sequence(...extensions))] : []),
  );
  return sequence(tbs, alg, encode(0x03, new Uint8Array(33)));
}

/** An RSA public key of the right shape (the modulus is a pattern, not a key: nothing here does RSA). */
export const SCRIPTED_RSA_KEY_INFO = sequence(sequence(oid("1.2.840.113549.1.1.1"), encode(0x05, new Uint8Array(0))), encode(0x03, Uint8Array.of(0), sequence(encode(0x02, Uint8Array.from({ length: 257 }, (_, i) => (i === 0 ? 0 : (i * 37 + 11) & 0xff))), encode(0x02, Uint8Array.of(1, 0, 1)))));

/** A node certificate as the scripted signer would issue it: CN=system:node:<name>, O=system:nodes, IP SANs when given. */
export function scriptedNodeCertificate(nodeName: string, notBefore: number, notAfter: number, ips: number[][] = []): Uint8Array {
  const subject = sequence(set(sequence(oid("2.5.4.10"), utf8String("system:nodes"))), set(sequence(oid("2.5.4.3"), utf8String(`system:node:${nodeName}`))));
  const san = ips.length ? [sequence(oid("2.5.29.17"), encode(0x04, sequence(...ips.map((ip) => encode(0x87, Uint8Array.from(ip))))))] : [];
  return certificate(subject, SCRIPTED_RSA_KEY_INFO, san, notBefore, notAfter, 1);
}
