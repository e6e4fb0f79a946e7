// Certificate rotation, as the kubelet's certificate manager does it: at a random point late in the
// certificate's life (judged by the wall clock anchored from the API server's Date header) the board
// asks for a new one through the CSR API — a PKCS#10 request for the same key, signed by the host —
// watches the CertificateSigningRequest until it is issued, denied or gone, puts the new certificate
// to use (the slot's install: a fresh connection, or the listener's next handshakes) and only then
// keeps it (Host.store). Anything that fails leaves the certificate in use as it was; the next try
// waits out a backoff. One request at a time per certificate; the watch is bounded like every other.
import { Watcher, type WatchContext } from "../api/watch";
import { describeError } from "../api/client";
import { certificateFacts, type CertificateFacts, type Validity } from "../k8s/credentials";
import { canonicalIp, certificationRequest, certificationRequestInfo, csrObject, csrUsages, signatureAlgorithmOf } from "../k8s/csr";
import { equalBytes, fromBase64, fromPem } from "../k8s/der";
import type { EventSpec } from "../k8s/events";
import type { LogLevel } from "../host";
import { formatTime, type WallClock } from "../time/clock";
import { Backoff } from "../util/retry";

export const CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

export interface RotationContext extends WatchContext {
  clock: WallClock;
  nodeName: string;
  record(spec: EventSpec): void;
}

export interface RotationSlot {
  /** The credential's name in /metrics ("client-certificate", "serving-certificate"). */
  name: string;
  /** In words: "the client certificate". */
  what: string;
  signer: string;
  /** Share of the lifetime after which a new one is asked for: a point between the two, at random. */
  window: readonly [number, number];
  /** Host.store key the renewed certificate is kept under. */
  storeKey: string;
  certificate: Uint8Array;
  key: Uint8Array;
  /** The subjectAltNames a new one must carry (serving); absent: none (client). */
  addresses?: () => string[];
  /** True when a request waits on a person, not a controller (kubelet-serving): the Event says how to approve it. */
  manualApproval?: boolean;
  /** Puts a new certificate to use; rejects, naming why, when it does not work. */
  install(certificate: Uint8Array): Promise<void>;
}

export type RotationState = "waiting" | "requesting" | "pending" | "failed" | "unable";

/** How long a request may stay pending before the board says so (client) … */
export const PENDING_WARNING_MS = 60_000;
/** … and gives up on it to ask again (the kubelet's certificate manager waits 15 minutes). */
export const PENDING_GIVE_UP_MS = 15 * 60_000;
/** The CSR watch's bounds: a CSR object with its request, certificate and managedFields is ~6 KB. */
const CSR_EVENT_BYTES = 16 * 1024;

type Outcome = { kind: "issued"; certificate: Uint8Array } | { kind: "denied" | "failed"; reason: string } | { kind: "gone" | "timeout" | "stopped" };

function outcomeOf(csr: any): Outcome | undefined {
  const conditions: any[] = Array.isArray(csr?.status?.conditions) ? csr.status.conditions : [];
  for (const type of ["Denied", "Failed"]) {
    const c = conditions.find((x) => x?.type === type && x.status !== "False");
    if (c) return { kind: type === "Denied" ? "denied" : "failed", reason: [c.reason, c.message].filter(Boolean).join(": ") || "no reason given" };
  }
  const pem = typeof csr?.status?.certificate === "string" ? fromBase64(csr.status.certificate) : undefined;
  if (!pem) return undefined;
  let text = "";
  for (let i = 0; i < pem.length; i++) text += String.fromCharCode(pem[i]);
  const der = fromPem(text, "CERTIFICATE");
  return der ? { kind: "issued", certificate: der } : { kind: "failed", reason: "status.certificate holds no PEM certificate" };
}

/**
 * The certificate to start with: the one a rotation kept (Host.store) when it is for the same key
 * and newer than the provisioned one; the provisioned one otherwise (re-provisioning wins).
 */
