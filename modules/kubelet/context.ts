// What the kubelet shares with its reconcilers. They never talk to each other; they read this.
import type { ApiClient } from "../api/client";
import type { Host, LogLevel } from "../host";
import type { WallClock } from "../time/clock";

export interface AgentOptions {
  leaseDurationSeconds: number;
  statusReportSeconds: number;
  conditionCheckSeconds: number;
}

export interface AgentContext {
  host: Host;
  api: ApiClient;
  clock: WallClock;
  options: AgentOptions;
  nodeName: string;
  /** metadata.uid of the registered Node ("" until registered). */
  nodeUid: string;
  log(level: LogLevel, message: string): void;
  /** Records a failed step, logs it once (not every retry); returns true for an auth rejection. */
  failure(what: string, err: unknown): boolean;
  /** Records that a step works (again). */
  success(what: string): void;
}
