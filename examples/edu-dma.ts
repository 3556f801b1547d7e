/**
 * DMA through QEMU's educational device (edu, 1234:11e8): a pattern goes
 * from one DMA buffer into the device's internal buffer and back out into
 * a second buffer at another IOVA; the two are compared byte for byte.
 *
 *   bun examples/edu-dma.ts [0000:00:05.0]
 *
 * Without an address it takes the first edu bound to vfio-pci. No edu at
 * hand? `bunx bun-vfio sandbox -- bun examples/edu-dma.ts` runs it in a
 * QEMU guest that has one. Registers: QEMU docs/specs/edu.rst.
 */
import { DmaBuffer, listPciDevices, openVfio, type Bar } from "bun-vfio";

const EDU = { DMA_SRC: 0x80, DMA_DST: 0x88, DMA_COUNT: 0x90, DMA_CMD: 0x98 } as const;
const CMD_START = 1;
const CMD_TO_RAM = 2;
/** Device address of edu's 4 KiB internal buffer. */
const DEVICE_BUFFER = 0x40000n;
/** edu drops address bits above 28 (its dma_mask), so buffers must live below 2^28. */
const DMA_LIMIT = 1n << 28n;
/** QEMU before 8.0 stops on a transfer that ends exactly at the buffer's end: stay one byte short. */
const LENGTH = 4095;

const bdf = process.argv[2] ?? listPciDevices().find((d) => d.vendorId === 0x1234 && d.deviceId === 0x11e8 && d.driver === "vfio-pci")?.bdf;
if (!bdf) {
  console.error("No edu device (1234:11e8) bound to vfio-pci. Start QEMU with `-device edu` and bind it (`bunx bun-vfio bind <bdf>`), or run this in `bunx bun-vfio sandbox`.");
  process.exit(1);
}

/** One transfer; the device clears bit 0 of the command register when it is done. */
function dma(bar: Bar, toRam: boolean, busAddress: bigint, length: number): void {
  bar.write64(EDU.DMA_SRC, toRam ? DEVICE_BUFFER : busAddress);
  bar.write64(EDU.DMA_DST, toRam ? busAddress : DEVICE_BUFFER);
  bar.write64(EDU.DMA_COUNT, BigInt(length));
  bar.write64(EDU.DMA_CMD, BigInt(CMD_START | (toRam ? CMD_TO_RAM : 0)));
  for (const end = Date.now() + 5000; bar.read32(EDU.DMA_CMD) & CMD_START; Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1)) {
    if (Date.now() > end) throw new Error("the DMA did not complete within 5 s");
  }
}

using container = openVfio(); // iommufd where the kernel has it, else the type1 container
using dev = container.openPciDevice(bdf);
dev.enableMemory();
dev.enableBusMaster(); // without it the device's DMA never reaches memory
const bar = dev.bar(0);

// Two buffers, each mapped at its own IOVA below edu's 28-bit limit. They
// are disposed (IOMMU unmap, then munmap) before the device and the backend.
using source = DmaBuffer.allocate(container, LENGTH, { limit: DMA_LIMIT, access: "read-only" });
using target = DmaBuffer.allocate(container, LENGTH, { limit: DMA_LIMIT });
console.log(`${bdf}: source at IOVA 0x${source.iova.toString(16)}, target at IOVA 0x${target.iova.toString(16)} (${source.size} bytes each)`);

const pattern = Uint8Array.from({ length: LENGTH }, (_, i) => (i * 7 + 3) & 0xff);
source.write(0, pattern);
target.bytes.fill(0);

const started = performance.now();
dma(bar, false, source.iova, LENGTH); // memory -> device
dma(bar, true, target.iova, LENGTH); // device -> memory
const ms = performance.now() - started;

const copy = target.read(0, LENGTH);
const firstBad = copy.findIndex((b, i) => b !== pattern[i]);
if (firstBad >= 0) {
  console.error(`mismatch at byte ${firstBad}: expected 0x${pattern[firstBad]!.toString(16)}, got 0x${copy[firstBad]!.toString(16)}`);
  process.exit(1);
}
console.log(`${LENGTH} bytes went through the device and back unchanged (2 DMAs, ${ms.toFixed(0)} ms: edu waits 100 ms per transfer)`);
