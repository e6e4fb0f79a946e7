// A watch of one kind of object, as client-go's reflector does it: LIST (paged), then WATCH from the
// list's resourceVersion with bookmarks, events decoded line by line as they arrive; the stream the
// server ends is resumed from the last resourceVersion seen; 410 Gone (or an expired version) means
// list again; failures wait as the shared retry policy says. Over HTTP/2 every watch is one more
// stream on the agent's one connection.
//
// Memory: one event line of at most maxEventBytes (an event larger than that is an error and a
// relist, never a larger buffer) and one list page of at most maxListBytes; the objects themselves
// are the handler's to keep or drop. A metadata-only watch (the agent's own Node) keeps just the
// head of each event and list page — type, name, uid, resourceVersion come first in what the API
// server writes — and drains the rest: a Node with 200 KB of managedFields costs it nothing.
import { StreamFlow } from "../http/h2";
import { Bytes, HttpError } from "../http/parser";
import { CancelToken } from "../http/types";
import type { Host, LogLevel } from "../host";
import { RetryPolicy, retryAfterFloor, type FailureKind } from "../util/retry";
import { ApiError, toApiError, type ApiClient } from "./client";

export interface WatchHandler<T = any> {
  /** After a (re)list: everything that exists now; what the handler knew before and is not here is gone. */
  replaced(items: T[]): void;
  added(object: T): void;
  modified(object: T): void;
  deleted(object: T): void;
}

export interface WatchOptions {
  /** The collection, e.g. "/api/v1/nodes". */
  path: string;
  fieldSelector?: string;
  labelSelector?: string;
  /** Default 64 KiB (4 KiB when metadataOnly). */
  maxEventBytes?: number;
  /** Per list page (the list is paged by `limit`). Default 256 KiB. */
  maxListBytes?: number;
  /** Objects per list page. Default 100 (1 when metadataOnly). */
  pageSize?: number;
  /**
   * The handler only needs metadata (name, namespace, uid, resourceVersion): events and list pages
   * are read from their first maxEventBytes, the rest drained, never an error.
   */
  metadataOnly?: boolean;
}

/** What a metadata-only watch hands its handler. */
export interface ObjectMeta {
  metadata: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}

export interface WatchContext {
  api: ApiClient;
  host: Host;
  log(level: LogLevel, message: string): void;
  failure(what: string, err: unknown): FailureKind;
  success(what: string): void;
  /** The Lease's last renewal failed: the API server is unreachable for the agent as a whole. */
  unreachable?(): boolean;
}

/** The longest a watch failing on the network waits for the Lease's recovery to wake it. */
const HOLD_MS = 60_000;

/** client-go asks the server to end a watch after 5–10 minutes, so a stuck one cannot live forever. */
const MIN_WATCH_SECONDS = 300;

const META_FIELDS: readonly string[] = Object.freeze(["name", "namespace", "uid", "resourceVersion", "continue"]);

/** The string fields of the metadata that starts at `from` in a JSON prefix (before any nested object). */
function metaFrom(text: string, from: number): Record<string, string> {
  const rest = text.slice(from);
  // The object's own fields end where a nested one starts (labels, annotations, managedFields …).
  const cut = rest.search(/"(labels|annotations|ownerReferences|finalizers|managedFields)":/);
  const own = cut > 0 ? rest.slice(0, cut) : rest;
  const metadata: Record<string, string> = {};
  for (const f of META_FIELDS) {
    const m = new RegExp(`"${f}":"([^"]*)"`).exec(own);
    if (m) metadata[f] = m[1];
  }
  return metadata;
}

function pick(metadata: Record<string, unknown> | undefined): ObjectMeta {
  const out: Record<string, string> = {};
  for (const f of META_FIELDS) if (f !== "continue" && typeof metadata?.[f] === "string") out[f] = metadata[f] as string;
  return { metadata: out };
}

/** The stream cannot be trusted (an event too big, or unreadable): list again. */
export class WatchError extends Error {}

/** 410: the version is too old to resume from; list again at once (not a failure). */
class Relist extends Error {}

