// The firmware entry: the manifest maps xs-kubelet/hosts/board/* to hosts/esp32s3 on the device
// and to hosts/sim in the simulator; everything else is shared (hosts/moddable, modules/).
import { createBoard } from "xs-kubelet/hosts/board/host";
import { runFirmware } from "xs-kubelet/hosts/moddable/app";

export default function main(): void {
  runFirmware(createBoard());
}
