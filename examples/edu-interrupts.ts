/**
 * Interrupts from QEMU's edu device (1234:11e8): raise MSIs through its
 * raise-interrupt register, await them without blocking the event loop,
 * acknowledge each one, then trigger the vector from software.
 *
 *   bun examples/edu-interrupts.ts [0000:00:05.0]
 *
 * No edu at hand? `bunx bun-vfio sandbox -- bun examples/edu-interrupts.ts`.
 * Registers: QEMU docs/specs/edu.rst (0x24 status, 0x60 raise, 0x64 acknowledge).
 */
import { listPciDevices, openVfio } from "bun-vfio";

const STATUS = 0x24;
const RAISE = 0x60;
const ACK = 0x64;

const bdf = process.argv[2] ?? listPciDevices().find((d) => d.vendorId === 0x1234 && d.deviceId === 0x11e8 && d.driver === "vfio-pci")?.bdf;
if (!bdf) {
  console.error("No edu device (1234:11e8) bound to vfio-pci: bind one (`bunx bun-vfio bind <bdf>`) or run this in `bunx bun-vfio sandbox`.");
  process.exit(1);
}

using container = openVfio(); // iommufd where the kernel has it, else the type1 container
using dev = container.openPciDevice(bdf);
dev.enableMemory();
dev.enableBusMaster(); // an MSI is a memory write by the device: no bus mastering, no interrupts
const bar = dev.bar(0);

// If the device is unbound or hot-unplugged while we hold it, give it back.
dev.req.onRelease(() => console.log("the kernel wants the device back: closing it"), { autoRelease: true });

using vectors = dev.msi.enable(1); // one eventfd, VFIO_DEVICE_SET_IRQS
const msi = vectors[0]!;
let raised = 0;
const loop = (async () => {
  for await (const count of msi) {
    const status = bar.read32(STATUS);
    console.log(`MSI: ${count} interrupt(s), status 0x${status.toString(16)}`);
    bar.write32(ACK, status);
    if (++raised < 3) bar.write32(RAISE, 1 << raised);
    else break;
  }
})();
bar.write32(RAISE, 1);
await loop;

msi.trigger(); // VFIO_IRQ_SET_DATA_NONE | ACTION_TRIGGER: the kernel signals the eventfd itself
console.log("software trigger:", await msi.next());
console.log("nothing pending now:", msi.tryRead());
