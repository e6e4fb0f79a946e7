// The kubelet's Events, sent without getting in the way of the heartbeat: recorded events wait in a
// small queue and go out one at a time after the Lease and status work, rate-limited (a token
// bucket, as client-go's spam filter). A repeat of an event already sent is aggregated: its count
// and lastTimestamp are patched, and repeats that arrive before the patch went out only raise the
// count — a thousand identical failures are one Event with count 1000, not a thousand requests.
// Offline, events wait up to maxAgeMs and then are dropped and counted; a full queue drops its
// oldest. Memory: at most maxQueue pending events and the last maxRemembered sent ones.
import { describeError, toApiError, type ApiClient } from "../api/client";
import type { Host, LogLevel } from "../host";
import { eventBody, eventName, eventPaths, eventRepeatPatch, type EventSpec } from "../k8s/events";
import { STRATEGIC_MERGE_PATCH } from "../k8s/paths";
import { formatTime, type WallClock } from "../time/clock";
import { TimerLoop } from "../util/loop";
import { RetryPolicy, retryAfterFloor } from "../util/retry";

export interface RecorderContext {
  api: ApiClient;
  host: Host;
  clock: WallClock;
  nodeName: string;
  log(level: LogLevel, message: string): void;
  /** The heartbeat's own requests are under way: events wait. */
  busy(): boolean;
}

export interface RecorderOptions {
  /** Pending events at most (default 32: the Node's and a few pods'). */
  maxQueue?: number;
  /** Sent events remembered for aggregation (default 16). */
  maxRemembered?: number;
  /** An event not sent within this long is dropped (default 10 min). */
  maxAgeMs?: number;
  /** Token bucket per involved object: burst and one token per refillMs (defaults 10 and 30 s: ~2 a minute sustained). */
  burst?: number;
  refillMs?: number;
}

interface Pending {
  key: string;
  spec: EventSpec;
  /** Repeats recorded (1 for a new event). */
  count: number;
  firstAt: number; // monotonic ms, for maxAge
  time: string; // lastTimestamp, RFC 3339 ("" until the clock is anchored)
}

interface Sent {
  name: string;
  count: number;
}

const keyOf = (s: EventSpec) => `${s.about ? `${s.about.uid}\n${s.about.fieldPath ?? ""}\n` : ""}${s.type}\n${s.reason}\n${s.message}`;

export class EventRecorder {
  #ctx: RecorderContext;
  #maxQueue: number;
  #maxRemembered: number;
  #maxAge: number;
  #burst: number;
  #refill: number;
  #queue: Pending[] = [];
  #sent = new Map<string, Sent>(); // insertion order = age: the oldest is evicted first
  /** Token buckets per involved object ("" the Node, a pod's uid), as client-go's per-object spam filter; at most maxRemembered. */
  #buckets = new Map<string, { tokens: number; at: number }>();
  #loop: TimerLoop;
  #retry: RetryPolicy;
  #sending = false;
  /** Until when the API server's last Retry-After holds Events back (monotonic ms; 0: it does not). */
  #heldUntil = 0;
  #seq = 0;
  /** Events posted, repeats patched, events dropped (offline too long, queue full, refused). */
  posted = 0;
  patched = 0;
  dropped = 0;

  constructor(ctx: RecorderContext, options: RecorderOptions = {}) {
    this.#ctx = ctx;
    this.#maxQueue = options.maxQueue ?? 32;
    this.#maxRemembered = options.maxRemembered ?? 16;
    this.#maxAge = options.maxAgeMs ?? 600_000;
    this.#burst = options.burst ?? 10;
    this.#refill = options.refillMs ?? 30_000;
    this.#loop = new TimerLoop(ctx.host, () => void this.#pump());
    this.#retry = new RetryPolicy(ctx.host);
  }

  start(): void {
    this.#loop.start(0);
  }

  stop(): void {
    this.#loop.stop();
  }

  get pending(): number {
    return this.#queue.length;
  }

  record(spec: EventSpec): void {
    const key = keyOf(spec);
    // Before the clock is anchored (Starting), the time is the sending's.
    const time = this.#ctx.clock.anchored ? formatTime(this.#ctx.clock.now()) : "";
    const queued = this.#queue.find((p) => p.key === key);
    if (queued) {
      queued.count++;
      queued.time = time;
      return;
    }
    if (this.#queue.length >= this.#maxQueue) {
      this.#queue.shift();
      this.dropped++;
    }
    this.#queue.push({ key, spec, count: 1, firstAt: this.#ctx.host.monotonic(), time });
    if (!this.#sending) this.#loop.schedule(0);
  }

