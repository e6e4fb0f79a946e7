// W5500 register access over SPI, and a presence/link probe run before the SDK's Ethernet driver
// owns the bus. Pure TypeScript: the SPI itself is injected as a full-duplex `transfer`.
//
// Frame format (W5500 datasheet §2.2): address phase (16 bits, MSB first), control phase (8 bits:
// BSB[4:0] in bits 7-3, RWB in bit 2, OM[1:0] in bits 1-0), then the data phase, all under one
// chip-select. OM 00 = variable length (VDM, length set by CS), 01/10/11 = fixed 1/2/4 bytes.

/** One full-duplex exchange under a single chip-select assertion; returns the MISO bytes. */
export type SpiTransfer = (tx: Uint8Array) => Uint8Array;

export const OM_VDM = 0b00;
export const OM_FDM1 = 0b01;
export const OM_FDM2 = 0b10;
export const OM_FDM4 = 0b11;

export const BSB_COMMON = 0b00000;
/** Socket n register block. */
export const bsbSocket = (n: number): number => (n << 2) | 0b01;
/** Socket n TX buffer. */
export const bsbTx = (n: number): number => (n << 2) | 0b10;
/** Socket n RX buffer. */
export const bsbRx = (n: number): number => (n << 2) | 0b11;

// Common register block addresses used here.
export const MR = 0x0000;
export const PHYCFGR = 0x002e;
export const VERSIONR = 0x0039;

export const MR_RST = 0x80;
export const PHYCFGR_LNK = 0x01;
export const PHYCFGR_SPD = 0x02;
export const PHYCFGR_DPX = 0x04;
export const W5500_VERSION = 0x04;

export const HEADER_LENGTH = 3;

export function controlByte(bsb: number, write: boolean, om: number): number {
  if (bsb < 0 || bsb > 0x1f) throw new RangeError(`W5500: BSB out of range: ${bsb}`);
  if (om < 0 || om > 3) throw new RangeError(`W5500: OM out of range: ${om}`);
  return ((bsb << 3) | (write ? 0x04 : 0x00) | om) & 0xff;
}

/** A read frame: header followed by `length` dummy bytes (0x00) that clock the data out. */
export function readFrame(address: number, bsb: number, length: number, om = OM_VDM): Uint8Array {
  checkLength(length, om);
  const frame = new Uint8Array(HEADER_LENGTH + length);
  frame[0] = (address >> 8) & 0xff;
  frame[1] = address & 0xff;
  frame[2] = controlByte(bsb, false, om);
  return frame;
}

export function writeFrame(address: number, bsb: number, data: ArrayLike<number>, om = OM_VDM): Uint8Array {
  checkLength(data.length, om);
  const frame = new Uint8Array(HEADER_LENGTH + data.length);
  frame[0] = (address >> 8) & 0xff;
  frame[1] = address & 0xff;
  frame[2] = controlByte(bsb, true, om);
  for (let i = 0; i < data.length; i++) frame[HEADER_LENGTH + i] = data[i]! & 0xff;
  return frame;
}

function checkLength(length: number, om: number): void {
  const fixed = om === OM_FDM1 ? 1 : om === OM_FDM2 ? 2 : om === OM_FDM4 ? 4 : 0;
  if (fixed ? length !== fixed : length < 1) throw new RangeError(`W5500: ${length} data bytes do not fit OM ${om}`);
}

export function readRegisters(transfer: SpiTransfer, address: number, bsb: number, length: number): Uint8Array {
  const rx = transfer(readFrame(address, bsb, length));
  if (rx.length !== HEADER_LENGTH + length) throw new Error(`W5500: SPI returned ${rx.length} bytes for a ${HEADER_LENGTH + length}-byte frame`);
  return rx.slice(HEADER_LENGTH);
}

export function readRegister(transfer: SpiTransfer, address: number, bsb = BSB_COMMON): number {
  return readRegisters(transfer, address, bsb, 1)[0]!;
}

export function writeRegisters(transfer: SpiTransfer, address: number, bsb: number, data: ArrayLike<number>): void {
  transfer(writeFrame(address, bsb, data));
}

export interface W5500Probe {
  /** VERSIONR read back 0x04. */
  present: boolean;
  /** The raw VERSIONR value (0xff with MISO pulled up and no chip, 0x00 with MISO held low). */
  version: number;
  /** The raw PHYCFGR value (undefined when the chip is absent). */
  phycfgr?: number;
  link: boolean;
  /** 10 or 100 while the link is up; 0 otherwise. */
  speedMbps: 0 | 10 | 100;
  fullDuplex: boolean;
  /** One line for the log. */
  diagnostic: string;
}

const hex = (value: number): string => "0x" + value.toString(16).padStart(2, "0");

/**
 * Reads VERSIONR and PHYCFGR. Never resets the chip: a reset restarts auto-negotiation and would
 * turn a plugged cable into "no link" for a few seconds.
 */
export function probeW5500(transfer: SpiTransfer): W5500Probe {
  let version: number;
  try {
    version = readRegister(transfer, VERSIONR);
  } catch (e) {
    return absent(-1, `W5500 probe failed: SPI error: ${(e as Error).message}`);
  }
  if (version !== W5500_VERSION) {
    const why = version === 0xff ? "no chip, chip held in reset, or MISO floating"
      : version === 0x00 ? "no chip, chip unpowered, or MISO held low"
      : "not a W5500, or wrong SPI mode/clock";
    return absent(version, `W5500 not found: VERSIONR read ${hex(version)} (${why})`);
  }
  const phy = readRegister(transfer, PHYCFGR);
  const link = (phy & PHYCFGR_LNK) !== 0;
  // SPD and DPX only mean something while the link is up.
  const speedMbps = link ? ((phy & PHYCFGR_SPD) ? 100 : 10) : 0;
  const fullDuplex = link && (phy & PHYCFGR_DPX) !== 0;
  const diagnostic = link
    ? `W5500 found, link up ${speedMbps} Mbps ${fullDuplex ? "full" : "half"} duplex (PHYCFGR ${hex(phy)})`
    : `W5500 found, cable unplugged or link not negotiated yet (PHYCFGR ${hex(phy)})`;
  return { present: true, version, phycfgr: phy, link, speedMbps, fullDuplex, diagnostic };
}

function absent(version: number, diagnostic: string): W5500Probe {
  return { present: false, version, link: false, speedMbps: 0, fullDuplex: false, diagnostic };
}

/**
 * Software reset through MR.RST; the bit clears itself when the reset is done. `pollLimit` bounds
 * the wait (the datasheet gives no figure; on real chips it is immediate at SPI speeds). Returns
 * true when MR read back with RST clear.
 */
export function resetW5500(transfer: SpiTransfer, pollLimit = 100): boolean {
  writeRegisters(transfer, MR, BSB_COMMON, [MR_RST]);
  for (let i = 0; i < pollLimit; i++) {
    if ((readRegister(transfer, MR) & MR_RST) === 0) return true;
  }
  return false;
}
