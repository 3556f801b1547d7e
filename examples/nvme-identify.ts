/**
 * NVMe Identify Controller from userspace: open an NVMe controller through
 * VFIO, build an admin queue pair in DMA memory, enable the controller,
 * submit Identify (CNS 1) and print what the device says about itself.
 *
 *   bun examples/nvme-identify.ts [0000:01:00.0]
 *
 * Without an address it takes the first NVMe controller bound to vfio-pci.
 * Try it with no hardware at all: bunx bun-vfio sandbox (its default command).
 * Register layout: NVM Express Base Specification 1.4, section 3.1.
 */
import { DmaBuffer, listPciDevices, openVfio, type Bar } from "bun-vfio";

const REG = { CAP: 0x00, VS: 0x08, CC: 0x14, CSTS: 0x1c, AQA: 0x24, ASQ: 0x28, ACQ: 0x30 } as const;
const QUEUE_ENTRIES = 16;
const PAGE = 4096;

const bdf = process.argv[2] ?? listPciDevices().find((d) => d.classCode === 0x010802 && d.driver === "vfio-pci")?.bdf;
if (!bdf) {
  console.error("No NVMe controller (class 010802) bound to vfio-pci. Bind one with `bunx bun-vfio bind <bdf>`, or try `bunx bun-vfio sandbox`.");
  process.exit(1);
}

/** Polls `cond` every millisecond until it holds or `ms` pass. */
async function waitFor(what: string, ms: number, cond: () => boolean): Promise<void> {
  for (const end = Date.now() + ms; !cond(); await new Promise((r) => setTimeout(r, 1))) if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}

using container = openVfio(); // iommufd where the kernel has it, else the type1 container
using dev = container.openPciDevice(bdf);
dev.enableMemory();
dev.enableBusMaster();
const bar: Bar = dev.bar(0);
// The admin completion queue interrupts on MSI-X vector 0 (one eventfd, VFIO_DEVICE_SET_IRQS).
using vectors = dev.msix.enable(1);

// One DMA page each for the submission queue, the completion queue and the identify data.
using memory = DmaBuffer.allocate(container, 3 * PAGE);
const [sqOffset, cqOffset, dataOffset] = [0, PAGE, 2 * PAGE];
const [sqIova, cqIova, dataIova] = [memory.iovaAt(sqOffset), memory.iovaAt(cqOffset), memory.iovaAt(dataOffset)];

const cap = bar.read64(REG.CAP);
const timeoutMs = Number((cap >> 24n) & 0xffn) * 500; // CAP.TO is in 500 ms units
const doorbellStride = 4 << Number((cap >> 32n) & 0xfn); // CAP.DSTRD
const vs = bar.read32(REG.VS);
console.log(`${bdf}: NVMe ${vs >>> 16}.${(vs >>> 8) & 0xff}.${vs & 0xff}, CAP ${cap.toString(16)}`);
console.log(bar.plan.explain().split("\n").slice(0, 1).concat(bar.plan.ranges.map((r) => `  ${r.access} 0x${r.start.toString(16)}-0x${r.end.toString(16)}: ${r.reason}`)).join("\n"));

// Disable, program the admin queues, enable (spec 7.6.1).
bar.write32(REG.CC, 0);
await waitFor("CSTS.RDY = 0", timeoutMs, () => (bar.read32(REG.CSTS) & 1) === 0);
bar.write32(REG.AQA, ((QUEUE_ENTRIES - 1) << 16) | (QUEUE_ENTRIES - 1));
bar.write64(REG.ASQ, sqIova);
bar.write64(REG.ACQ, cqIova);
bar.write32(REG.CC, (4 << 20) | (6 << 16) | 1); // IOCQES 16 B, IOSQES 64 B, MPS 4 KiB, NVM command set, EN
await waitFor("CSTS.RDY = 1", timeoutMs, () => (bar.read32(REG.CSTS) & 1) === 1);

// Identify Controller: opcode 0x06, CID 1, PRP1 = data page, CDW10.CNS = 1.
const sqe = new DataView(memory.bytes.buffer, memory.bytes.byteOffset + sqOffset, 64);
sqe.setUint32(0, (1 << 16) | 0x06, true);
sqe.setBigUint64(24, dataIova, true);
sqe.setUint32(40, 1, true);
bar.write32(0x1000, 1); // SQ0 tail doorbell: one entry

// The device posts the completion entry, then raises vector 0; the entry's phase bit
// (DW3 bit 16) flips to 1 when it is written.
let timer: ReturnType<typeof setTimeout> | undefined;
const interrupts = await Promise.race([vectors[0]!.next(), new Promise<number>((done) => (timer = setTimeout(done, timeoutMs, 0)))]);
clearTimeout(timer);
console.log(interrupts > 0 ? `completion interrupt on MSI-X vector 0 (${interrupts})` : "no completion interrupt: polling");
await waitFor("the Identify completion", timeoutMs, () => ((memory.read32(cqOffset + 12) >>> 16) & 1) === 1);
const status = memory.read32(cqOffset + 12) >>> 17;
bar.write32(0x1000 + doorbellStride, 1); // CQ0 head doorbell
if (status !== 0) throw new Error(`Identify failed: status 0x${status.toString(16)}`);

const id = memory.bytes.subarray(dataOffset, dataOffset + 4096);
const text = (from: number, to: number) => new TextDecoder().decode(id.subarray(from, to)).trim();
const le16 = (at: number) => id[at]! | (id[at + 1]! << 8);
console.log(`vendor     ${le16(0).toString(16).padStart(4, "0")} (subsystem ${le16(2).toString(16).padStart(4, "0")})`);
console.log(`model      ${text(24, 64)}`);
console.log(`serial     ${text(4, 24)}`);
console.log(`firmware   ${text(64, 72)}`);
console.log(`namespaces ${new DataView(id.buffer, id.byteOffset).getUint32(516, true)}`);

bar.write32(REG.CC, 0); // leave the controller disabled
await waitFor("CSTS.RDY = 0", timeoutMs, () => (bar.read32(REG.CSTS) & 1) === 0);
