// Just enough of the Kubernetes protobuf encoding to read a Status: a response the agent drains
// (a renewal's echo) may come as protobuf — about half the bytes of JSON — and when it is an error,
// its message still has to reach the log line. Format: the magic "k8s\0", then a runtime.Unknown
// {1: typeMeta, 2: raw, 3: contentEncoding, 4: contentType}; raw is the meta/v1 Status
// {1: metadata, 2: status, 3: message, 4: reason, 5: details, 6: code}.

export const PROTOBUF = "application/vnd.kubernetes.protobuf";

export interface StatusFields {
  kind: "Status";
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
}

interface Field {
  number: number;
  /** A varint's value, or the bounds of a length-delimited field. */
  value: number;
  start: number;
  end: number;
}

/** The fields of one message, shallow; undefined when the bytes are not a valid message. */
function fields(bytes: Uint8Array, start: number, end: number): Field[] | undefined {
  const out: Field[] = [];
  let at = start;
  const varint = (): number | undefined => {
    let value = 0;
    for (let shift = 0; shift < 35 && at < end; shift += 7) {
      const b = bytes[at++];
      value += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) return value;
    }
    return undefined;
  };
  while (at < end) {
    const key = varint();
    if (key === undefined) return undefined;
    const number = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) {
      const value = varint();
      if (value === undefined) return undefined;
      out.push({ number, value, start: at, end: at });
    } else if (wire === 2) {
      const length = varint();
      if (length === undefined || at + length > end) return undefined;
      out.push({ number, value: length, start: at, end: at + length });
      at += length;
    } else if (wire === 5) at += 4;
    else if (wire === 1) at += 8;
    else return undefined;
  }
  return at === end ? out : undefined;
}

function text(bytes: Uint8Array, f: Field | undefined, decode: (b: Uint8Array) => string): string | undefined {
  return f ? decode(bytes.subarray(f.start, f.end)) : undefined;
}

/** A Status from a protobuf body; undefined when the body is something else. */
export function protobufStatus(body: Uint8Array, decode: (b: Uint8Array) => string): StatusFields | undefined {
  if (body.length < 4 || body[0] !== 0x6b || body[1] !== 0x38 || body[2] !== 0x73 || body[3] !== 0) return undefined;
  const unknown = fields(body, 4, body.length);
  const typeMeta = unknown?.find((f) => f.number === 1);
  const raw = unknown?.find((f) => f.number === 2);
  if (!typeMeta || !raw) return undefined;
  const kind = text(body, fields(body, typeMeta.start, typeMeta.end)?.find((f) => f.number === 2), decode);
  if (kind !== "Status") return undefined;
  const status = fields(body, raw.start, raw.end);
  if (!status) return undefined;
  const get = (n: number) => status.find((f) => f.number === n);
  return { kind: "Status", status: text(body, get(2), decode), message: text(body, get(3), decode), reason: text(body, get(4), decode), code: get(6)?.value };
}
