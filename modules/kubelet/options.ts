// The agent's options and what is wrong with them, in words a user can act on.
import type { HttpVersion } from "../api/client";
import { DEFAULTS } from "../defaults";
import type { TlsOptions } from "../host";
import type { IdentityConfig } from "../k8s/identity";
import { nodeNameProblem, portProblem, serverHostProblem } from "../k8s/names";
import type { KubeletApiConfig } from "./api-server";

export interface KubeletOptions {
  nodeName: string;
  server: { host: string; port: number };
  /** TLS to the API server; omitted only for plain-HTTP test servers. */
  tls?: TlsOptions;
  token?: string;
  /** Overrides of what the host says about the board, and extra labels. */
  identity?: Partial<Omit<IdentityConfig, "name">>;
  leaseDurationSeconds?: number;
  statusReportSeconds?: number;
  conditionCheckSeconds?: number;
  /** LED frames per second when the host has an LED; 0 turns the frame timer off. */
  ledFps?: number;
  requestTimeoutMs?: number;
  /**
   * HTTP version to the API server: "auto" (default) offers h2 and falls back to HTTP/1.1 when the
   * server (or a proxy in front of it) does not speak it; "h2" or "http/1.1" insist.
   */
  http?: HttpVersion;
  /** Ask for protobuf where only the status of a write matters (default true; the bench turns it off to compare). */
  protobufEchoes?: boolean;
  /** Serve the kubelet API (HTTPS) with this serving certificate, where the host can listen. */
  kubeletApi?: KubeletApiConfig;
  /** Bytes per container log ring (the current and the previous instance each); default 4 KiB. */
  podLogBytes?: number;
  /** Watch the settings ConfigMaps (default true). */
  settings?: boolean;
  /**
   * Watch and run the pods bound to this node (default true). false: capacity.pods 0, so the
   * scheduler places none here, and no pods watch (with settings false and no kubeletApi, the
   * heartbeat alone: Node, Lease and the node watch).
   */
  pods?: boolean;
}

export class ConfigError extends Error {
  problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration: ${problems.join("; ")}`);
    this.problems = problems;
  }
}

/** Every problem with the options, in words a user can act on; empty when they are fine. */
export function configProblems(options: KubeletOptions): string[] {
  const problems: string[] = [];
  const name = nodeNameProblem(options.nodeName);
  if (name) problems.push(name);
  const host = serverHostProblem(options.server?.host);
  if (host) problems.push(host);
  const port = portProblem(options.server?.port);
  if (port) problems.push(port);
  if (options.tls && options.tls.verify && !options.tls.ca) problems.push("TLS verification is on but no cluster CA was given");
  if (options.tls && !options.tls.serverName) problems.push("TLS needs a server name to verify the API server's certificate");
  const lease = options.leaseDurationSeconds ?? DEFAULTS.leaseDurationSeconds;
  if (!(Number.isFinite(lease) && lease >= 4)) problems.push(`lease duration ${lease} s is too short (at least 4 s)`);
  return problems;
}
