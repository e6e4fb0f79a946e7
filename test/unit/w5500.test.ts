import assert from "node:assert/strict";
import {
  BSB_COMMON, MR, OM_FDM1, OM_FDM2, OM_FDM4, PHYCFGR, VERSIONR, bsbRx, bsbSocket, bsbTx, controlByte,
  probeW5500, readFrame, readRegister, readRegisters, resetW5500, writeFrame, writeRegisters,
} from "../../hosts/esp32s3/w5500";
import { HEADER_MISO, W5500Model, decodeFrame } from "../support/w5500-model";

const bytes = (u: Uint8Array): number[] => Array.from(u);

describe("W5500 frames", () => {
  it("builds the VERSIONR read frame: 00 39 00 + one dummy byte", () => {
    assert.deepEqual(bytes(readFrame(VERSIONR, BSB_COMMON, 1)), [0x00, 0x39, 0x00, 0x00]);
  });

  it("builds the MR software-reset write frame: 00 00 04 80", () => {
    assert.deepEqual(bytes(writeFrame(MR, BSB_COMMON, [0x80])), [0x00, 0x00, 0x04, 0x80]);
  });

  it("encodes BSB, RWB and OM in the control byte", () => {
    assert.equal(bsbSocket(0), 0b00001);
    assert.equal(bsbTx(0), 0b00010);
    assert.equal(bsbRx(0), 0b00011);
    assert.equal(bsbSocket(7), 0b11101);
    assert.equal(controlByte(bsbSocket(1), false, 0), 0b00101_000);
    assert.equal(controlByte(bsbTx(2), true, 0), 0b01010_100);
    assert.equal(controlByte(bsbRx(7), false, OM_FDM4), 0b11111_011);
    assert.throws(() => controlByte(32, false, 0), RangeError);
    assert.throws(() => readFrame(0, 0, 3, OM_FDM2), RangeError);
  });

  it("writes the probe's frames, in order, and nothing else", () => {
    const chip = new W5500Model({ link: true });
    probeW5500(chip.transfer);
    assert.deepEqual(chip.frames.map(bytes), [[0x00, 0x39, 0x00, 0x00], [0x00, 0x2e, 0x00, 0x00]]);
  });
});