  /** The bucket of an event's object, refilled to now. */
  #bucket(event: Pending): { tokens: number; at: number } {
    const key = event.spec.about?.uid ?? "";
    const now = this.#ctx.host.monotonic();
    let b = this.#buckets.get(key);
    if (!b) {
      b = { tokens: this.#burst, at: now };
      this.#buckets.set(key, b);
      if (this.#buckets.size > this.#maxRemembered) {
        for (const k of this.#buckets.keys()) {
          if (k !== key && k !== "") {
            this.#buckets.delete(k);
            break;
          }
        }
      }
    }
    b.tokens = Math.min(this.#burst, b.tokens + (now - b.at) / this.#refill);
    b.at = now;
    return b;
  }

  async #pump(): Promise<void> {
    if (this.#sending) return;
    this.#expire();
    if (!this.#queue.length) return;
    // Told Retry-After: nothing goes out before its time, whatever was recorded meanwhile.
    const now = this.#ctx.host.monotonic();
    if (now < this.#heldUntil) return this.#loop.schedule(this.#heldUntil - now);
    // After the heartbeat: the Lease and status pushes go first.
    if (this.#ctx.busy()) return this.#loop.schedule(250);
    // The oldest event whose object has a token; one chatty pod does not hold back the Node's.
    let event: Pending | undefined;
    let wait = Infinity;
    for (const p of this.#queue) {
      const b = this.#bucket(p);
      if (b.tokens >= 1) {
        b.tokens--;
        event = p;
        break;
      }
      wait = Math.min(wait, Math.ceil((1 - b.tokens) * this.#refill) || 1);
    }
    if (!event) return this.#loop.schedule(wait);
    this.#sending = true;
    let next = 0;
    try {
      await this.#send(event);
      this.#retry.reset();
      this.#heldUntil = 0;
    } catch (err) {
      const held = retryAfterFloor(err);
      this.#heldUntil = held ? this.#ctx.host.monotonic() + held : 0;
      next = this.#retry.next("network", err);
      this.#ctx.log("debug", `sending event ${event.spec.reason} failed: ${describeError(err)}`);
    } finally {
      this.#sending = false;
    }
    if (this.#queue.length) this.#loop.schedule(next);
  }

  /** Sends the oldest pending event; on success (or a refusal) it leaves the queue. */
  async #send(event: Pending): Promise<void> {
    const { api, nodeName, clock } = this.#ctx;
    const known = this.#sent.get(event.key);
    const sending = event.count; // repeats recorded while this is on the wire stay for the next patch
    const count = (known?.count ?? 0) + sending;
    const time = event.time || formatTime(clock.now());
    let res;
    let method: string;
    let path: string;
    if (known) {
      method = "PATCH";
      path = eventPaths.event(known.name, event.spec.about?.namespace);
      res = await api.call(method, path, { body: eventRepeatPatch(count, time), contentType: STRATEGIC_MERGE_PATCH, keepBody: 1024, echoIgnored: true });
    } else {
      method = "POST";
      path = eventPaths.events(event.spec.about?.namespace);
      // client-go names an Event after its object: <node>.<hex>, <pod>.<hex>.
      const name = eventName(event.spec.about?.name ?? nodeName, clock.now(), this.#seq++);
      res = await api.call(method, path, { body: eventBody(nodeName, name, event.spec, time, count), keepBody: 1024, echoIgnored: true });
      if (res.status === 201 || res.status === 409) this.#remember(event.key, { name, count });
    }
    if (res.status === 200 || res.status === 201 || res.status === 409) {
      if (known) {
        known.count = count;
        this.patched++;
      } else this.posted++;
      event.count -= sending;
      if (event.count === 0) this.#dequeue(event);
      return;
    }
    if (known && res.status === 404) {
      // The Event expired on the server (events live an hour): the next attempt posts it anew.
      this.#sent.delete(event.key);
      throw toApiError(method, path, res);
    }
    if (res.status >= 400 && res.status < 500 && res.status !== 429 && res.status !== 408) {
      // Refused for good (forbidden, invalid): retrying would never land it. Said once, dropped.
      this.#dequeue(event);
      this.dropped++;
      this.#ctx.log("warn", `event ${event.spec.reason} dropped: ${describeError(toApiError(method, path, res))}`);
      return;
    }
    throw toApiError(method, path, res);
  }

  #remember(key: string, sent: Sent): void {
    this.#sent.set(key, sent);
    if (this.#sent.size > this.#maxRemembered) this.#sent.delete(this.#sent.keys().next().value!);
  }

  #dequeue(event: Pending): void {
    const i = this.#queue.indexOf(event);
    if (i >= 0) this.#queue.splice(i, 1);
  }

  /** Events that waited too long (the API server unreachable) are dropped, and that is said once. */
  #expire(): void {
    const now = this.#ctx.host.monotonic();
    let n = 0;
    while (this.#queue.length && now - this.#queue[0].firstAt > this.#maxAge) {
      this.#queue.shift();
      n++;
    }
    if (!n) return;
    this.dropped += n;
    this.#ctx.log("warn", `dropped ${n} event${n > 1 ? "s" : ""} that could not be sent within ${this.#maxAge / 60_000} min`);
  }
}
