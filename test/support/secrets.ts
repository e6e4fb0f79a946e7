// The suite's secret scanner: tokens and keys the tests use are registered here (the shared control
// plane registers its node tokens, ServiceAccount tokens and the keys it mints or issues), and every
// line any host logs during the whole run (hosts/log-tap.ts) is checked for them — whole, or any 32
// characters of a key's base64 or hex. The root hook fails the run when one leaked.
import { tapLogs } from "../../hosts/log-tap";

const WINDOW = 32;
const whole = new Map<string, string>();
const windows = new Map<string, string>();
export const leaks: string[] = [];

/** A secret to look for: a token (whole) or key bytes (as base64 and hex, any 32 characters of them). */
export function registerSecret(secret: string | Uint8Array, what: string): void {
  if (typeof secret === "string") {
    if (secret.length >= 5) whole.set(secret, what);
    return;
  }
  const b = Buffer.from(secret);
  for (const text of [b.toString("base64"), b.toString("hex")]) {
    for (let i = 0; i + WINDOW <= text.length; i += 1) windows.set(text.slice(i, i + WINDOW), what);
  }
}

/** Which registered secret, if any, a line holds. */
export function secretIn(line: string): string | undefined {
  for (const [secret, what] of whole) if (line.includes(secret)) return what;
  if (line.length >= WINDOW && windows.size) {
    for (let i = 0; i + WINDOW <= line.length; i++) {
      const what = windows.get(line.slice(i, i + WINDOW));
      if (what) return what;
    }
  }
  return undefined;
}

export const linesScanned = { count: 0 };
/** How many secrets are registered (tokens, keys). */
export const secretCount = () => whole.size + new Set(windows.values()).size;

tapLogs((level, message) => {
  linesScanned.count++;
  const what = secretIn(message);
  if (what) leaks.push(`${what} in a ${level} line of ${message.length} characters`); // not the line: it holds the secret
});