export function startingCertificate(read: ((key: string) => Uint8Array | undefined) | undefined, storeKey: string, provisioned: Uint8Array, what: string, log: (level: LogLevel, message: string) => void): Uint8Array {
  const stored = read?.(storeKey);
  if (!stored) return provisioned;
  const kept = certificateFacts(stored);
  const given = certificateFacts(provisioned);
  if (!kept) {
    log("warn", `the renewed ${what} kept on the board is unreadable: using the provisioned one`);
    return provisioned;
  }
  if (!given || !equalBytes(kept.publicKeyInfo, given.publicKeyInfo)) {
    log("info", `the renewed ${what} kept on the board is for another key (the board was provisioned again): using the provisioned one`);
    return provisioned;
  }
  if (kept.validity.notAfter <= given.validity.notAfter) return provisioned;
  log("info", `using the ${what} this board renewed (valid until ${formatTime(kept.validity.notAfter)}), not the provisioned one (until ${formatTime(given.validity.notAfter)})`);
  return stored;
}

export class CertificateRotator {
  readonly slot: RotationSlot;
  state: RotationState = "waiting";
  /** The request in flight or the last one made. */
  csrName = "";
  lastError = "";
  rotations = 0;
  /** Epoch ms from which a new certificate is asked for. */
  deadline = 0;
  /** How long the last request took to sign on the host, ms. */
  signMs = 0;
  #ctx: RotationContext;
  #facts: CertificateFacts | undefined;
  #backoff: Backoff;
  #retryAt = 0;
  #stopped = false;
  #abort: (() => void) | undefined;
  #why = "";

