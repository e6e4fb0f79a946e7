// The agent's credentials as a whole: which certificate to start with (one a rotation kept wins over
// the provisioned one), when each credential expires, which the board renews itself (the rotators),
// and the warning when one nears its end with no renewal in sight. The composition root wires what
// using a renewed certificate means (a fresh connection, the listener) through CredentialHooks.
import { toApiError, type ApiClient } from "../api/client";
import { certificateValidity, expiringSoon, tokenValidity, type Validity } from "../k8s/credentials";
import { CLIENT_SIGNER, SERVING_SIGNER } from "../k8s/csr";
import type { EventSpec } from "../k8s/events";
import type { LogLevel, TlsOptions } from "../host";
import type { AgentContext } from "../reconcilers/context";
import { formatTime } from "../time/clock";
import type { KubeletOptions } from "./options";
import { CertificateRotator, startingCertificate } from "./rotation";

/** Host.store keys of the certificates a rotation renewed. */
export const CLIENT_CERT_KEY = "client-cert";
export const SERVING_CERT_KEY = "serving-cert";

/** One of the agent's credentials: when it expires, and what renews it (nothing, for a token). */
export interface Credential {
  name: string;
  what: string;
  readonly validity: Validity;
  rotator?: CertificateRotator;
}

const SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
/** Made anew for each use: a preloaded (ROM) object cannot be passed to JSON.stringify in XS, which marks what it visits. */
const selfSubjectReview = () => ({ method: "POST", path: SELF_SUBJECT_REVIEWS, body: { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" } });

/** The options with the certificates this board renewed before this boot, where they replace the provisioned ones. */
export function withKeptCertificates(options: KubeletOptions, read: ((key: string) => Uint8Array | undefined) | undefined, log: (level: LogLevel, message: string) => void): KubeletOptions {
  const tls = options.tls;
  if (tls?.clientCertificate && tls.clientKey) options = { ...options, tls: { ...tls, clientCertificate: startingCertificate(read, CLIENT_CERT_KEY, tls.clientCertificate, "client certificate", log) } };
  const served = options.kubeletApi;
  if (served) options = { ...options, kubeletApi: { ...served, certificate: startingCertificate(read, SERVING_CERT_KEY, served.certificate, "serving certificate", log) } };
  return options;
}

/**
 * A renewed client certificate: a fresh connection proves it (a SelfSubjectReview must name the
 * node), then every request moves over; resolves with the TLS options now in use.
 */
export async function switchClientCertificate(api: ApiClient, nodeName: string, tls: TlsOptions, certificate: Uint8Array): Promise<TlsOptions> {
  const expected = `system:node:${nodeName}`;
  const next = { ...tls, clientCertificate: certificate };
  let user = "";
  const res = await api.switchCredentials(next, selfSubjectReview(), (r) => r.status === 201 && (user = String(r.json?.status?.userInfo?.username ?? "")) === expected);
  if (user !== expected) throw new Error(res.status === 201 ? `the API server sees the new certificate as "${user}", not ${expected}` : `the API server refused the new certificate: ${toApiError("POST", SELF_SUBJECT_REVIEWS, res).message}`);
  return next;
}

export interface CredentialHooks {
  record(spec: EventSpec): void;
  /** Puts a renewed client certificate to use (switchClientCertificate, the watches moved). */
  useClientCertificate(certificate: Uint8Array): Promise<void>;
  /** Serves a renewed serving certificate; throws when it cannot. */
  useServingCertificate(certificate: Uint8Array): void;
  /** The board's address now (the serving certificate's SAN). */
  address(): string;
}

export class AgentCredentials {
  readonly list: Credential[] = [];
  /** The certificates the board renews itself (client: x509 identities; serving: the kubelet API's). */
  readonly rotators: CertificateRotator[] = [];
  /** Those close to expiry (or past it) with no renewal in sight: an Event each, and the LED says Warning. */
  readonly expiring = new Set<string>();
  #ctx: AgentContext;
  #hooks: CredentialHooks;

  constructor(ctx: AgentContext, options: KubeletOptions, hooks: CredentialHooks) {
    this.#ctx = ctx;
    this.#hooks = hooks;
    const rotation = { ...ctx, record: (spec: EventSpec) => hooks.record(spec) };
    const add = (name: string, what: string, validity: Validity | undefined, rotator?: CertificateRotator) => {
      if (!validity && !rotator) return;
      if (rotator) this.rotators.push(rotator);
      this.list.push({ name, what, rotator, get validity() { return rotator?.validity ?? validity ?? { notBefore: 0, notAfter: 0 }; } });
    };
    const tls = options.tls;
    const client = tls?.clientCertificate;
    if (client && tls.clientKey && certificateValidity(client)) {
      const rotator = new CertificateRotator(rotation, { name: "client-certificate", what: "the client certificate", signer: CLIENT_SIGNER, window: [0.7, 0.9], storeKey: CLIENT_CERT_KEY, certificate: client, key: tls.clientKey, install: (c) => hooks.useClientCertificate(c) });
      add("client-certificate", "the client certificate", undefined, rotator);
    } else add("client-certificate", "the client certificate", certificateValidity(client));
    add("token", "the ServiceAccount token", tokenValidity(options.token));
    const api = options.kubeletApi;
    const serving = certificateValidity(api?.certificate);
    if (api && serving && client && !options.token) {
      // Asked for early (50–70 % of its life): a person approves kubelet-serving requests.
      const rotator = new CertificateRotator(rotation, {
        name: "serving-certificate",
        what: "the kubelet API's serving certificate",
        signer: SERVING_SIGNER,
        window: [0.5, 0.7],
        storeKey: SERVING_CERT_KEY,
        certificate: api.certificate,
        key: api.key,
        manualApproval: true,
        addresses: () => {
          const a = hooks.address();
          return a ? [a] : [];
        },
        install: async (c) => hooks.useServingCertificate(c),
      });
      add("serving-certificate", "the kubelet API's serving certificate", undefined, rotator);
    } else add("serving-certificate", "the kubelet API's serving certificate", serving);
  }

  /**
   * Certificates due for renewal are asked for; credentials close to expiry (the last 20 % of their
   * lifetime, at most 30 days) or past it, judged by the wall clock anchored from the API server's
   * Date header — never the board's own guess — with no renewal in sight get an Event and a log line
   * once each, and stay in `expiring` (the LED's Warning) until renewed or provisioned anew.
   */
  check(): void {
    const { clock } = this.#ctx;
    if (!clock.anchored) return;
    for (const r of this.rotators) r.check();
    const now = clock.now();
    for (const c of this.list) {
      const soon = expiringSoon(c.validity, now) && !c.rotator?.onTrack;
      if (!soon) {
        this.expiring.delete(c.name);
        continue;
      }
      if (this.expiring.has(c.name)) continue;
      this.expiring.add(c.name);
      const when = formatTime(c.validity.notAfter);
      const past = c.validity.notAfter <= now;
      const renewal = c.rotator ? c.rotator.describe() : c.name === "token" ? 'the board cannot renew a token: provision a new one (README, "Credentials")' : 'nothing renews it: provision a new one (README, "Credentials")';
      const message = `${c.what} ${past ? "expired" : "expires"} at ${when} (judged by the wall clock anchored from the API server's Date header); ${renewal}`;
      this.#ctx.log(past ? "error" : "warn", message);
      this.#hooks.record({ type: "Warning", reason: "CredentialExpiring", message });
    }
  }

  stop(): void {
    for (const r of this.rotators) r.stop();
  }
}
