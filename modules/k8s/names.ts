// Validation of what the user names, with errors that say what is wrong (picokubelet's B8).

/**
 * A Node name must be a DNS-1123 subdomain; it is also the value of the kubernetes.io/hostname label
 * and the Lease name, and label values stop at 63 characters — so 63 is the real limit.
 * Returns an error message, or undefined when the name is valid.
 */
export function nodeNameProblem(name: unknown): string | undefined {
  if (typeof name !== "string" || name.length === 0) return "node name is empty";
  if (name.length > 63) return `node name "${name.slice(0, 20)}…" is ${name.length} characters long; the limit is 63`;
  if (name !== name.toLowerCase()) return `node name "${name}" has upper-case letters; use lower case`;
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name)) {
    return `node name "${name}" is not a DNS-1123 subdomain: use a-z, 0-9, "-" and ".", starting and ending with a letter or digit`;
  }
  return undefined;
}

/** An API server host: a DNS name, an IPv4 literal or a bracketless IPv6 literal. */
export function serverHostProblem(host: unknown): string | undefined {
  if (typeof host !== "string" || host.length === 0) return "API server host is empty";
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) {
    return host.split(".").every((o) => Number(o) <= 255) ? undefined : `API server address "${host}" is not a valid IPv4 address`;
  }
  if (host.includes(":")) return /^[0-9a-fA-F:.]+$/.test(host) ? undefined : `API server address "${host}" is not a valid IPv6 address`;
  if (host.length > 253) return `API server host "${host.slice(0, 20)}…" is ${host.length} characters long; the limit is 253`;
  if (!/^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*$/.test(host)) {
    return `API server host "${host}" is not a valid DNS name or IP address`;
  }
  return undefined;
}

export function portProblem(port: unknown): string | undefined {
  return Number.isInteger(port) && (port as number) > 0 && (port as number) < 65536 ? undefined : `API server port "${String(port)}" is not a number from 1 to 65535`;
}

/**
 * A name in an object the API server sent, checked as the API server checks it when the object is
 * made: a DNS-1123 subdomain of at most 253 characters, or (limit 63: a namespace) a DNS-1123 label.
 * A name it would never have stored means a broken or hostile answer, and the agent must not build a
 * request path from it (a 70 KB name made a header block the server's connection limit refused, a
 * "/" another path). The name is quoted and cut, so the message stays one short line.
 */
export function objectNameProblem(what: string, name: unknown, limit: 63 | 253 = 253): string | undefined {
  if (typeof name !== "string" || name.length === 0) return `${what} is empty`;
  if (name.length > limit) return `${what} ${JSON.stringify(name.slice(0, 20))}… is ${name.length} characters long; the limit is ${limit}`;
  const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  const subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
  if (!(limit === 63 ? label : subdomain).test(name)) return `${what} ${JSON.stringify(name.slice(0, 40))} is not a DNS-1123 ${limit === 63 ? "label" : "subdomain"}`;
  return undefined;
}
