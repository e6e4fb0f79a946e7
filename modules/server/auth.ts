// Authentication and authorization of kubelet API requests, as the kubelet does them
// (pkg/kubelet/server/auth.go and server.go's auth filter): a client certificate the host verified
// against the cluster CA (user = CN, groups = O) or a bearer token checked with a TokenReview; then a
// SubjectAccessReview for verb (from the method) on nodes/<subresource> named after this node.
// Decisions are cached for the kubelet's default TTLs in a small LRU. Where the kubelet answers 401
// (authentication error) or 500 (authorization error) when a review cannot be made, this answers 503:
// the request may well succeed later, and nothing is ever allowed without an answer.
import type { PeerInfo } from "../host";

export type ReviewKind = "TokenReview" | "SubjectAccessReview";

/** Sends a review to the API server: its status and parsed JSON body; rejects when no answer came. */
export type Review = (kind: ReviewKind, body: object) => Promise<{ status: number; json?: any }>;

/** What ApiClient.call offers (structural, so this file needs no import of the client). */
export interface ReviewCaller {
  call(method: string, path: string, options: { body?: unknown; keepBody?: number }): Promise<{ status: number; json?: any }>;
}

export const REVIEW_PATHS = Object.freeze({
  TokenReview: "/apis/authentication.k8s.io/v1/tokenreviews",
  SubjectAccessReview: "/apis/authorization.k8s.io/v1/subjectaccessreviews",
});

/** Reviews over the agent's own API client (the system:node role may create both). */
export function apiReview(client: ReviewCaller): Review {
  // The TokenReview echo holds the token and the user's groups and extra: 8 KiB is ample.
  return (kind, body) => client.call("POST", REVIEW_PATHS[kind], { body, keepBody: 8192 });
}

export const AUTH_DEFAULTS = Object.freeze({
  /** The kubelet's authentication.webhook.cacheTTL (success and failure alike). */
  authenticationTtlMs: 120_000,
  /** The kubelet's authorization.webhook.cacheAuthorizedTTL … */
  allowedTtlMs: 300_000,
  /** … and cacheUnauthorizedTTL. */
  deniedTtlMs: 30_000,
  /** Entries per cache (tokens, decisions): the API server, metrics-server and a Prometheus or two. */
  cacheEntries: 16,
  /** Reviews sent per minute at most (both kinds): a client trying token after token cannot make the
   * agent's one API connection busy with reviews instead of Lease renewals. Beyond it: 503. */
  reviewsPerMinute: 30,
  /** Longer tokens are reviewed every time, not cached: the token cache then holds at most
   * cacheEntries × 2 KiB (a ServiceAccount token is about 1 KiB), whatever a client sends. */
  maxCachedTokenLength: 2048,
});

