// The suite's secret scanner (test/support/secrets.ts) itself: a registered token or any 32
// characters of a registered key, logged through either host, is caught — so "no secret in any log
// line of the whole run" (the root hook) is a finding, not an absence of looking.
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createNodeHost } from "../../hosts/node/host";
import { VirtualTime, createVirtualHost } from "../../hosts/virtual/host";
import { leaks, registerSecret, secretIn } from "../support/secrets";

describe("the secret scanner of the test suite", () => {
  it("catches a registered token or a slice of a registered key in any host's log line", () => {
    const token = `tok-${randomBytes(12).toString("hex")}`;
    const key = new Uint8Array(generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "der" }));
    registerSecret(token, "a test token");
    registerSecret(key, "a test key");
    const before = leaks.length;
    const node = createNodeHost({ log: () => undefined });
    node.log("info", `nothing secret here: ${randomBytes(20).toString("base64")}`);
    assert.equal(leaks.length, before);
    node.log("warn", `Authorization: Bearer ${token}`);
    const virtual = createVirtualHost({ time: new VirtualTime(), handler: () => ({ hang: true }) });
    virtual.log("debug", `key: ${Buffer.from(key).toString("base64").slice(40, 80)}`);
    virtual.log("debug", `key: ${Buffer.from(key).toString("hex").slice(10, 60)}`);
    const found = leaks.splice(before);
    assert.equal(found.length, 3, found.join("\n"));
    assert.match(found[0], /^a test token in a warn line/);
    assert.match(found[1], /^a test key in a debug line/);
    assert.equal(secretIn("a line without either"), undefined);
  });
});
