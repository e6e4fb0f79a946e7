// Versions the agent reports. kubeletVersion follows the Kubernetes minor it is tested against.
export const AGENT_VERSION = "0.1.0";
export const KUBELET_VERSION = "v1.33.13-xs-kubelet";
