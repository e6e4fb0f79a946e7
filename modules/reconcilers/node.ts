// Owns the Node object: registers it (POST), or adopts the one that exists (409: a reboot, or made by
// hand) and brings it in line (picokubelet's B5); knows its uid; after an outage reads back what the
// node lifecycle controller wrote; deletes it on decommission. The conditions it sends or reads go
// through the status port the kubelet hands it, never through another reconciler.
import { ApiError, describeError, metadataFromPrefix, toApiError } from "../api/client";
import { addressesFor, labelsPatch, nodeBody, type Address } from "../k8s/bodies";
import type { WireCondition } from "../k8s/conditions";
import type { NodeIdentity } from "../k8s/identity";
import { MERGE_PATCH, paths } from "../k8s/paths";
import type { AgentContext } from "./context";
import type { StatusExtras } from "./status";

/** What the node reconciler needs of the node's status (the status reconciler provides it). */
export interface NodeStatusPort {
  /** The conditions as they stand now, evaluated afresh, as they go on the wire. */
  conditions(): WireCondition[];
  annotations(): Record<string, string>;
  /** The conditions and this address went out with the Node itself: nothing is owed. */
  sentWithNode(address: string): void;
  /** What the server holds (adoption, after an outage): transition times survive a reboot. */
  seed(conditions: unknown): void;
  /** A push is owed, carrying these status fields. */
  owe(why: string, extras: StatusExtras): void;
}

export class NodeReconciler {
  #ctx: AgentContext;
  #identity: NodeIdentity;
  #status: NodeStatusPort;

  /** The Node we adopted carries another boot's bootID: the board was rebooted. */
  onRebooted?: (bootId: string) => void;
  /** We created the Node (201): its first conditions went out with it. */
  onRegistered?: () => void;

  constructor(ctx: AgentContext, identity: NodeIdentity, status: NodeStatusPort) {
    this.#ctx = ctx;
    this.#identity = identity;
    this.#status = status;
  }

  /** POST the Node; on 409 adopt the existing one. Throws what the caller's retry should see. */
  async register(): Promise<void> {
    const { api, host, nodeName, log } = this.#ctx;
    const address = host.network().address;
    const addresses = addressesFor(nodeName, address);
    const body = nodeBody(this.#identity, addresses, this.#status.conditions(), this.#status.annotations());
    const res = await api.call("POST", paths.nodes, { body, keepBody: 16384 });
    if (res.status === 201) {
      this.#ctx.nodeUid = metadataFromPrefix(res, (b) => host.utf8Decode(b)).uid ?? "";
      log("info", `Node ${nodeName} registered`);
      // Conditions went out with the Node; the status loop owes nothing yet.
      this.#status.sentWithNode(address);
      this.onRegistered?.();
      if (!this.#ctx.nodeUid) await this.#readUid();
      return;
    }
    if (res.status !== 409) throw toApiError("POST", paths.nodes, res);
    await this.#adopt(addresses);
  }

  async #readUid(): Promise<void> {
    const path = paths.node(this.#ctx.nodeName);
    const got = await this.#ctx.api.call("GET", path, { keepBody: 4096 });
    const uid = got.status === 200 ? metadataFromPrefix(got, (b) => this.#ctx.host.utf8Decode(b)).uid : undefined;
    if (!uid) throw toApiError("GET", path, got);
    this.#ctx.nodeUid = uid;
  }

  async #adopt(addresses: Address[]): Promise<void> {
    const { api, host, nodeName, log } = this.#ctx;
    const path = paths.node(nodeName);
    const got = await api.call("GET", path, { keepBody: 65536 });
    const uid = got.status === 200 ? metadataFromPrefix(got, (b) => host.utf8Decode(b)).uid : undefined;
    if (!uid) throw toApiError("GET", path, got);
    this.#ctx.nodeUid = uid;
    // A Node too big to keep whole (huge managedFields) cannot be compared: then every label and
    // condition is simply sent again.
    const node = got.json ?? { metadata: {} };
    this.#status.seed(node.status?.conditions);
    const stored = node.status?.nodeInfo?.bootID;
    if (stored && stored !== this.#identity.nodeInfo.bootID) this.onRebooted?.(this.#identity.nodeInfo.bootID);
    const labels = node.metadata.labels ?? {};
    const wrong: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.#identity.labels)) if (labels[k] !== v) wrong[k] = v;
    if (Object.keys(wrong).length) {
      const res = await api.call("PATCH", path, { body: labelsPatch(wrong), contentType: MERGE_PATCH, keepBody: 2048 });
      if (res.status !== 200) throw toApiError("PATCH", path, res);
    }
    // Status fields the agent owns always go out once after a 409: a new bootID, perhaps a new IP.
    this.#status.owe("reconciling the existing Node", {
      addresses,
      nodeInfo: this.#identity.nodeInfo,
      capacity: this.#identity.capacity,
      daemonEndpoints: this.#identity.daemonEndpoints,
    });
    log("info", `Node ${nodeName} already existed: adopted it (uid ${this.#ctx.nodeUid})`);
  }

  /** After an outage: adopt what the server now says (the controller's Unknown) before telling it the truth. */
  async resync(): Promise<void> {
    const res = await this.#ctx.api.call("GET", paths.node(this.#ctx.nodeName), { keepBody: 65536 });
    if (res.status === 200 && res.json) this.#status.seed(res.json.status?.conditions);
  }

  /** Deletes the Node (its Lease goes with it through the ownerReference); logs, never throws. */
  async decommission(): Promise<void> {
    const { api, nodeName, log } = this.#ctx;
    const path = paths.node(nodeName);
    try {
      const res = await api.call("DELETE", path, { keepBody: 2048 });
      if (res.status !== 200 && res.status !== 202 && res.status !== 404) throw toApiError("DELETE", path, res);
      log("info", `Node ${nodeName} deleted (decommissioned); its Lease goes with it`);
    } catch (err) {
      const hint =
        err instanceof ApiError && err.status === 403
          ? ` — a system:node identity may not delete its own Node; run "kubectl delete node ${nodeName}", or use the ServiceAccount identity from deploy/, which may`
          : "";
      log("error", `decommission failed: ${describeError(err)}${hint}`);
    }
  }
}