describe("W5500 probe", () => {
  it("present with link: version, speed, duplex", () => {
    const chip = new W5500Model({ link: true, speed100: true, fullDuplex: true });
    const probe = probeW5500(chip.transfer);
    assert.equal(probe.present, true);
    assert.equal(probe.version, 0x04);
    assert.equal(probe.link, true);
    assert.equal(probe.speedMbps, 100);
    assert.equal(probe.fullDuplex, true);
    assert.equal(probe.phycfgr, 0xbf);
    assert.match(probe.diagnostic, /W5500 found, link up 100 Mbps full duplex/);
  });

  it("present with a 10 Mbps half-duplex link", () => {
    const probe = probeW5500(new W5500Model({ link: true, speed100: false, fullDuplex: false }).transfer);
    assert.equal(probe.speedMbps, 10);
    assert.equal(probe.fullDuplex, false);
  });

  it("present without link: cable unplugged", () => {
    const probe = probeW5500(new W5500Model({ link: false }).transfer);
    assert.equal(probe.present, true);
    assert.equal(probe.link, false);
    assert.equal(probe.speedMbps, 0);
    assert.equal(probe.fullDuplex, false);
    assert.equal(probe.phycfgr, 0xb8);
    assert.match(probe.diagnostic, /^W5500 found, cable unplugged/);
  });

  it("absent, MISO pulled up: VERSIONR 0xff", () => {
    const chip = new W5500Model({ absent: "pulled-up" });
    const probe = probeW5500(chip.transfer);
    assert.equal(probe.present, false);
    assert.equal(probe.version, 0xff);
    assert.equal(probe.link, false);
    assert.equal(probe.diagnostic, "W5500 not found: VERSIONR read 0xff (no chip, chip held in reset, or MISO floating)");
    assert.equal(chip.frames.length, 1, "PHYCFGR is not read from an absent chip");
  });

  it("absent, MISO held low: VERSIONR 0x00", () => {
    const probe = probeW5500(new W5500Model({ absent: "pulled-down" }).transfer);
    assert.equal(probe.present, false);
    assert.equal(probe.version, 0x00);
    assert.match(probe.diagnostic, /^W5500 not found: VERSIONR read 0x00 \(no chip, chip unpowered, or MISO held low\)$/);
  });

  it("another chip answering: wrong version", () => {
    const probe = probeW5500((tx) => { const rx = new Uint8Array(tx.length); rx.fill(0x51, 3); return rx; });
    assert.equal(probe.present, false);
    assert.match(probe.diagnostic, /VERSIONR read 0x51 \(not a W5500/);
  });

  it("an SPI that throws or returns a short buffer is reported, not thrown", () => {
    assert.match(probeW5500(() => { throw new Error("in use"); }).diagnostic, /SPI error: in use/);
    assert.match(probeW5500(() => new Uint8Array(2)).diagnostic, /SPI returned 2 bytes/);
  });

  it("follows the link flag the test sets", () => {
    const chip = new W5500Model({ link: false });
    assert.equal(probeW5500(chip.transfer).link, false);
    chip.link = true;
    assert.equal(probeW5500(chip.transfer).link, true);
  });
});

describe("W5500 model", () => {
  it("returns the header-phase bytes it documents, and decodes frames", () => {
    const chip = new W5500Model();
    const rx = chip.transfer(readFrame(VERSIONR, BSB_COMMON, 1));
    assert.deepEqual(bytes(rx), [...HEADER_MISO, 0x04]);
    const f = decodeFrame(writeFrame(0x1234, bsbTx(3), [1, 2]));
    assert.deepEqual({ ...f, data: bytes(f.data) }, { address: 0x1234, bsb: bsbTx(3), write: true, om: 0, data: [1, 2] });
  });

  it("holds reset values and auto-increments the address in VDM", () => {
    const chip = new W5500Model({ link: false });
    assert.deepEqual(bytes(readRegisters(chip.transfer, 0x0019, BSB_COMMON, 4)), [0x07, 0xd0, 0x08, 0x28]);
    assert.equal(readRegister(chip.transfer, 0x0016, bsbSocket(0)), 0x80, "Sn_TTL");
    assert.deepEqual(bytes(readRegisters(chip.transfer, 0x001e, bsbSocket(5), 4)), [0x02, 0x02, 0x08, 0x00]);
  });

  it("supports the fixed-length modes (1, 2, 4 bytes)", () => {
    const chip = new W5500Model();
    chip.transfer(writeFrame(0x0001, BSB_COMMON, [192, 168, 1, 1], OM_FDM4)); // GAR
    assert.deepEqual(bytes(chip.transfer(readFrame(0x0001, BSB_COMMON, 4, OM_FDM4)).subarray(3)), [192, 168, 1, 1]);
    assert.deepEqual(bytes(chip.transfer(readFrame(0x0001, BSB_COMMON, 2, OM_FDM2)).subarray(3)), [192, 168]);
    assert.deepEqual(bytes(chip.transfer(readFrame(0x0004, BSB_COMMON, 1, OM_FDM1)).subarray(3)), [1]);
    // Extra bytes after a fixed-length data phase are ignored.
    const longer = new Uint8Array([0x00, 0x01, controlByte(0, false, OM_FDM1), 0, 0]);
    assert.deepEqual(bytes(chip.transfer(longer).subarray(3)), [192, 0]);
  });

  it("keeps VERSIONR and the PHY status bits read-only", () => {
    const chip = new W5500Model({ link: false });
    writeRegisters(chip.transfer, VERSIONR, BSB_COMMON, [0x99]);
    writeRegisters(chip.transfer, PHYCFGR, BSB_COMMON, [0xff]);
    assert.equal(readRegister(chip.transfer, VERSIONR), 0x04);
    assert.equal(readRegister(chip.transfer, PHYCFGR) & 0x07, 0);
  });

  it("software reset through MR restores reset values and clears RST", () => {
    const chip = new W5500Model();
    writeRegisters(chip.transfer, 0x0009, BSB_COMMON, [0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]); // SHAR
    writeRegisters(chip.transfer, MR, BSB_COMMON, [0x02]);
    assert.equal(resetW5500(chip.transfer), true);
    assert.equal(chip.resets, 1);
    assert.equal(chip.peek(BSB_COMMON, MR), 0x00);
    assert.equal(chip.peek(BSB_COMMON, 0x0009), 0x00);
    assert.deepEqual(bytes(chip.frames[2]!), [0x00, 0x00, 0x04, 0x80]);
  });

  it("an absent chip never finishes a reset", () => {
    assert.equal(resetW5500(new W5500Model({ absent: "pulled-up" }).transfer, 3), false);
  });

  it("socket buffers wrap at their 2 KB size", () => {
    const chip = new W5500Model();
    writeRegisters(chip.transfer, 0x07ff, bsbTx(1), [0xaa, 0xbb]);
    assert.equal(chip.peek(bsbTx(1), 0x0000), 0xbb);
    assert.equal(chip.peek(bsbTx(1), 0x0800), 0xbb);
  });
});
