// `npm run provision -- --kubeconfig FILE --node NAME [--cert | --token] [options]`
//
// Run on your PC with a kubeconfig that may create RBAC objects and approve CSRs (a cluster admin's).
// It gives the board an identity and writes what the firmware loads:
//   --cert (default)  an RSA client certificate for system:node:<name> (group system:nodes), issued
//                     through the CSR API (signer kubernetes.io/kube-apiserver-client-kubelet) and
//                     approved here; the Node authorizer and NodeRestriction then apply, as for a
//                     real kubelet. RSA because the board's TLS stack can only sign with RSA keys.
//   --token           a ServiceAccount xs-kubelet/<name> bound to the least-privilege roles in
//                     deploy/, and a token for it from the TokenRequest API.
//   --approve-serving approves the node's pending kubelet-serving CSRs (the board renews its serving
//                     certificate itself; clusters do not approve those automatically) and exits.
//   --serving         also (with either) an RSA kubelet serving certificate for the node's kubelet
//                     API, SANs from --serving-address, through the CSR API (signer
//                     kubernetes.io/kubelet-serving), approved here.
// Output (default provisioned/<name>/, git-ignored; it holds secrets):
//   modpreferences.json   preferences for the simulator (copy to /tmp/modpreferences.json)
//   nvs.csv + *.der       an NVS partition description for the board (see README.txt there)
import "reflect-metadata";
import { generateKeyPairSync, randomBytes, webcrypto, X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import * as x509 from "@peculiar/x509";
import { parseAllDocuments } from "yaml";
import { renderNodeRbac, renderRotationRbac, renderSettingsRbac } from "../../deploy/render";
import { nodeNameProblem } from "../../modules/k8s/names";
import { clusterRequest, fromKubeconfig, parseServer, type ClusterConnection, type ClusterResponse } from "../kube/connection";

export const PREF_DOMAIN = "xs-kubelet";
const SA_NAMESPACE = "xs-kubelet";

interface Api {
  call(method: string, path: string, body?: unknown, contentType?: string): Promise<ClusterResponse>;
}

export function adminApi(conn: ClusterConnection): Api {
  return { call: (method, path, body, contentType) => clusterRequest(conn, method, path, { body, contentType }) };
}

function must(res: ClusterResponse, what: string, ok: number[] = [200, 201]): any {
  if (!ok.includes(res.status)) throw new Error(`${what}: HTTP ${res.status}: ${res.json?.message ?? res.text.slice(0, 200)}`);
  return res.json;
}

const RESOURCE_PATHS: Record<string, (name: string, ns?: string) => string> = {
  Namespace: (n) => `/api/v1/namespaces/${n}`,
  ServiceAccount: (n, ns) => `/api/v1/namespaces/${ns}/serviceaccounts/${n}`,
  ClusterRole: (n) => `/apis/rbac.authorization.k8s.io/v1/clusterroles/${n}`,
  ClusterRoleBinding: (n) => `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${n}`,
  Role: (n, ns) => `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles/${n}`,
  RoleBinding: (n, ns) => `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings/${n}`,
  ValidatingAdmissionPolicy: (n) => `/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/${n}`,
  ValidatingAdmissionPolicyBinding: (n) => `/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/${n}`,
};

/** Server-side apply of deploy/xs-kubelet.yaml and deploy/node-rbac.yaml for one node. */
export async function applyNodeRbac(api: Api, node: string, yaml = renderNodeRbac(node)): Promise<void> {
  for (const doc of parseAllDocuments(yaml)) {
    const obj = doc.toJS();
    if (!obj) continue;
    const path = RESOURCE_PATHS[obj.kind];
    if (!path) throw new Error(`deploy/: no API path known for kind ${obj.kind}`);
    const res = await api.call("PATCH", `${path(obj.metadata.name, obj.metadata.namespace)}?fieldManager=xs-kubelet-provision&force=true`, obj, "application/apply-patch+yaml");
    must(res, `applying ${obj.kind} ${obj.metadata.name}`);
  }
}

export async function serviceAccountToken(api: Api, node: string, seconds: number): Promise<string> {
  await applyNodeRbac(api, node);
  const res = await api.call("POST", `/api/v1/namespaces/${SA_NAMESPACE}/serviceaccounts/${node}/token`, {
    apiVersion: "authentication.k8s.io/v1",
    kind: "TokenRequest",
    spec: { expirationSeconds: seconds },
  });
  return must(res, "requesting a ServiceAccount token").status.token;
}

export interface IssuedCertificate {
  certificate: Uint8Array;
  /** PKCS#8 DER */
  key: Uint8Array;
  csrName: string;
}

interface CsrSpec {
  /** Name prefix of the CertificateSigningRequest object. */
  prefix: string;
  signerName: string;
  usages: string[];
  extensions?: x509.Extension[];
}

/**
 * The CSR flow both certificates share: an RSA-2048 key (the board's TLS stack signs only with RSA),
 * a PKCS#10 request for system:node:<name> in system:nodes, a CertificateSigningRequest submitted and
 * approved as the caller (an admin), and the certificate the controller-manager's signer issues.
 */
async function issueThroughCsr(api: Api, node: string, spec: CsrSpec, log: (l: string) => void): Promise<IssuedCertificate> {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const alg = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  const keys = {
    privateKey: await webcrypto.subtle.importKey("pkcs8", privateKey.export({ type: "pkcs8", format: "der" }), alg, true, ["sign"]),
    publicKey: await webcrypto.subtle.importKey("spki", publicKey.export({ type: "spki", format: "der" }), alg, true, ["verify"]),
  };
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: `CN=system:node:${node}, O=system:nodes`, keys, signingAlgorithm: alg, extensions: spec.extensions },
    webcrypto as any,
  );
  const csrName = `${spec.prefix}-${node}-${Date.now().toString(36)}${randomBytes(2).toString("hex")}`;
  must(
    await api.call("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", {
      apiVersion: "certificates.k8s.io/v1",
      kind: "CertificateSigningRequest",
      metadata: { name: csrName, labels: { "app.kubernetes.io/managed-by": "xs-kubelet-provision" } },
      spec: {
        request: Buffer.from(csr.toString("pem")).toString("base64"),
        signerName: spec.signerName,
        usages: spec.usages,
        expirationSeconds: 365 * 24 * 3600,
      },
    }),
    "creating the CertificateSigningRequest",
  );
  log(`CSR ${csrName} (${spec.signerName}) created; approving it`);
  // kube-controller-manager's CSR approver may approve a node client CSR of an admin at the same
  // moment (it auto-approves kube-apiserver-client-kubelet requests of identities allowed to
  // create certificatesigningrequests/nodeclient): a 409 means read again, and an approval there is as good.
  for (let attempt = 1; ; attempt++) {
    const current = must(await api.call("GET", `/apis/certificates.k8s.io/v1/certificatesigningrequests/${csrName}`), "reading the CSR");
    const conditions: any[] = current.status?.conditions ?? [];
    if (conditions.some((c) => c.type === "Approved" && c.status === "True")) break;
    current.status = {
      ...current.status,
      conditions: [...conditions, { type: "Approved", status: "True", reason: "XsKubeletProvision", message: `approved by npm run provision for node ${node}` }],
    };
    const res = await api.call("PUT", `/apis/certificates.k8s.io/v1/certificatesigningrequests/${csrName}/approval`, current);
    if (res.status === 409 && attempt < 5) continue;
    must(res, "approving the CSR");
    break;
  }
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const got = must(await api.call("GET", `/apis/certificates.k8s.io/v1/certificatesigningrequests/${csrName}`), "reading the CSR");
    const failed = (got.status?.conditions ?? []).find((c: any) => c.type === "Failed" || c.type === "Denied");
    if (failed) throw new Error(`CSR ${csrName} ${failed.type}: ${failed.reason ?? ""} ${failed.message ?? ""}`.trim());
    if (got.status?.certificate) {
      const pem = Buffer.from(got.status.certificate, "base64").toString("latin1");
      const cert = new X509Certificate(pem);
      return { certificate: new Uint8Array(cert.raw), key: new Uint8Array(privateKey.export({ type: "pkcs8", format: "der" })), csrName };
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`CSR ${csrName} was approved but not signed within 60 s: is the cluster's CSR signing controller running (kube-controller-manager --cluster-signing-cert-file)?`);
}

