// A register-level W5500 written from the datasheet's SPI frame format (§2.2) and register maps
// (§3, §4), for testing the probe and anything else that talks to the chip frame by frame. One
// call to `transfer` is one chip-select assertion: CS low, the bytes, CS high.
//
// Reset values below are from memory of the datasheet (v1.0.x); the ones marked "unsure" could be
// off. Nothing here emulates the network side: no sockets open, no packets move.

export type AbsentMode = "pulled-up" | "pulled-down";

export interface W5500ModelOptions {
  /** Cable plugged in and auto-negotiation done (PHYCFGR.LNK). */
  link?: boolean;
  /** 100 Mbps (PHYCFGR.SPD) when the link is up. Default true. */
  speed100?: boolean;
  /** Full duplex (PHYCFGR.DPX) when the link is up. Default true. */
  fullDuplex?: boolean;
  /** No chip answering: MISO reads all 0xFF (pull-up) or all 0x00. */
  absent?: AbsentMode;
}

export interface DecodedFrame {
  address: number;
  bsb: number;
  write: boolean;
  om: number;
  data: Uint8Array;
}

// Common register block reset values (datasheet §3.1). Addresses not listed read 0x00.
const COMMON_RESET: ReadonlyArray<readonly [number, number]> = [
  [0x0019, 0x07], [0x001a, 0xd0], // RTR = 0x07D0 (200 ms)
  [0x001b, 0x08], // RCR
  [0x001c, 0x28], // PTIMER
  [0x0026, 0xff], [0x0027, 0xff], // PMRU = 0xFFFF (unsure)
  // PHYCFGR: RST=1, OPMD=0, OPMDC=111 -> 0b1011_1xxx; the low 3 status bits come from the PHY.
  [0x002e, 0xb8],
  [0x0039, 0x04], // VERSIONR
];

// Socket register block reset values (datasheet §4).
const SOCKET_RESET: ReadonlyArray<readonly [number, number]> = [
  [0x0006, 0xff], [0x0007, 0xff], [0x0008, 0xff], [0x0009, 0xff], [0x000a, 0xff], [0x000b, 0xff], // Sn_DHAR
  [0x0016, 0x80], // Sn_TTL
  [0x001e, 0x02], [0x001f, 0x02], // Sn_RXBUF_SIZE, Sn_TXBUF_SIZE (2 KB each)
  [0x0020, 0x08], [0x0021, 0x00], // Sn_TX_FSR = 0x0800
  [0x002c, 0xff], // Sn_IMR
  [0x002d, 0x40], [0x002e, 0x00], // Sn_FRAG = 0x4000
];

const REG_MR = 0x0000;
const REG_IR = 0x0015;
const REG_SIR = 0x0017;
const REG_PHYCFGR = 0x002e;
const REG_VERSIONR = 0x0039;
const SN_CR = 0x0001;
const SN_IR = 0x0002;
const SN_SR = 0x0003;
const SN_TX_FSR = 0x0020;
const SN_RX_RSR = 0x0026;

/**
 * MISO during the three header bytes. The datasheet leaves it undefined; W5500 users report the
 * chip shifting out 0x01, 0x02, 0x03 there. Nothing should rely on it: the probe ignores it.
 */
export const HEADER_MISO = [0x01, 0x02, 0x03] as const;

export class W5500Model {
  link: boolean;
  speed100: boolean;
  fullDuplex: boolean;
  absent: AbsentMode | undefined;
  /** Every frame seen, raw, in order. */
  readonly frames: Uint8Array[] = [];
  /** Number of software resets (MR.RST) and PHY resets (PHYCFGR.RST written 0). */
  resets = 0;
  phyResets = 0;

  private common = new Uint8Array(0x40);
  private sockets: Uint8Array[] = [];
  private txBuffers: Uint8Array[] = [];
  private rxBuffers: Uint8Array[] = [];

  constructor(options: W5500ModelOptions = {}) {
    this.link = options.link ?? true;
    this.speed100 = options.speed100 ?? true;
    this.fullDuplex = options.fullDuplex ?? true;
    this.absent = options.absent;
    this.reset();
  }

  /** Power-on / MR.RST state. */
  reset(): void {
    this.common.fill(0);
    for (const [a, v] of COMMON_RESET) this.common[a] = v;
    this.sockets = [];
    this.txBuffers = [];
    this.rxBuffers = [];
    for (let n = 0; n < 8; n++) {
      const s = new Uint8Array(0x30);
      for (const [a, v] of SOCKET_RESET) s[a] = v;
      this.sockets.push(s);
      // 2 KB per socket after reset; buffer addresses wrap within it.
      this.txBuffers.push(new Uint8Array(2048));
      this.rxBuffers.push(new Uint8Array(2048));
    }
  }