export interface UserInfo {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

export type AuthDecision = { allowed: true; user: UserInfo } | { allowed: false; status: 401 | 403 | 503; message: string };

export interface KubeletAuthOptions {
  /** This node's name (the SubjectAccessReview's resourceAttributes.name). */
  nodeName: string;
  review: Review;
  /** Monotonic milliseconds (host.monotonic). */
  now: () => number;
  authenticationTtlMs?: number;
  allowedTtlMs?: number;
  deniedTtlMs?: number;
  cacheEntries?: number;
  reviewsPerMinute?: number;
  maxCachedTokenLength?: number;
  /** KubeletFineGrainedAuthz (on by default in 1.33): /pods asks for nodes/pods before nodes/proxy. */
  fineGrained?: boolean;
  /** Where a failed review is told (rate-limited to one line per 10 s); never holds a token. */
  log?: (message: string) => void;
}

const VERBS: Readonly<Record<string, string>> = Object.freeze({ GET: "get", POST: "create", PUT: "update", PATCH: "patch", DELETE: "delete" });

/** The authorization verb for an HTTP method (auth.go); undefined for others (HEAD, OPTIONS …). */
export function verbFor(method: string): string | undefined {
  return VERBS[method];
}

const isSubpath = (path: string, prefix: string) => path === prefix || path.startsWith(prefix.endsWith("/") ? prefix : `${prefix}/`);

/** The subresources to try, in order, for a path (auth.go's GetRequestAttributes). */
export function subresourcesFor(path: string, fineGrained = true): string[] {
  const out: string[] = [];
  if (fineGrained) {
    if (isSubpath(path, "/pods")) out.push("pods");
    else if (isSubpath(path, "/healthz")) out.push("healthz");
    else if (isSubpath(path, "/configz")) out.push("configz");
    else if (isSubpath(path, "/runningpods/")) out.push("pods");
  }
  if (isSubpath(path, "/stats")) out.push("stats");
  else if (isSubpath(path, "/metrics")) out.push("metrics");
  else if (isSubpath(path, "/device")) out.push("metrics"); // the device memory region: as /metrics
  else if (isSubpath(path, "/logs")) out.push("log");
  else out.push("proxy");
  return out;
}

/** The kubelet's 403 text (server.go): subresource(s) as Go prints a []string. */
export function forbiddenMessage(user: string, verb: string, subresources: string[]): string {
  return `Forbidden (user=${user}, verb=${verb}, resource=nodes, subresource(s)=[${subresources.join(" ")}])\n`;
}

class ReviewUnavailable extends Error {}

interface Entry<T> {
  value: T;
  expires: number;
}

/** A map with a size bound (least recently used evicted) and per-entry expiry. */
export class LruCache<T> {
  #map = new Map<string, Entry<T>>();
  #max: number;
  constructor(max: number) {
    this.#max = Math.max(1, max);
  }
  get size(): number {
    return this.#map.size;
  }
  get(key: string, now: number): T | undefined {
    const e = this.#map.get(key);
    if (!e) return undefined;
    this.#map.delete(key);
    if (e.expires <= now) return undefined;
    this.#map.set(key, e); // most recently used last
    return e.value;
  }
  set(key: string, value: T, expires: number): void {
    this.#map.delete(key);
    if (this.#map.size >= this.#max) this.#map.delete(this.#map.keys().next().value as string);
    this.#map.set(key, { value, expires });
  }
  clear(): void {
    this.#map.clear();
  }
}

export class KubeletAuth {
  #o: KubeletAuthOptions;
  #authTtl: number;
  #allowedTtl: number;
  #deniedTtl: number;
  #perMinute: number;
  #fineGrained: boolean;
  #maxToken: number;
  /** token → user (null: the TokenReview said not authenticated). */
  #tokens: LruCache<UserInfo | null>;
  /** user + verb + subresource → allowed. */
  #decisions: LruCache<boolean>;
  #windowStart = -Infinity;
  #windowCount = 0;
  #lastLog = -Infinity;
  /** Reviews sent, and those that failed (no answer, or an answer that was not a review). */
  stats = { tokenReviews: 0, accessReviews: 0, failures: 0, throttled: 0 };

  constructor(options: KubeletAuthOptions) {
    this.#o = options;
    this.#authTtl = options.authenticationTtlMs ?? AUTH_DEFAULTS.authenticationTtlMs;
    this.#allowedTtl = options.allowedTtlMs ?? AUTH_DEFAULTS.allowedTtlMs;
    this.#deniedTtl = options.deniedTtlMs ?? AUTH_DEFAULTS.deniedTtlMs;
    this.#perMinute = options.reviewsPerMinute ?? AUTH_DEFAULTS.reviewsPerMinute;
    this.#fineGrained = options.fineGrained ?? true;
    this.#maxToken = options.maxCachedTokenLength ?? AUTH_DEFAULTS.maxCachedTokenLength;
    const entries = options.cacheEntries ?? AUTH_DEFAULTS.cacheEntries;
    this.#tokens = new LruCache(entries);
    this.#decisions = new LruCache(entries);
  }

