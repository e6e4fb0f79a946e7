// A kubelet on a virtual host in front of the scripted API: the setup every scenario shares.
import { Kubelet, type KubeletOptions } from "../../modules/kubelet/kubelet";
import type { GpioPort, HeapFigures, NetworkFacts, XsHeapSample } from "../../modules/host";
import { FakeApi } from "../../hosts/virtual/scripted-api";
import { VirtualTime, createVirtualHost, type VirtualHost } from "../../hosts/virtual/host";

export interface Rig {
  time: VirtualTime;
  api: FakeApi;
  host: VirtualHost;
  kubelet: Kubelet;
  heap: HeapFigures;
  net: Partial<NetworkFacts>;
  offline: boolean;
}

let serverMeter: (<T>(work: () => T) => T) | undefined;

/** Inside XS: how the scripted server's work is kept apart from the agent's in the compute meter. */
export function meterServer(meter: <T>(work: () => T) => T): void {
  serverMeter = meter;
}

/** Work of the test rig itself (reading the wire as hex …): kept out of the agent's meter too. */
export function rigWork<T>(work: () => T): T {
  return serverMeter ? serverMeter(work) : work();
}

/**
 * The kubelet as it runs against a real API server: over HTTP/2 (prior knowledge: the scripted
 * host has no TLS to negotiate it), unless overrides.http says "http/1.1".
 */
export function rig(overrides: Partial<KubeletOptions> & RigHostOptions = {}, setup?: (r: Omit<Rig, "kubelet" | "host">) => void): Rig {
  const time = new VirtualTime(serverMeter);
  const api = new FakeApi(time);
  const partial = { time, api, heap: { free: 200 * 1024, total: 256 * 1024 }, net: {} as Partial<NetworkFacts>, offline: false };
  setup?.(partial);
  const host = createVirtualHost({
    time,
    handler: api.handle,
    heap: () => partial.heap,
    network: () => partial.net,
    offline: () => partial.offline,
    http2: overrides.http !== "http/1.1",
    serverMeter,
    record: overrides.record,
    history: overrides.history,
    gpio: overrides.gpio,
    store: overrides.store,
    xsHeap: overrides.xsHeap,
  });
  const kubelet = new Kubelet(
    { nodeName: "board-1", server: { host: "192.0.2.1", port: 6443 }, token: "t0ken", ledFps: 0, http: "h2", ...kubeletOptions(overrides) },
    host,
  );
  const r = partial as Rig;
  r.host = host;
  r.kubelet = kubelet;
  return r;
}

/** What rig passes to the virtual host, not to the kubelet. */
type RigHostOptions = { record?: boolean; history?: number; gpio?: GpioPort; store?: Map<string, Uint8Array>; xsHeap?: () => XsHeapSample | undefined };

function kubeletOptions(o: Partial<KubeletOptions> & RigHostOptions): Partial<KubeletOptions> {
  const { record: _record, history: _history, gpio: _gpio, store: _store, xsHeap: _xsHeap, ...rest } = o;
  return rest;
}

/** Requests as "METHOD path" lines (either HTTP version). */
export const lines = (host: VirtualHost) => host.requests.map((r) => r.slice(0, r.indexOf(" HTTP/")));