  constructor(ctx: RotationContext, slot: RotationSlot) {
    this.#ctx = ctx;
    this.slot = slot;
    this.#backoff = new Backoff({ initialMs: 30_000, maxMs: 3600_000 }, () => ctx.host.random());
    this.#adopt(slot.certificate);
    if (!ctx.host.sign) this.#unable(`the ${ctx.host.name} host cannot sign certificate requests`);
    else if (this.#facts && !signatureAlgorithmOf(this.#facts.publicKeyInfo)) this.#unable("its key is neither RSA nor EC P-256");
    else if (!this.#facts) this.#unable("the certificate is unreadable");
  }

  get validity(): Validity | undefined {
    return this.#facts?.validity;
  }

  /** Is a renewal in sight: nothing failed since the last success, no request waits on a person? */
  get onTrack(): boolean {
    return this.state === "waiting" || this.state === "requesting" || (this.state === "pending" && !this.slot.manualApproval);
  }

  /** What the renewal is doing, for the expiry warning. */
  describe(): string {
    switch (this.state) {
      case "unable":
        return `nothing renews it (${this.lastError}): provision a new one (README, "Credentials")`;
      case "pending":
        return `CSR ${this.csrName} waits for approval${this.slot.manualApproval ? ` (kubectl certificate approve ${this.csrName})` : ""}`;
      case "failed":
        return `the last renewal failed (${this.lastError}); the board asks again at ${formatTime(this.#retryAt)}`;
      default:
        return "a renewal is under way";
    }
  }

  #adopt(certificate: Uint8Array): void {
    this.slot.certificate = certificate;
    this.#facts = certificateFacts(certificate);
    const v = this.#facts?.validity;
    if (!v) return;
    const [from, to] = this.slot.window;
    this.deadline = Math.floor(v.notBefore + (v.notAfter - v.notBefore) * (from + (to - from) * this.#ctx.host.random()));
  }

  #unable(why: string): void {
    this.state = "unable";
    this.lastError = why;
    this.#ctx.log("warn", `${this.slot.what} cannot be renewed by the board: ${why}`);
  }

  /** An address the certificate should carry and does not (a new DHCP lease, Wi-Fi instead of Ethernet). */
  #missingAddress(): string | undefined {
    if (!this.slot.addresses || !this.#facts) return undefined;
    const have = this.#facts.ipAddresses.map(canonicalIp);
    for (const a of this.slot.addresses()) {
      const ip = canonicalIp(a);
      if (ip && !have.includes(ip)) return a;
    }
    return undefined;
  }

  /** Called on every renewal: starts a request when one is due (never two at once). */
  check(): void {
    if (this.#stopped || this.state === "unable" || this.state === "requesting" || this.state === "pending") return;
    if (!this.#ctx.clock.anchored || !this.#facts) return;
    const now = this.#ctx.clock.now();
    if (now < this.#retryAt) return;
    const missing = this.#missingAddress();
    if (missing) this.#why = `the board's address ${missing} is not in it`;
    else if (now >= this.deadline) this.#why = `${Math.round(((now - this.#facts.validity.notBefore) / Math.max(1, this.#facts.validity.notAfter - this.#facts.validity.notBefore)) * 100)} % of its lifetime has passed (judged by the wall clock anchored from the API server's Date header)`;
    else return;
    void this.#rotate();
  }

  stop(): void {
    this.#stopped = true;
    this.#abort?.();
  }

  async #rotate(): Promise<void> {
    const { slot } = this;
    const ctx = this.#ctx;
    this.state = "requesting";
    const what = `renewing ${slot.what}`;
    try {
      ctx.log("info", `renewing ${slot.what}: ${this.#why}`);
      const request = await this.#request();
      if (this.#stopped) return;
      const created = await ctx.api.call("POST", CSR_PATH, { body: csrObject(request, slot.signer, csrUsages(slot.signer, signatureAlgorithmOf(this.#facts!.publicKeyInfo)!)), keepBody: CSR_EVENT_BYTES });
      if (created.status !== 201 || !created.json?.metadata?.name) throw new Error(`creating a CertificateSigningRequest: ${created.status}${created.json?.message ? `: ${created.json.message}` : ""}`);
      this.csrName = created.json.metadata.name;
      this.state = "pending";
      ctx.log("info", `CSR ${this.csrName} (${slot.signer}) created for ${slot.what} (its ${request.length}-byte request signed in ${Math.round(this.signMs)} ms)`);
      if (slot.manualApproval) {
        ctx.record({ type: "Normal", reason: "CertificateApprovalNeeded", message: `CSR ${this.csrName} asks for a new kubelet serving certificate (${slot.signer}); clusters do not approve these by themselves: kubectl certificate approve ${this.csrName}, or npm run provision -- --approve-serving --node ${ctx.nodeName}` });
      }
      const outcome = outcomeOf(created.json) ?? (await this.#await(this.csrName));
      if (outcome.kind === "stopped" || this.#stopped) return;
      if (outcome.kind !== "issued") return this.#failed(outcome, what);
      const issued = certificateFacts(outcome.certificate);
      if (!issued) throw new Error(`CSR ${this.csrName}: the issued certificate is unreadable`);
      if (!equalBytes(issued.publicKeyInfo, this.#facts!.publicKeyInfo)) throw new Error(`CSR ${this.csrName}: the issued certificate is for another key`);
      if (issued.commonName !== `system:node:${ctx.nodeName}`) throw new Error(`CSR ${this.csrName}: the issued certificate names "${issued.commonName}", not system:node:${ctx.nodeName}`);
      await slot.install(outcome.certificate);
      if (this.#stopped) return;
      // Kept only now: a restart before this line starts again with the certificate that worked.
      ctx.host.store?.write(slot.storeKey, outcome.certificate);
      this.#adopt(outcome.certificate);
      this.rotations++;
      this.state = "waiting";
      this.lastError = "";
      this.#backoff.reset();
      this.#retryAt = 0;
      ctx.success(what);
      const until = formatTime(issued.validity.notAfter);
      ctx.log("info", `${slot.what} renewed through CSR ${this.csrName}: in use now, valid until ${until}; the next renewal from ${formatTime(this.deadline)}`);
      ctx.record({ type: "Normal", reason: "CertificateRotated", message: `${slot.what} was renewed through CSR ${this.csrName} and is in use, valid until ${until}` });
    } catch (err) {
      if (this.#stopped) return;
      this.#failed({ kind: "failed", reason: describeError(err) }, what);
    }
  }

  async #request(): Promise<Uint8Array> {
    const ctx = this.#ctx;
    const spki = this.#facts!.publicKeyInfo;
    const algorithm = signatureAlgorithmOf(spki)!;
    const addresses = this.slot.addresses ? [...this.slot.addresses(), ...this.#facts!.dnsNames] : undefined;
    const info = certificationRequestInfo({ nodeName: ctx.nodeName, addresses: addresses && [...new Set(addresses)] }, spki);
    const began = ctx.host.monotonic();
    const signature = await ctx.host.sign!(this.slot.key, info);
    this.signMs = ctx.host.monotonic() - began;
    return certificationRequest(info, algorithm, signature);
  }

  /** Watches the CSR until it is issued, denied, failed or gone (or, unless a person must approve it, pending too long). */
  #await(name: string): Promise<Outcome> {
    const ctx = this.#ctx;
    const host = ctx.host;
    return new Promise<Outcome>((resolve) => {
      const timers: unknown[] = [];
      let watch: Watcher | undefined;
      const done = (o: Outcome) => {
        this.#abort = undefined;
        for (const t of timers) host.clearTimer(t);
        watch?.stop();
        ctx.success(`watching CertificateSigningRequest ${name}`); // a watch that failed and ended stands no more
        resolve(o);
      };
      this.#abort = () => done({ kind: "stopped" });
      const look = (csr: any) => {
        const o = outcomeOf(csr);
        if (o) done(o);
      };
      watch = new Watcher(ctx, `CertificateSigningRequest ${name}`, { path: CSR_PATH, fieldSelector: `metadata.name=${name}`, pageSize: 1, maxEventBytes: CSR_EVENT_BYTES, maxListBytes: CSR_EVENT_BYTES + 1024 }, {
        replaced: (items) => (items.length ? look(items[0]) : done({ kind: "gone" })),
        added: look,
        modified: look,
        deleted: () => done({ kind: "gone" }),
      });
      watch.start();
      if (this.slot.manualApproval) return;
      timers.push(
        host.setTimer(() => {
          const message = `CSR ${name} for ${this.slot.what} is still pending after ${PENDING_WARNING_MS / 1000} s: kube-controller-manager approves a node's renewal only where system:nodes may create certificatesigningrequests/selfnodeclient (deploy/node-cert-rotation.yaml); kubectl certificate approve ${name} does it by hand`;
          ctx.log("warn", message);
          ctx.record({ type: "Warning", reason: "CertificateApprovalPending", message });
        }, PENDING_WARNING_MS),
        host.setTimer(() => done({ kind: "timeout" }), PENDING_GIVE_UP_MS),
      );
    });
  }

  #failed(outcome: Outcome, what: string): void {
    const ctx = this.#ctx;
    const reason = "reason" in outcome ? outcome.reason : "";
    const csr = this.csrName ? `CSR ${this.csrName}` : "the certificate request";
    const denied = outcome.kind === "denied";
    // A person (or a policy) said no: asking again every few minutes would only spam; an hour.
    const delay = denied ? Math.max(3600_000, this.#backoff.nextDelay()) : this.#backoff.nextDelay();
    const now = ctx.clock.now();
    this.#retryAt = now + delay;
    this.state = "failed";
    this.lastError =
      outcome.kind === "denied" ? `${csr} was denied: ${reason}` : outcome.kind === "gone" ? `${csr} was deleted before it was issued` : outcome.kind === "timeout" ? `nobody approved ${csr} within ${PENDING_GIVE_UP_MS / 60_000} minutes` : `${csr} failed: ${reason}`;
    const until = this.#facts ? formatTime(this.#facts.validity.notAfter) : "?";
    const message = `${this.lastError}; ${this.slot.what} in use stays valid until ${until}; asking again at ${formatTime(this.#retryAt)}`;
    ctx.failure(what, new Error(message));
    ctx.record({ type: "Warning", reason: denied ? "CertificateRequestDenied" : "CertificateRotationFailed", message });
  }
}