  /** The SPI: one frame in, the same number of MISO bytes out. */
  transfer = (tx: Uint8Array): Uint8Array => {
    this.frames.push(Uint8Array.from(tx));
    const rx = new Uint8Array(tx.length);
    if (this.absent) {
      rx.fill(this.absent === "pulled-up" ? 0xff : 0x00);
      return rx;
    }
    // A frame shorter than the header does nothing (CS went high mid-header).
    for (let i = 0; i < Math.min(3, tx.length); i++) rx[i] = HEADER_MISO[i]!;
    if (tx.length < 3) return rx;
    const frame = decodeFrame(tx);
    const fixed = frame.om === 1 ? 1 : frame.om === 2 ? 2 : frame.om === 3 ? 4 : 0;
    // In fixed-length mode the chip takes exactly N data bytes; later bytes in the same CS window
    // are not defined by the datasheet: the model ignores them and returns 0x00.
    const count = fixed ? Math.min(fixed, frame.data.length) : frame.data.length;
    for (let i = 0; i < count; i++) {
      const address = (frame.address + i) & 0xffff;
      if (frame.write) {
        this.write(frame.bsb, address, frame.data[i]!);
        // MISO during a write data phase is undefined; the model drives 0x00.
      } else {
        rx[3 + i] = this.read(frame.bsb, address);
      }
    }
    return rx;
  };

  /** Direct register read for assertions (bypasses SPI). */
  peek(bsb: number, address: number): number {
    return this.read(bsb, address);
  }

  private read(bsb: number, address: number): number {
    if (bsb === 0) {
      if (address === REG_PHYCFGR) return (this.common[REG_PHYCFGR]! & 0xf8) | this.phyStatus();
      return address < this.common.length ? this.common[address]! : 0x00;
    }
    const n = bsb >> 2;
    switch (bsb & 3) {
      case 1: return address < 0x30 ? this.sockets[n]![address]! : 0x00;
      case 2: return this.txBuffers[n]![address & 0x7ff]!;
      case 3: return this.rxBuffers[n]![address & 0x7ff]!;
      default: return 0x00; // BSB 00100, 01000, …: reserved
    }
  }

  private write(bsb: number, address: number, value: number): void {
    if (bsb === 0) {
      switch (address) {
        case REG_MR:
          if (value & 0x80) {
            // Software reset: every register back to reset values; RST reads back 0 when done.
            this.resets++;
            this.reset();
            return;
          }
          this.common[REG_MR] = value & 0x7f;
          return;
        case REG_IR:
          this.common[REG_IR]! &= ~value; // write 1 to clear
          return;
        case REG_SIR:
        case REG_VERSIONR:
          return; // read-only
        case REG_PHYCFGR:
          if ((value & 0x80) === 0) this.phyResets++; // RST=0 resets the PHY (unsure: self-setting back to 1 is assumed)
          this.common[REG_PHYCFGR] = (value & 0x78) | 0x80; // status bits 2..0 are read-only
          return;
        default:
          if (address < this.common.length && !(address >= 0x2f && address <= 0x38)) this.common[address] = value;
          return;
      }
    }
    const n = bsb >> 2;
    switch (bsb & 3) {
      case 1: {
        const s = this.sockets[n]!;
        if (address === SN_CR) return; // command accepted at once: reads back 0x00
        if (address === SN_IR) { s[SN_IR]! &= ~value; return; }
        if (address === SN_SR || (address >= SN_TX_FSR && address <= SN_TX_FSR + 1) || (address >= SN_RX_RSR && address <= SN_RX_RSR + 1)) return; // read-only
        if (address < 0x30) s[address] = value;
        return;
      }
      case 2: this.txBuffers[n]![address & 0x7ff] = value; return;
      case 3: this.rxBuffers[n]![address & 0x7ff] = value; return; // the datasheet says RX is read-only for the host; harmless here
      default: return;
    }
  }

  private phyStatus(): number {
    if (!this.link) return 0;
    return 0x01 | (this.speed100 ? 0x02 : 0) | (this.fullDuplex ? 0x04 : 0);
  }
}

export function decodeFrame(tx: Uint8Array): DecodedFrame {
  if (tx.length < 3) throw new RangeError("W5500 frame shorter than its header");
  const control = tx[2]!;
  return {
    address: (tx[0]! << 8) | tx[1]!,
    bsb: control >> 3,
    write: (control & 0x04) !== 0,
    om: control & 0x03,
    data: tx.subarray(3),
  };
}
