// The slice of @agoric/xsnap's API the XS driver uses (the package ships JSDoc, not declarations).
declare module "@agoric/xsnap" {
  export interface MeterUsage {
    compute: number | null;
    allocate: number | null;
    /** Slots in use at the end of the delivery. */
    currentHeapCount: number | null;
  }
  export interface XsnapWorker {
    evaluate(code: string): Promise<{ meterUsage: MeterUsage }>;
    /** Calls the worker's globalThis.handleCommand with the message (UTF-8); its ArrayBuffer result is the reply. */
    issueStringCommand(message: string): Promise<{ reply: string; meterUsage: MeterUsage }>;
    close(): Promise<void>;
    /** Writes a snapshot of the machine (after a full collection: the live slots and chunks, the key and name tables). */
    makeSnapshotStream(description?: string): AsyncIterable<Uint8Array>;
    /** Kills the worker process at once. */
    terminate(): Promise<void>;
  }
  export function xsnap(options: Record<string, unknown>): Promise<XsnapWorker>;
}
