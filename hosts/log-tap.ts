// Every line a Node.js or virtual host logs also reaches the taps registered here: how the test suite
// scans all of its log output for the secrets it used (test/support/secrets.ts). Not part of the
// firmware; a tap sees the line before the host's own log does and cannot change it.
import type { LogLevel } from "../modules/host";

type Tap = (level: LogLevel, message: string) => void;

const taps = new Set<Tap>();

/** Registers a tap; returns what removes it. */
export function tapLogs(tap: Tap): () => void {
  taps.add(tap);
  return () => void taps.delete(tap);
}

/** The host's log, with the taps in front. */
export function tapped(log: Tap): Tap {
  return (level, message) => {
    for (const t of taps) t(level, message);
    log(level, message);
  };
}