  /** Authenticates and authorizes one request; never rejects. */
  async check(method: string, path: string, headers: Map<string, string>, peer: PeerInfo): Promise<AuthDecision> {
    let user: UserInfo | undefined;
    try {
      user = await this.authenticate(headers, peer);
    } catch (err) {
      return this.#unavailable(err);
    }
    if (!user) return { allowed: false, status: 401, message: "Unauthorized" };
    const verb = verbFor(method) ?? "";
    const subresources = subresourcesFor(path, this.#fineGrained);
    for (const subresource of subresources) {
      let allowed: boolean;
      try {
        allowed = await this.authorize(user, verb, subresource);
      } catch (err) {
        return this.#unavailable(err);
      }
      if (allowed) return { allowed: true, user };
    }
    return { allowed: false, status: 403, message: forbiddenMessage(user.username, verb, subresources) };
  }

  /** The user a request comes from: its verified client certificate, else its bearer token; undefined: none. */
  async authenticate(headers: Map<string, string>, peer: PeerInfo): Promise<UserInfo | undefined> {
    const cert = peer.clientCertificate;
    if (cert && cert.commonName) return withAuthenticated({ username: cert.commonName, groups: cert.organizations.slice() });
    const m = /^Bearer\s+(\S+)\s*$/i.exec(headers.get("authorization") ?? "");
    if (!m) return undefined;
    const token = m[1];
    const now = this.#o.now();
    const cached = this.#tokens.get(token, now);
    if (cached !== undefined) return cached ?? undefined;
    const result = await this.#send("TokenReview", { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } });
    const status = result.json?.status;
    if (!status || typeof status !== "object") throw new ReviewUnavailable("TokenReview answer without status");
    let user: UserInfo | null = null;
    if (status.authenticated === true && status.user && typeof status.user.username === "string" && status.user.username !== "") {
      user = withAuthenticated({
        username: status.user.username,
        uid: typeof status.user.uid === "string" && status.user.uid ? status.user.uid : undefined,
        groups: Array.isArray(status.user.groups) ? status.user.groups.filter((g: unknown) => typeof g === "string") : [],
        extra: status.user.extra && typeof status.user.extra === "object" ? status.user.extra : undefined,
      });
    }
    if (token.length <= this.#maxToken) this.#tokens.set(token, user, this.#o.now() + this.#authTtl);
    return user ?? undefined;
  }

  /** May user do verb on nodes/<subresource> of this node? Cached: allowed 5 min, denied 30 s. */
  async authorize(user: UserInfo, verb: string, subresource: string): Promise<boolean> {
    const key = JSON.stringify([user.username, user.uid ?? "", user.groups, user.extra ?? null, verb, subresource]);
    const cached = this.#decisions.get(key, this.#o.now());
    if (cached !== undefined) return cached;
    const spec: Record<string, unknown> = {
      resourceAttributes: { verb, version: "v1", resource: "nodes", subresource, name: this.#o.nodeName },
      user: user.username,
      groups: user.groups.slice(),
    };
    if (user.uid) spec.uid = user.uid;
    if (user.extra) spec.extra = user.extra;
    const result = await this.#send("SubjectAccessReview", { apiVersion: "authorization.k8s.io/v1", kind: "SubjectAccessReview", spec });
    const status = result.json?.status;
    if (!status || typeof status !== "object") throw new ReviewUnavailable("SubjectAccessReview answer without status");
    const allowed = status.allowed === true && status.denied !== true;
    this.#decisions.set(key, allowed, this.#o.now() + (allowed ? this.#allowedTtl : this.#deniedTtl));
    return allowed;
  }

  /** Forgets every cached decision (the node's identity changed, a test). */
  clear(): void {
    this.#tokens.clear();
    this.#decisions.clear();
  }

  async #send(kind: ReviewKind, body: object): Promise<{ status: number; json?: any }> {
    const now = this.#o.now();
    if (now - this.#windowStart >= 60_000) {
      this.#windowStart = now;
      this.#windowCount = 0;
    }
    if (this.#windowCount >= this.#perMinute) {
      this.stats.throttled++;
      throw new ReviewUnavailable(`more than ${this.#perMinute} reviews a minute`);
    }
    this.#windowCount++;
    if (kind === "TokenReview") this.stats.tokenReviews++;
    else this.stats.accessReviews++;
    let result: { status: number; json?: any };
    try {
      result = await this.#o.review(kind, body);
    } catch (err) {
      throw new ReviewUnavailable(`${kind}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (result.status < 200 || result.status > 299) {
      const message = result.json?.kind === "Status" && typeof result.json.message === "string" ? `: ${result.json.message}` : "";
      throw new ReviewUnavailable(`${kind}: ${result.status}${message}`);
    }
    return result;
  }

  #unavailable(err: unknown): AuthDecision {
    this.stats.failures++;
    const now = this.#o.now();
    if (this.#o.log && now - this.#lastLog >= 10_000) {
      this.#lastLog = now;
      this.#o.log(`kubelet API: cannot review a request: ${err instanceof Error ? err.message : String(err)}`);
    }
    return { allowed: false, status: 503, message: "authentication or authorization is unavailable (the API server could not be asked)" };
  }
}

/** The kubelet adds system:authenticated to every authenticated user (group.NewAuthenticatedGroupAdder). */
function withAuthenticated(user: UserInfo): UserInfo {
  if (!user.groups.includes("system:authenticated")) user.groups.push("system:authenticated");
  return user;
}
