// The simulator board (mcsim on Linux/macOS/Windows): the host's own network (no W5500, no
// Wi-Fi), and the LED plus the node's state drawn on the simulator screen with Poco.
/// <reference path="../moddable/types/ssl-server.d.ts" />
import Net from "net";
import Poco from "commodetto/Poco";
import parseBMF from "commodetto/parseBMF";
import Resource from "Resource";
import config from "mc/config";
import RNG from "rng";
import Time from "time";
import type { BoardFacts, NetworkFacts } from "../../modules/host";
import type { Board, FirmwareView } from "../moddable/app";
import { xsHeap } from "../moddable/runtime";
import { ESP32S3_GPIO } from "../esp32s3/board";
import { SimulatedGpio } from "../virtual/gpio";

const kib = (bytes: number) => (bytes / 1024).toFixed(1);

// mcsim never seeds the C library's rand(), which seeds the SDK's RNG and is Math.random: every
// simulator start drew the same sequence — the same bootID (Kubernetes saw no restart) and the same
// TLS randoms and ephemeral keys. Seeded here from the PC's clock, before any connection: each
// start differs (predictable to whoever knows the start time to the microsecond: the simulator is
// no place for secrets). On the board rand() is the ESP32's hardware RNG.
{
  const seed = new Float64Array([Date.now(), Time.ticks, Math.random()]);
  RNG.init(seed.buffer as ArrayBuffer);
}

/** A stable locally-administered MAC for the simulator (mcsim has none): from mc/config "simMac". */
function simMac(): string {
  const configured = (config as Record<string, unknown>).simMac;
  return typeof configured === "string" && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(configured) ? configured.toLowerCase() : "02:00:00:00:51:01";
}

/**
 * The simulator is the Moddable runtime on a PC, not the ESP32-S3: it says so. mcsim cannot tell the
 * PC's CPU, so the architecture comes from mc/config "simArch" (the manifest sets it per platform).
 */
const SIM_BOARD: Readonly<BoardFacts> = Object.freeze({
  arch: typeof (config as Record<string, unknown>).simArch === "string" ? ((config as Record<string, unknown>).simArch as string) : "amd64",
  os: "moddable",
  instanceType: "moddable-simulator",
  osImage: "Moddable SDK simulator (mcsim)",
  kernelVersion: "host OS",
  cpu: "240m",
  // As the board: the simulator is where the heap a pod costs is measured (README, "Pods on the node").
  pods: 4,
  kubeletPort: 10250,
});

type Render = InstanceType<typeof Poco>;
type PixelsOut = ConstructorParameters<typeof Poco>[0];

/** The simulator's display; absent on targets without a screen (config.screen ""). */
function simulatorScreen(): PixelsOut | undefined {
  return (globalThis as unknown as { screen?: PixelsOut }).screen;
}

class Screen {
  #poco: Render;
  #font: ReturnType<typeof parseBMF>;
  #led: [number, number, number] = [0, 0, 0];
  #lines: string[] = [];

  constructor(screen: PixelsOut) {
    this.#poco = new Poco(screen, { displayListLength: 4096 });
    this.#font = parseBMF(new Resource("OpenSans-Regular-16.bf4"));
  }

  led(r: number, g: number, b: number): void {
    this.#led = [r, g, b];
    this.#drawLed();
  }

  lines(lines: string[]): void {
    this.#lines = lines;
    this.#drawAll();
  }

  #drawLed(): void {
    const poco = this.#poco;
    // The LED's frames are brightness-capped (≤ 38): scale them up so the colour is visible.
    const [r, g, b] = this.#led.map((v) => Math.min(255, Math.round(v * 6.7)));
    poco.begin(8, 8, 48, 48);
    poco.fillRectangle(poco.makeColor(60, 60, 60), 8, 8, 48, 48);
    poco.fillRectangle(poco.makeColor(r, g, b), 10, 10, 44, 44);
    poco.end();
  }

  #drawAll(): void {
    const poco = this.#poco;
    const font = this.#font;
    poco.begin();
    poco.fillRectangle(poco.makeColor(0, 0, 0), 0, 0, poco.width, poco.height);
    const white = poco.makeColor(255, 255, 255);
    const grey = poco.makeColor(170, 170, 170);
    poco.drawText("xs-kubelet", font, white, 64, 12);
    poco.drawText("simulator", font, grey, 64, 12 + font.height);
    let y = 64;
    for (const [i, line] of this.#lines.entries()) {
      poco.drawText(line, font, i === this.#lines.length - 1 ? grey : white, 6, y, poco.width - 12);
      y += font.height + 2;
    }
    poco.end();
    this.#drawLed();
  }
}

/** The driven pins, "4=1 5=0", or "-". */
function pinsLine(gpio: SimulatedGpio): string {
  const out: string[] = [];
  for (const pin of gpio.outputs) {
    const v = gpio.level(pin);
    if (v !== undefined) out.push(`${pin}=${v}`);
  }
  return out.length ? out.join(" ") : "-";
}

function condition(view: FirmwareView, type: string): string {
  const c = view.snapshot?.conditions.find((x) => x.type === type);
  return c ? c.status : "-";
}

export function createBoard(): Board {
  const pixels = simulatorScreen();
  const display = pixels ? new Screen(pixels) : undefined;
  let started = false;
  // The board's pins, simulated; what pods drive is drawn on the screen.
  const gpio = new SimulatedGpio(ESP32S3_GPIO);
  const board: Board = {
    name: "sim",
    facts: SIM_BOARD,
    gpio,
    showLed: display ? (r, g, b) => display.led(r, g, b) : undefined,
    startNetwork() {
      started = true; // the host's network is already up
    },
    network(): NetworkFacts {
      let address = "";
      try {
        address = Net.get("IP") ?? ""; // lin: the first IPv4 address that is not 127.0.0.1
      } catch {
        // not implemented on this simulator
      }
      return { kind: "host", connected: started, address, mac: simMac(), reconnects: 0 };
    },
    dnsServers: () => {
      const dns = (config as Record<string, unknown>).dns;
      return typeof dns === "string" && dns ? dns.split(",").map((s) => s.trim()) : [];
    },
    show(view) {
      if (!display) return;
      const s = view.snapshot;
      const heap = xsHeap();
      display.lines([
        `node: ${s?.nodeName ?? "-"}`,
        `phase: ${s ? s.phase : view.stage}`,
        `LED: ${view.led}`,
        `renewals: ${s?.renewals ?? 0}  pushes: ${s?.statusPushes ?? 0}`,
        `Ready: ${condition(view, "Ready")}  MemoryP.: ${condition(view, "MemoryPressure")}`,
        `net: ${view.network.kind} ${view.network.address || "-"}  ${s ? s.protocol : ""}`,
        `XS live: ${heap === undefined ? "n/a" : `${kib(heap.slotBytes + heap.chunkBytes)} KiB`}  pods: ${s?.pods ?? 0}`,
        heap === undefined ? "" : `slots ${kib(heap.slotBytes)} + chunks ${kib(heap.chunkBytes)} KiB`,
        `GPIO: ${pinsLine(gpio)}`,
        s?.lastError ? `error: ${s.lastError}` : view.status,
      ]);
    },
  };
  return board;
}