/** An RSA key and a certificate for system:node:<name> from the CSR API, approved by the caller. */
export async function nodeClientCertificate(api: Api, node: string, log: (l: string) => void = () => undefined): Promise<IssuedCertificate> {
  return issueThroughCsr(api, node, { prefix: "xs-kubelet", signerName: "kubernetes.io/kube-apiserver-client-kubelet", usages: ["digital signature", "key encipherment", "client auth"] }, log);
}

/**
 * A kubelet serving certificate for the node's kubelet API (what kube-apiserver
 * --kubelet-certificate-authority and metrics-server verify): an RSA key and a certificate for
 * system:node:<name> (O=system:nodes) with the addresses as SANs — IPs as IP SANs, names as DNS SANs
 * — from the signer kubernetes.io/kubelet-serving (the controller-manager signs it with the cluster
 * CA), requested and approved as the admin of conn. Nobody approves these automatically: on a real
 * cluster an admin (or an approver like kubelet-csr-approver) must, as here.
 */
export async function nodeServingCertificate(
  conn: ClusterConnection | Api,
  node: string,
  options: { addresses: string[]; log?: (l: string) => void },
): Promise<IssuedCertificate> {
  const problem = nodeNameProblem(node);
  if (problem) throw new Error(problem);
  const addresses = [...new Set(options.addresses.map((a) => a.trim().replace(/^\[|\]$/g, "")).filter(Boolean))];
  if (!addresses.length) throw new Error("a kubelet serving certificate needs at least one address (an IP or a DNS name) for its SANs");
  const names = addresses.map((value): x509.JsonGeneralName => ({ type: isIP(value) ? "ip" : "dns", value }));
  const api = "call" in conn ? conn : adminApi(conn);
  return issueThroughCsr(
    api,
    node,
    {
      prefix: "xs-kubelet-serving",
      signerName: "kubernetes.io/kubelet-serving",
      usages: ["digital signature", "key encipherment", "server auth"],
      extensions: [new x509.SubjectAlternativeNameExtension(names)],
    },
    options.log ?? (() => undefined),
  );
}

