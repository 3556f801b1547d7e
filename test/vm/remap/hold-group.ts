/** Holds a device's VFIO group and device fd open until killed (for the release tests). */
import { Container } from "../../../src/index.ts";

const bdf = process.argv[2]!;
using container = Container.open();
using group = container.addGroup(bdf);
using dev = group.openPciDevice(bdf);
void dev;
console.log("holding");
await Bun.sleep(120_000);
