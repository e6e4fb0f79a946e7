// The Node.js host says what it runs on; only when told does it pose as the board.
import assert from "node:assert/strict";
import { arch } from "node:os";
import { ESP32S3_BOARD } from "../../hosts/esp32s3/board";
import { createNodeHost } from "../../hosts/node/host";
import { Kubelet } from "../../modules/kubelet/kubelet";

const server = { host: "127.0.0.1", port: 6443 };

describe("the Node.js host's board facts", () => {
  it("registers as the machine it is, not as an ESP32-S3", () => {
    const host = createNodeHost({ log: () => undefined });
    const expected = arch() === "x64" ? "amd64" : arch() === "arm64" ? "arm64" : host.board.arch;
    assert.equal(host.board.arch, expected);
    assert.equal(host.board.os, process.platform === "win32" ? "windows" : process.platform);
    assert.equal(host.board.instanceType, "nodejs");
    const kubelet = new Kubelet({ nodeName: "pc-1", server, ledFps: 0 }, host);
    assert.equal(kubelet.identity.labels["kubernetes.io/arch"], expected);
    assert.equal(kubelet.identity.nodeInfo.architecture, expected);
    assert.equal(kubelet.identity.nodeInfo.osImage, `Node.js ${process.version}`);
    assert.equal(kubelet.identity.capacity.cpu, String(host.board.cpu));
    assert.notEqual(kubelet.identity.labels["node.kubernetes.io/instance-type"], "esp32-s3-r8");
  });

  it("poses as the board when told, and the advertised port is the host's", () => {
    const host = createNodeHost({ log: () => undefined, board: { ...ESP32S3_BOARD, kubeletPort: 20250 } });
    const kubelet = new Kubelet({ nodeName: "board-1", server, ledFps: 0 }, host);
    assert.equal(kubelet.identity.labels["kubernetes.io/arch"], "xtensa-lx7");
    assert.deepEqual(kubelet.identity.daemonEndpoints, { kubeletEndpoint: { Port: 20250 } });
  });
});