/**
 * Approves the kubelet-serving CSRs the board `node` asked for and nobody has decided on: only those
 * made by system:node:<node> itself (spec.username), for CN=system:node:<node> in O=system:nodes, with
 * server-auth usages — what an approver like kubelet-csr-approver checks. Returns what it approved,
 * with the SANs each asks for.
 */
export async function approvePendingServing(api: Api, node: string, log: (l: string) => void = () => undefined): Promise<{ name: string; sans: string[] }[]> {
  const problem = nodeNameProblem(node);
  if (problem) throw new Error(problem);
  const list = must(await api.call("GET", "/apis/certificates.k8s.io/v1/certificatesigningrequests"), "listing CSRs");
  const approved: { name: string; sans: string[] }[] = [];
  for (const csr of list.items ?? []) {
    const name: string = csr.metadata?.name ?? "";
    if (csr.spec?.signerName !== "kubernetes.io/kubelet-serving" || csr.spec?.username !== `system:node:${node}`) continue;
    if ((csr.status?.conditions ?? []).length) continue; // approved, denied or failed already
    const request = new x509.Pkcs10CertificateRequest(Buffer.from(csr.spec.request, "base64").toString("latin1"));
    const usages: string[] = csr.spec.usages ?? [];
    if (request.subject !== `O=system:nodes, CN=system:node:${node}` || !usages.includes("server auth") || usages.some((u) => !["digital signature", "key encipherment", "server auth"].includes(u))) {
      log(`CSR ${name}: not a kubelet serving request for ${node} (subject "${request.subject}", usages ${usages.join(", ")}): left alone`);
      continue;
    }
    const san = request.getExtension("2.5.29.17") as x509.SubjectAlternativeNameExtension | null;
    const sans = san ? san.names.toJSON().map((n) => `${n.type === "ip" ? "IP" : "DNS"}:${n.value}`) : [];
    csr.status = { ...csr.status, conditions: [{ type: "Approved", status: "True", reason: "XsKubeletProvision", message: `approved by npm run provision -- --approve-serving for node ${node}` }] };
    must(await api.call("PUT", `/apis/certificates.k8s.io/v1/certificatesigningrequests/${name}/approval`, csr), `approving CSR ${name}`);
    log(`approved CSR ${name} (${sans.join(", ") || "no SANs"})`);
    approved.push({ name, sans });
  }
  return approved;
}

