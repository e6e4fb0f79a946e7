// What the composition root shares with its reconcilers. They never talk to each other; they read
// this, and the kubelet wires what one's outcome means for another.
import type { ApiClient } from "../api/client";
import type { Host, LogLevel } from "../host";
import type { WallClock } from "../time/clock";
import type { FailureKind } from "../util/retry";

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
  /** metadata.uid of the registered Node ("" until registered); the node reconciler sets it. */
  nodeUid: string;
  log(level: LogLevel, message: string): void;
  /** Records a failed step, logs it once (not every retry); returns the kind, which picks the retry delay. */
  failure(what: string, err: unknown): FailureKind;
  /** Records that a step works (again). */
  success(what: string): void;
  /** The Lease's last renewal failed (the watches then wait for its recovery: see api/watch.ts). */
  unreachable?(): boolean;
}
