// The firmware's configuration: non-secrets from mc/config (manifest "config" + mcconfig key=value)
// overridden by Preferences; secrets (token, client key, Wi-Fi password, CA) only from Preferences
// (NVS on the board, /tmp/modpreferences.json in the simulator), so they never sit in the image.
// Preference domain "xs-kubelet"; keys stay within NVS's 15 characters.
import config from "mc/config";
import Preference from "preference";
import { configProblems, type KubeletOptions } from "../../modules/kubelet/kubelet";

export const PREF_DOMAIN = "xs-kubelet";

/** Preference keys (≤ 15 characters). */
export const PREF = {
  nodeName: "node", // string
  apiHost: "server", // string: IPv4 address or DNS name
  apiPort: "port", // integer or string
  serverName: "serverName", // string: name the API server's certificate carries
  verify: "verify", // boolean or "false": TLS verification (default on)
  token: "token", // secret string: bearer token
  ca: "ca", // ArrayBuffer: cluster CA, DER
  clientCert: "clientCert", // ArrayBuffer: RSA client certificate, DER
  clientKey: "clientKey", // secret ArrayBuffer: PKCS#8 DER
  servingCert: "servingCert", // ArrayBuffer: the kubelet API's serving certificate (RSA), DER
  servingKey: "servingKey", // secret ArrayBuffer: its PKCS#8 DER key
  wifiSsid: "wifiSsid", // string
  wifiPassword: "wifiPass", // secret string
} as const;

export interface FirmwareConfig {
  kubelet: KubeletOptions;
  wifi?: { ssid: string; password?: string };
  debug: boolean;
  /** Everything wrong, in words a user can act on; empty when the agent can start. */
  problems: string[];
}

type Raw = string | number | boolean | ArrayBuffer | undefined;

function pref(key: string): Raw {
  try {
    return Preference.get(PREF_DOMAIN, key) as Raw;
  } catch {
    return undefined;
  }
}

/** mc/config value for a key: command-line values are strings, dotted keys do not nest. */
function mc(key: string): Raw {
  const value = (config as Record<string, unknown>)[key];
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean" ? value : undefined;
}

function text(value: Raw): string | undefined {
  if (typeof value === "string") return value.trim() || undefined;
  if (typeof value === "number") return String(value);
  return undefined;
}

function bool(value: Raw, fallback: boolean): boolean {
  if (typeof value === "boolean") return value;
  if (typeof value === "number") return value !== 0;
  if (typeof value === "string") {
    const v = value.trim().toLowerCase();
    if (v === "false" || v === "0" || v === "no" || v === "off") return false;
    if (v === "true" || v === "1" || v === "yes" || v === "on") return true;
  }
  return fallback;
}

function der(value: Raw, what: string, problems: string[]): Uint8Array | undefined {
  if (value === undefined) return undefined;
  if (value instanceof ArrayBuffer && value.byteLength > 0) {
    const bytes = new Uint8Array(value);
    if (bytes[0] === 0x30) return bytes; // a DER SEQUENCE
  }
  problems.push(`preference "${what}" must be DER bytes (an ArrayBuffer starting with 0x30), not ${typeof value === "string" ? "text (PEM?)" : typeof value}`);
  return undefined;
}