export interface Provisioned {
  node: string;
  host: string;
  port: number;
  serverName: string;
  ca: Uint8Array;
  token?: string;
  certificate?: IssuedCertificate;
  /** The kubelet serving certificate (nodeServingCertificate). */
  serving?: IssuedCertificate;
  wifi?: { ssid: string; password?: string };
}

/** The simulator's preferences file (Moddable's lin Preference format: buffers as "1,2,3"). */
export function simulatorPreferences(p: Provisioned): Record<string, Record<string, unknown>> {
  const buffer = (b: Uint8Array) => ({ buffer: Array.from(b).join(",") });
  const prefs: Record<string, unknown> = { node: p.node, server: p.host, port: p.port, serverName: p.serverName, ca: buffer(p.ca) };
  if (p.token) prefs.token = p.token;
  if (p.certificate) {
    prefs.clientCert = buffer(p.certificate.certificate);
    prefs.clientKey = buffer(p.certificate.key);
  }
  if (p.serving) {
    prefs.servingCert = buffer(p.serving.certificate);
    prefs.servingKey = buffer(p.serving.key);
  }
  if (p.wifi) {
    prefs.wifiSsid = p.wifi.ssid;
    if (p.wifi.password) prefs.wifiPass = p.wifi.password;
  }
  return { [PREF_DOMAIN]: prefs };
}

