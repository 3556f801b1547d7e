/**
 * The NVMe driver at work: identify the controller, write a pattern, read
 * it back through an interrupt-driven and a polled queue, flush, close.
 *
 *   bun examples/nvme/demo.ts [0000:01:00.0] [lba]
 *
 * Without an address it takes the first NVMe controller bound to vfio-pci.
 * WARNING: it overwrites 8 logical blocks at `lba` (default: the last 8 of namespace 1).
 */
import { listPciDevices } from "bun-vfio";
import { NvmeController } from "./controller.ts";

const bdf = process.argv[2] ?? listPciDevices().find((d) => d.classCode === 0x010802 && d.driver === "vfio-pci")?.bdf;
if (!bdf) {
  console.error("No NVMe controller (class 010802) bound to vfio-pci. Bind one with `bunx bun-vfio bind <bdf>`, or try `bunx bun-vfio sandbox -- bun examples/nvme/demo.ts`.");
  process.exit(1);
}

await using nvme = await NvmeController.open(bdf, { queues: ["interrupt", "polled"] });
const { identity: id, namespace: ns } = nvme;
console.log(`${bdf}: NVMe ${id.version}, ${id.model} (serial ${id.serial}, firmware ${id.firmware})`);
console.log(`namespace ${ns.nsid}: ${ns.blocks} blocks of ${ns.blockSize} bytes (LBA format ${ns.lbaFormat}), MDTS ${id.mdtsBytes} bytes`);
console.log(`I/O queues: ${nvme.queues.map((q) => `${q.qid} (${q.mode}, depth ${q.depth}, MSI-X vector ${q.vector?.vector})`).join(", ")}`);

const blocks = 8;
const lba = process.argv[3] !== undefined ? BigInt(process.argv[3]) : ns.blocks - BigInt(blocks);
const bytes = blocks * ns.blockSize;
using out = nvme.allocate(bytes);
using back = nvme.allocate(bytes);
for (let i = 0; i < bytes; i++) out.bytes[i] = (i * 7 + 3) & 0xff;
await nvme.write(lba, blocks, out, 0, { mode: "interrupt" });
await nvme.flush({ mode: "interrupt" });
for (const mode of ["interrupt", "polled"] as const) {
  back.bytes.fill(0);
  await nvme.read(lba, blocks, back, 0, { mode });
  const same = back.bytes.every((b, i) => b === out.bytes[i]);
  console.log(`read back ${bytes} bytes at LBA ${lba} (${mode}): ${same ? "identical" : "DIFFERENT"}`);
  if (!same) process.exitCode = 1;
}