export function loadConfig(): FirmwareConfig {
  const problems: string[] = [];
  const value = (prefKey: string, mcKey: string) => {
    const p = pref(prefKey);
    return p !== undefined ? p : mc(mcKey);
  };

  const nodeName = text(value(PREF.nodeName, "nodeName")) ?? "";
  const host = text(value(PREF.apiHost, "apiHost")) ?? "";
  const portText = text(value(PREF.apiPort, "apiPort")) ?? "6443";
  const port = /^\d+$/.test(portText) ? Number(portText) : NaN;
  const verify = bool(value(PREF.verify, "verify"), true);
  // Not "tls": mc/config.tls holds the SDK's cipher-suite switches (tls_common.json).
  const tlsOn = bool(mc("apiTls"), true);
  const serverName = text(value(PREF.serverName, "serverName")) ?? host;

  // Secrets: Preferences only. A token in mc/config would be compiled into the image.
  if (mc("token") !== undefined) problems.push(`"token" must not be in mc/config (it would be in the firmware image); provision it as preference ${PREF_DOMAIN}/${PREF.token}`);
  const token = text(pref(PREF.token));
  const ca = der(pref(PREF.ca), PREF.ca, problems);
  const clientCertificate = der(pref(PREF.clientCert), PREF.clientCert, problems);
  const clientKey = der(pref(PREF.clientKey), PREF.clientKey, problems);
  if (!!clientCertificate !== !!clientKey) problems.push(`a client certificate needs both preferences "${PREF.clientCert}" and "${PREF.clientKey}"`);
  const servingCert = der(pref(PREF.servingCert), PREF.servingCert, problems);
  const servingKey = der(pref(PREF.servingKey), PREF.servingKey, problems);
  if (!!servingCert !== !!servingKey) problems.push(`serving the kubelet API needs both preferences "${PREF.servingCert}" and "${PREF.servingKey}"`);
  if (!token && !clientCertificate) problems.push(`no credentials: provision preference ${PREF_DOMAIN}/${PREF.token} (bearer token) or ${PREF.clientCert} + ${PREF.clientKey}`);
  if (tlsOn && verify && !ca) problems.push(`no cluster CA: provision preference ${PREF_DOMAIN}/${PREF.ca} (DER bytes of the CA certificate)`);

  // "auto" (default: HTTP/2 when the server speaks it), "h2" or "http/1.1".
  const http = text(mc("http")) ?? "auto";
  if (http !== "auto" && http !== "h2" && http !== "http/1.1") problems.push(`mc/config "http" must be auto, h2 or http/1.1, not "${http}"`);
  // mc/config heartbeatOnly: the Node, its Lease and the node watch, nothing else (no pods, no
  // settings watches, no kubelet API): the smallest heap the agent can run in.
  const heartbeatOnly = bool(mc("heartbeatOnly"), false);
  const kubelet: KubeletOptions = {
    nodeName,
    server: { host, port },
    token,
    tls: tlsOn ? { serverName, verify, ca, clientCertificate, clientKey } : undefined,
    http: http === "h2" || http === "http/1.1" ? http : "auto",
    kubeletApi: servingCert && servingKey && !heartbeatOnly ? { certificate: servingCert, key: servingKey, clientCa: ca } : undefined,
    ...(heartbeatOnly ? { pods: false, settings: false } : {}),
  };
  // The core's own checks (node name, host, port, TLS), minus the CA one already worded above.
  for (const p of configProblems(kubelet)) if (!/no cluster CA was given/.test(p) || ca) problems.push(p);

  const ssid = text(value(PREF.wifiSsid, "wifiSsid"));
  const password = text(pref(PREF.wifiPassword));
  return {
    kubelet,
    wifi: ssid ? { ssid, password } : undefined,
    debug: bool(mc("debugLog"), false),
    problems,
  };
}

/** A one-line, secret-free summary for the boot log. */
export function describeConfig(c: FirmwareConfig): string {
  const k = c.kubelet;
  const tls = k.tls ? `TLS ${k.tls.verify ? "verified" : "UNVERIFIED"} as "${k.tls.serverName}"${k.tls.ca ? `, CA ${k.tls.ca.length} B` : ""}` : "plain HTTP";
  const creds = k.token ? `token (${k.token.length} chars)` : k.tls?.clientCertificate ? "client certificate" : "none";
  return `node "${k.nodeName}", API server ${k.server.host}:${k.server.port}, ${tls}, HTTP ${k.http ?? "auto"}, credentials: ${creds}${k.kubeletApi ? ", kubelet API served (HTTPS)" : ""}${c.wifi ? `, Wi-Fi "${c.wifi.ssid}"` : ""}`;
}

/**
 * Host.store on the board and in mcsim: Preferences in the same domain, one ArrayBuffer per key
 * ("settings", "memory": within NVS's 15-character keys; values well under its ~4000-byte blobs —
 * the settings text leaves memory_values out, the 1 KiB region is stored as bytes).
 */
export const preferenceStore = Object.freeze({
  read(key: string): Uint8Array | undefined {
    try {
      const v = Preference.get(PREF_DOMAIN, `st-${key}`);
      return v instanceof ArrayBuffer ? new Uint8Array(v.slice(0)) : undefined;
    } catch {
      return undefined;
    }
  },
  write(key: string, bytes: Uint8Array): void {
    Preference.set(PREF_DOMAIN, `st-${key}`, bytes.slice().buffer as ArrayBuffer);
  },
});