/** ESP-IDF nvs_partition_gen.py CSV: strings as NVS strings, the port as i32, DER files as blobs. */
export function nvsCsv(p: Provisioned): string {
  const rows = ["key,type,encoding,value", `${PREF_DOMAIN},namespace,,`, `node,data,string,${p.node}`, `server,data,string,${p.host}`, `port,data,i32,${p.port}`, `serverName,data,string,${p.serverName}`, "ca,file,binary,ca.der"];
  if (p.token) rows.push(`token,data,string,${p.token}`);
  if (p.certificate) rows.push("clientCert,file,binary,client.der", "clientKey,file,binary,client-key.der");
  if (p.serving) rows.push("servingCert,file,binary,serving.der", "servingKey,file,binary,serving-key.der");
  if (p.wifi) {
    rows.push(`wifiSsid,data,string,${p.wifi.ssid}`);
    if (p.wifi.password) rows.push(`wifiPass,data,string,${p.wifi.password}`);
  }
  for (const r of rows) if (/[\n"]/.test(r) || r.split(",").length > 4) throw new Error(`value not representable in an NVS CSV row: ${r.split(",")[0]}`);
  return `${rows.join("\n")}\n`;
}

export function writeOutputs(p: Provisioned, dir: string): string[] {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files: Record<string, string | Uint8Array> = {
    "ca.der": p.ca,
    "modpreferences.json": JSON.stringify(simulatorPreferences(p), null, 1),
    "nvs.csv": nvsCsv(p),
    "README.txt": `xs-kubelet provisioning for node ${p.node} (API server ${p.host}:${p.port}, certificate name ${p.serverName})
These files hold secrets: keep them off git and delete them once the board is flashed.

Simulator (mcsim):
  cp modpreferences.json /tmp/modpreferences.json

Board (ESP32-S3, ESP-IDF installed as Moddable's ESP32 guide says; the default NVS partition is 24 KB at 0x9000):
  python $IDF_PATH/components/nvs_flash/nvs_partition_generator/nvs_partition_gen.py generate nvs.csv nvs.bin 0x6000
  esptool.py --chip esp32s3 -p /dev/ttyACM0 write_flash 0x9000 nvs.bin
(Flash the firmware first with mcconfig; flashing the app does not erase NVS.)
`,
  };
  if (p.token) files.token = `${p.token}\n`;
  if (p.certificate) {
    files["client.der"] = p.certificate.certificate;
    files["client-key.der"] = p.certificate.key;
  }
  if (p.serving) {
    files["serving.der"] = p.serving.certificate;
    files["serving-key.der"] = p.serving.key;
  }
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data, { mode: 0o600 });
  return Object.keys(files);
}

const USAGE = `usage: npm run provision -- --kubeconfig FILE --node NAME [--cert | --token] [options]
  --cert                   RSA client certificate for system:node:NAME via the CSR API (default)
  --token                  ServiceAccount token bound to deploy/'s least-privilege roles
  --token-days N           token lifetime (default 365)
  --approve-serving        approve the node's pending kubelet-serving CSRs (its own renewals) and exit
  --serving                also a kubelet serving certificate (signer kubernetes.io/kubelet-serving) for
                           the node's kubelet API; needs --serving-address
  --serving-address ADDR   an IP or DNS name the API server and metrics-server reach the board at
                           (its InternalIP; repeatable): the certificate's SANs
  --server URL             the API server address as the board must use it (default: the kubeconfig's)
  --server-name NAME       name the board verifies in the server certificate (default: the server host)
  --wifi-ssid SSID --wifi-password-file FILE   Wi-Fi fallback for the board
  --out DIR                output directory (default provisioned/NAME)`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      kubeconfig: { type: "string" },
      node: { type: "string" },
      cert: { type: "boolean" },
      token: { type: "boolean" },
      "token-days": { type: "string", default: "365" },
      serving: { type: "boolean" },
      "approve-serving": { type: "boolean" },
      "serving-address": { type: "string", multiple: true },
      server: { type: "string" },
      "server-name": { type: "string" },
      "wifi-ssid": { type: "string" },
      "wifi-password-file": { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return void console.log(USAGE);
  const problems: string[] = [];
  if (!values.kubeconfig) problems.push("--kubeconfig is required");
  const nameProblem = nodeNameProblem(values.node);
  if (nameProblem) problems.push(values.node ? nameProblem : "--node is required");
  if (values.cert && values.token) problems.push("choose one of --cert and --token");
  const days = Number(values["token-days"]);
  if (!(days > 0)) problems.push(`--token-days must be a positive number, got "${values["token-days"]}"`);
  const servingAddresses = values["serving-address"] ?? [];
  if (values.serving && !servingAddresses.length) problems.push("--serving needs at least one --serving-address (the board's IP address or DNS name)");
  if (!values.serving && servingAddresses.length) problems.push("--serving-address needs --serving");
  if (problems.length) throw new Error(`${problems.join("; ")}\n\n${USAGE}`);

  const node = values.node!;
  const conn = fromKubeconfig(values.kubeconfig!);
  if (values["approve-serving"]) {
    const done = await approvePendingServing(adminApi(conn), node, (l) => console.log(l));
    if (!done.length) console.log(`no pending kubelet-serving CSR from system:node:${node}`);
    return;
  }
  if (!conn.caDer) throw new Error(`${values.kubeconfig}: the cluster has no certificate-authority; the board must verify the API server`);
  const api = adminApi(conn);
  const target = values.server ? parseServer(values.server) : { host: conn.host, port: conn.port };
  const p: Provisioned = { node, host: target.host, port: target.port, serverName: values["server-name"] ?? target.host, ca: conn.caDer };
  if (values.token) {
    console.log(`Creating ServiceAccount ${SA_NAMESPACE}/${node} with the roles in deploy/ …`);
    p.token = await serviceAccountToken(api, node, Math.round(days * 24 * 3600));
  } else {
    console.log(`Requesting a client certificate for system:node:${node} …`);
    p.certificate = await nodeClientCertificate(api, node, (l) => console.log(`  ${l}`));
    console.log(`Letting system:node:${node} read its settings ConfigMaps (deploy/node-settings.yaml) …`);
    await applyNodeRbac(api, node, renderSettingsRbac([node]));
    console.log("Letting nodes have their own client certificate renewals approved (deploy/node-cert-rotation.yaml, as kubeadm does) …");
    await applyNodeRbac(api, node, renderRotationRbac());
  }
  if (values.serving) {
    console.log(`Requesting a kubelet serving certificate for ${servingAddresses.join(", ")} …`);
    p.serving = await nodeServingCertificate(api, node, { addresses: servingAddresses, log: (l) => console.log(`  ${l}`) });
  }
  if (values["wifi-ssid"]) {
    p.wifi = { ssid: values["wifi-ssid"], password: values["wifi-password-file"] ? readFileSync(values["wifi-password-file"], "utf8").trim() : undefined };
  }
  const out = resolve(values.out ?? join("provisioned", node));
  const files = writeOutputs(p, out);
  console.log(`Wrote ${files.join(", ")} to ${out}\nNext: see ${join(out, "README.txt")} (simulator: copy modpreferences.json to /tmp/modpreferences.json).`);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  main().catch((err: Error) => {
    console.error(`provision: ${err.message}`);
    process.exit(1);
  });
}
