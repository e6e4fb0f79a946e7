// What this host uses of the SDK's ECMA-419 SPI (modules/io/spi/spi.js, native modules/io/spi/esp/spi.c,
// shared by esp32). Written for this project: the SDK's typings/embedded_io/spi.d.ts is not wired here.
declare module "embedded:io/spi" {
  export interface SPIOptions {
    /** Pin numbers (GPIO). `clock` and `hz` are required; at least one of `in`/`out`. */
    clock: number;
    in?: number;
    out?: number;
    /** Chip-select GPIO, driven by the SDK from JS (not by the SPI peripheral). */
    select?: number;
    /** Level of `select` while selected: 0 = active low. The SDK warns when it is left out. */
    active?: 0 | 1;
    /** 1 … 40 000 000. */
    hz: number;
    /** SPI mode 0-3 (CPOL/CPHA). */
    mode?: number;
    /** Required on ESP32: the ESP-IDF spi_host_device_t (SPI2_HOST = 1, SPI3_HOST = 2). */
    port: number;
    format?: "buffer";
  }
  export default class SPI {
    constructor(options: SPIOptions);
    /** Frees the device, the bus when it was the last device, and the pins. */
    close(): void;
    read(byteLength: number): ArrayBuffer;
    read(buffer: ArrayBufferView | ArrayBuffer): void;
    write(buffer: ArrayBufferView | ArrayBuffer): void;
    /** Full duplex, in place: the received bytes replace the sent ones. */
    transfer(buffer: ArrayBufferView | ArrayBuffer): void;
    /** Waits for queued writes; `deselect` true also releases chip select. */
    flush(deselect?: boolean): void;
    format: "buffer";
  }
}