export class Watcher<T = any> {
  readonly name: string;
  #ctx: WatchContext;
  #options: WatchOptions;
  #handler: WatchHandler<T>;
  #retry: RetryPolicy;
  #stopped = true;
  #cancel: CancelToken | undefined;
  #wake: (() => void) | undefined;
  #wakeable = false;
  #timer: unknown;
  #line = new Bytes(0); // the start of an event split across chunks (see #lines)
  #maxEvent: number;
  #overflow = false; // metadata-only: the line being read is longer than what is kept
  /** Pause delivery (HTTP/2: only this stream's window closes). */
  readonly flow = new StreamFlow();
  resourceVersion = "";
  /** Counters a person can read (snapshot, metrics). */
  events = 0;
  lists = 0;
  watches = 0;
  /** Is a watch stream open now? */
  watching = false;

  constructor(ctx: WatchContext, name: string, options: WatchOptions, handler: WatchHandler<T>) {
    this.#ctx = ctx;
    this.name = name;
    this.#options = options;
    this.#handler = handler;
    this.#retry = new RetryPolicy(ctx.host);
    this.#maxEvent = options.maxEventBytes ?? (options.metadataOnly ? 4096 : 65536);
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    void this.#run();
  }

  stop(): void {
    this.#stopped = true;
    this.#cancel?.cancel();
    this.#ctx.host.clearTimer(this.#timer);
    this.#wake?.();
  }

