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
    close(): Promise<void>;
  }
  export function xsnap(options: Record<string, unknown>): Promise<XsnapWorker>;
}
