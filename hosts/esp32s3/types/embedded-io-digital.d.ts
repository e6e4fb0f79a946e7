// What this host uses of the SDK's ECMA-419 Digital (modules/io/digital/digital.js). Project-written.
declare module "embedded:io/digital" {
  export default class Digital {
    static readonly Input: number;
    static readonly InputPullUp: number;
    static readonly Output: number;
    constructor(options: { pin: number; mode: number; initialValue?: 0 | 1 });
    read(): 0 | 1;
    write(value: 0 | 1): void;
    /** On esp32 this resets the pin (gpio_reset_pin: input disabled, pull-up on). */
    close(): void;
  }
}
