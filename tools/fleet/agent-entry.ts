// What the fleet takes from the agent's code, bundled by agents.ts (see there for why a bundle).
export { createNodeHost } from "../../hosts/node/host";
export { Kubelet } from "../../modules/kubelet/kubelet";
export { createVirtualHost, VirtualTime } from "../../hosts/virtual/host";
export { FakeApi } from "../../hosts/virtual/scripted-api";