  /**
   * The API server is reachable again (a renewal just worked): a watch waiting out its backoff
   * tries now instead of up to 7 s later. Nothing when it is not waiting.
   */
  retryNow(): void {
    if (this.#stopped || !this.#wake || !this.#wakeable) return;
    this.#ctx.host.clearTimer(this.#timer);
    this.#wake();
  }

  /**
   * The agent's connection moved (renewed credentials): the open stream ends and the watch goes on
   * at once from the same resourceVersion over the new one — no failure, no backoff, nothing missed.
   */
  reconnect(): void {
    if (this.#stopped) return;
    if (this.#cancel) {
      this.#moving = true;
      this.#cancel.cancel();
    } else this.retryNow();
  }

  #moving = false;

  async #run(): Promise<void> {
    const what = `watching ${this.name}`;
    while (!this.#stopped) {
      try {
        if (!this.resourceVersion) await this.#list();
        if (this.#stopped) return;
        const began = this.#ctx.host.monotonic();
        await this.#watch();
        if (this.#moving) {
          this.#moving = false;
          continue;
        }
        // A stream the server ends at once, again and again, must not become a busy loop.
        const lasted = this.#ctx.host.monotonic() - began;
        if (lasted >= 10_000) this.#retry.reset();
        else if (lasted < 1000 && !this.#stopped) await this.#sleep(this.#retry.next("api"));
      } catch (err) {
        if (this.#stopped) return;
        if (err instanceof Relist) continue;
        const kind = this.#ctx.failure(what, err);
        if (err instanceof WatchError) this.resourceVersion = "";
        // A renewal that works again may cut the wait short (the path, the credentials, the server
        // are back), but not a Retry-After: API Priority and Fairness throttles watches apart from
        // the Lease. While the Lease finds the API server unreachable too, a watch that failed on
        // the network waits for that renewal (at most HOLD_MS) instead of retrying on its own: a
        // returning API server meets each board's renewal first, then its relists, not all at once.
        const wait = this.#retry.next(kind, err);
        const held = kind === "network" && this.#ctx.unreachable?.() === true;
        await this.#sleep(held ? Math.max(wait, HOLD_MS) : wait, retryAfterFloor(err) === 0);
      }
    }
  }

  #query(extra: string): string {
    const { fieldSelector, labelSelector } = this.#options;
    let q = extra;
    if (fieldSelector) q += `&fieldSelector=${encodeURIComponent(fieldSelector)}`;
    if (labelSelector) q += `&labelSelector=${encodeURIComponent(labelSelector)}`;
    return `${this.#options.path}?${q.slice(1)}`;
  }

  async #list(): Promise<void> {
    const items: T[] = [];
    let next = "";
    const metadataOnly = !!this.#options.metadataOnly;
    const pageSize = this.#options.pageSize ?? (metadataOnly ? 1 : 100);
    const keepBody = metadataOnly ? this.#maxEvent : this.#options.maxListBytes ?? 262_144;
    for (;;) {
      const path = this.#query(`&limit=${pageSize}${next ? `&continue=${encodeURIComponent(next)}` : ""}`);
      const res = await this.#ctx.api.call("GET", path, { keepBody });
      if (res.status === 410 && next) return this.#list(); // the continue token expired: start again
      if (res.status !== 200) throw toApiError("GET", path, res);
      let page: { rv: string; next: string; items: any[] };
      if (res.json) {
        // Valid JSON that is not a list (no items, no resourceVersion) must not read as "nothing exists": that would stop every pod.
        if (!Array.isArray(res.json.items) || typeof res.json.metadata?.resourceVersion !== "string" || !res.json.metadata.resourceVersion) throw new WatchError(`GET ${path}: 200: the answer is not a list (no items or no resourceVersion)`);
        page = { rv: res.json.metadata.resourceVersion, next: res.json.metadata.continue ?? "", items: res.json.items };
        if (metadataOnly) page.items = page.items.map((i) => pick(i.metadata));
      } else if (metadataOnly) page = this.#pageFromPrefix(this.#ctx.host.utf8Decode(res.response.body));
      else if (res.response.truncated) throw new WatchError(`GET ${path}: a list page of ${res.response.bodyLength} bytes is more than the ${keepBody} this agent keeps`);
      else throw new WatchError(toApiError("GET", path, res).message); // a 200 that is not a list: not JSON, or not the API server's
      for (const item of page.items) items.push(item);
      next = page.next;
      if (!next) {
        this.resourceVersion = page.rv;
        break;
      }
    }
    this.lists++;
    this.#handler.replaced(items);
  }

  /** A list page cut short: its own metadata comes first, then (one item per page) the item's. */
  #pageFromPrefix(text: string): { rv: string; next: string; items: ObjectMeta[] } {
    const list = metaFrom(text, text.indexOf('"metadata":{') + 12);
    const itemsAt = text.indexOf('"items":[');
    if (!list.resourceVersion || itemsAt < 0) throw new WatchError(`a list page of ${this.name} too long to read even its head`);
    const items: ObjectMeta[] = [];
    if (text[itemsAt + 9] === "{") {
      const at = text.indexOf('"metadata":{', itemsAt);
      if (at >= 0) items.push(pick(metaFrom(text, at + 12)));
    }
    return { rv: list.resourceVersion, next: list.continue ?? "", items };
  }

  async #watch(): Promise<void> {
    const seconds = Math.floor(MIN_WATCH_SECONDS * (1 + this.#ctx.host.random()));
    const path = this.#query(`&watch=1&resourceVersion=${encodeURIComponent(this.resourceVersion)}&allowWatchBookmarks=true&timeoutSeconds=${seconds}`);
    const cancel = new CancelToken();
    this.#cancel = cancel;
    this.#line = new Bytes(0);
    this.#overflow = false;
    let failure: Error | undefined;
    let status: unknown;
    const onData = (bytes: Uint8Array) => {
      if (failure) return;
      try {
        this.#lines(bytes, (event) => {
          if (event.type === undefined && event.kind === "Status") status = event; // an error body, not an event
          else this.#event(event);
        });
      } catch (err) {
        failure = err as Error;
        cancel.cancel();
      }
    };
    // The stream is open once its head says 200: from then on the watch works (the LED and log say so).
    const onHead = (code: number) => {
      if (code === 200) this.#ctx.success(`watching ${this.name}`);
    };
    this.watches++;
    this.watching = true;
    try {
      const res = await this.#ctx.api.stream(path, onData, { cancel, flow: this.flow, timeoutMs: (seconds + 30) * 1000, onHead });
      if (failure) throw failure;
      // An error body is one JSON Status without a newline.
      const rest = this.#line.take();
      if (res.status !== 200 && rest.length) {
        try {
          status = JSON.parse(this.#ctx.host.utf8Decode(rest));
        } catch {
          // not JSON: the status code alone says it
        }
      }
      if (res.status === 410) throw this.#expired();
      // Named without this attempt's resourceVersion and timeoutSeconds: the same failure is the same line (logged once).
      if (res.status !== 200) throw toApiError("GET", this.#query("&watch=1"), { status: res.status, json: status, response: res.response });
    } catch (err) {
      if (failure) throw failure;
      if (err instanceof HttpError && err.kind === "cancelled" && (this.#stopped || this.#moving)) return;
      throw err;
    } finally {
      this.watching = false;
      this.#cancel = undefined;
    }
  }

  /**
   * Splits the stream into lines (bounded), each one JSON event. A line that arrived whole in this
   * chunk (most events) is read where it is; only a line split across chunks is gathered in #line,
   * which is let go once that line is out, so an idle watch holds no buffer its largest event grew.
   */
  #lines(bytes: Uint8Array, each: (event: any) => void): void {
    let start = 0;
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] !== 10) continue;
      let line: Uint8Array;
      let cut = false;
      if (this.#line.length === 0 && !this.#overflow && i - start <= this.#maxEvent) line = bytes.subarray(start, i);
      else {
        this.#take(bytes, start, i);
        line = this.#line.take();
        this.#line = new Bytes(0);
        cut = this.#overflow;
        this.#overflow = false;
      }
      start = i + 1;
      if (!line.length) continue;
      const text = this.#ctx.host.utf8Decode(line);
      each(this.#options.metadataOnly ? this.#metaEvent(text, cut) : JSON.parse(text));
    }
    this.#take(bytes, start, bytes.length);
  }

  #take(bytes: Uint8Array, start: number, end: number): void {
    if (this.#line.append(bytes, start, end, this.#maxEvent) < end - start) {
      if (this.#options.metadataOnly) this.#overflow = true;
      else throw new WatchError(`a watch event on ${this.name} is larger than ${this.#maxEvent} bytes: listing again`);
    }
  }

  /** An event reduced to its object's metadata, read from its head when it was longer than kept. */
  #metaEvent(text: string, cut: boolean): { type: string; object: any } {
    if (!cut) {
      const event = JSON.parse(text);
      return event.type === "ERROR" || event.type === "BOOKMARK" ? event : { type: event.type, object: pick(event.object?.metadata) };
    }
    const type = /^\{"type":"([A-Z]+)"/.exec(text)?.[1];
    const at = text.indexOf('"metadata":{');
    if (!type || type === "ERROR" || at < 0) throw new WatchError(`a watch event on ${this.name} too long to read even its head`);
    return { type, object: pick(metaFrom(text, at + 12)) };
  }

  #event(event: { type: string; object: any }): void {
    const rv = event.object?.metadata?.resourceVersion;
    switch (event.type) {
      case "ADDED":
      case "MODIFIED":
      case "DELETED":
        if (rv) this.resourceVersion = rv;
        this.events++;
        if (event.type === "ADDED") this.#handler.added(event.object);
        else if (event.type === "MODIFIED") this.#handler.modified(event.object);
        else this.#handler.deleted(event.object);
        return;
      case "BOOKMARK":
        if (rv) this.resourceVersion = rv;
        return;
      case "ERROR": {
        const code = event.object?.code;
        if (code === 410) throw this.#expired();
        throw new ApiError("WATCH", this.#options.path, code ?? 0, event.object?.reason ?? "", event.object?.message ?? "");
      }
      default:
        throw new WatchError(`a watch event of unknown type "${String(event.type).slice(0, 20)}" on ${this.name}`);
    }
  }

  #expired(): Relist {
    this.#ctx.log("debug", `watch of ${this.name}: resourceVersion ${this.resourceVersion} expired, listing again`);
    this.resourceVersion = "";
    return new Relist();
  }

  /** Waits ms (stop() ends it); wakeable: retryNow() may end it too. */
  #sleep(ms: number, wakeable = false): Promise<void> {
    this.#wakeable = wakeable;
    return new Promise((resolve) => {
      this.#timer = this.#ctx.host.setTimer(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        this.#wake = undefined;
        resolve();
      };
    });
  }
}
