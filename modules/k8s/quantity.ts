// Kubernetes resource quantities (apimachinery's resource.Quantity), as far as a node reads them:
// memory requests and limits ("64Mi", "1G", "128974848", "129e6", "0.5Gi").
const BINARY: Readonly<Record<string, number>> = Object.freeze({ Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 });
const DECIMAL: Readonly<Record<string, number>> = Object.freeze({ m: 1e-3, "": 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 });

/** The quantity as a number (bytes for memory); undefined when it is not a quantity. */
export function parseQuantity(text: string): number | undefined {
  const m = /^([+-]?[0-9]+(?:\.[0-9]*)?|[+-]?\.[0-9]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E))?$/.exec(text.trim());
  if (!m) return undefined;
  const base = Number(m[1]);
  if (m[2]) return base * 10 ** Number(m[2].slice(1));
  const suffix = m[3] ?? "";
  const factor = BINARY[suffix] ?? DECIMAL[suffix];
  return factor === undefined ? undefined : base * factor;
}

/** Bytes as the kubelet prints them in admission messages (plain integers). */
export function formatBytes(n: number): string {
  return String(Math.ceil(n));
}
