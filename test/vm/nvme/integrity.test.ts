/**
 * The NVMe example driver moving real data, checked against ground truth:
 * the host wrote the read cases' patterns into the disk image before boot
 * (test/vm/nvme/host.ts) and checks the write cases in the image after the
 * guest exits. Identify is checked against the profile's QEMU arguments,
 * the vectors against /proc/interrupts, status codes against the spec.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { VfioError } from "bun-vfio";
import { NvmeController } from "../../../examples/nvme/controller.ts";
import { NvmeCommandError } from "../../../examples/nvme/errors.ts";
import { NVM } from "../../../examples/nvme/spec.ts";
import { find, IDS } from "../ground-truth.ts";
import {
  BLOCK, BLOCKS, DEPTH_COUNT, DEPTH_LBA, MDTS_BYTES, READS, REJECTED, SERIAL, TAG_DEPTH, TAG_READ, TAG_WRITE, WRITES,
  WRITES_DONE_MARKER, rangePattern, type Transfer,
} from "./cases.ts";

const bdf = find(IDS.nvme);
let nvme: NvmeController;

beforeAll(async () => {
  nvme = await NvmeController.open(bdf, { queues: ["interrupt", "polled", "interrupt"] });
});
afterAll(async () => {
  await nvme?.close();
});

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

test("Identify matches the profile's QEMU arguments and the image size", () => {
  expect(nvme.identity.serial).toBe(SERIAL);
  expect(nvme.identity.model).toBe("QEMU NVMe Ctrl");
  expect(nvme.identity.vendorId).toBe(0x1b36);
  expect(nvme.identity.mdtsBytes).toBe(MDTS_BYTES);
  expect(nvme.namespace.blocks).toBe(BigInt(BLOCKS));
  expect(nvme.namespace.blockSize).toBe(BLOCK);
  expect(nvme.namespace.metadataBytes).toBe(0);
});

test("each I/O CQ has its own MSI-X vector (kernel's /proc/interrupts lists one vfio-msix line per vector)", () => {
  const lines = readFileSync("/proc/interrupts", "utf8").split("\n").filter((l) => l.includes("vfio-msix") && l.includes(bdf));
  const vectors = new Set(lines.map((l) => /vfio-msix\[(\d+)\]/.exec(l)?.[1]));
  expect(vectors).toEqual(new Set(["0", "1", "2", "3"]));
  expect(nvme.queues.map((q) => [q.qid, q.vector?.vector, q.mode])).toEqual([[1, 1, "interrupt"], [2, 2, "polled"], [3, 3, "interrupt"]]);
});

async function transferBuffer(t: Transfer) {
  const buf = nvme.allocate(t.offset + t.blocks * BLOCK + BLOCK);
  buf.bytes.fill(0xee);
  return buf;
}

for (const r of READS) {
  test(`reads the host's pattern: ${r.name}`, async () => {
    using buf = await transferBuffer(r);
    await nvme.read(BigInt(r.lba), r.blocks, buf, r.offset, { mode: r.mode });
    const end = r.offset + r.blocks * BLOCK;
    expect(equalBytes(buf.bytes.subarray(r.offset, end), rangePattern(TAG_READ, r.lba, r.blocks))).toBe(true);
    // Nothing outside the transfer was touched.
    expect(buf.bytes.subarray(0, r.offset).every((b) => b === 0xee)).toBe(true);
    expect(buf.bytes.subarray(end).every((b) => b === 0xee)).toBe(true);
  });
}

for (const w of WRITES) {
  test(`writes a pattern the host will check, reads it back the other way: ${w.name}`, async () => {
    using buf = await transferBuffer(w);
    const data = rangePattern(TAG_WRITE, w.lba, w.blocks);
    buf.bytes.set(data, w.offset);
    await nvme.write(BigInt(w.lba), w.blocks, buf, w.offset, { mode: w.mode });
    buf.bytes.fill(0);
    await nvme.read(BigInt(w.lba), w.blocks, buf, w.offset, { mode: w.mode === "polled" ? "interrupt" : "polled" });
    expect(equalBytes(buf.bytes.subarray(w.offset, w.offset + data.length), data)).toBe(true);
  });
}

test("flush completes on both kinds of queue", async () => {
  await nvme.flush({ mode: "interrupt" });
  await nvme.flush({ mode: "polled" });
  writeFileSync(join(process.env.BUN_VFIO_RESULTS ?? "/tmp", WRITES_DONE_MARKER), "1");
});

test("out-of-range, over-MDTS and misaligned requests are refused before the device sees them", async () => {
  const submitted = nvme.queues.map((q) => q.submitted);
  const cases: [keyof typeof REJECTED, RegExp][] = [["outOfRange", /out of range/], ["overMdts", /MDTS/], ["misaligned", /misaligned/]];
  for (const [name, message] of cases) {
    const r = REJECTED[name];
    using buf = nvme.allocate(r.offset + r.blocks * BLOCK);
    buf.bytes.set(rangePattern(TAG_WRITE, r.lba, r.blocks), r.offset);
    for (const mode of ["interrupt", "polled"] as const) {
      const err = await nvme.write(BigInt(r.lba), r.blocks, buf, r.offset, { mode }).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(VfioError);
      expect(err).not.toBeInstanceOf(NvmeCommandError);
      expect((err as VfioError).code).toBe("EINVAL");
      expect((err as VfioError).op).toBe("NVMe Write");
      expect((err as VfioError).message).toMatch(message);
    }
  }
  expect(nvme.queues.map((q) => q.submitted)).toEqual(submitted);
});

test("a command the device refuses fails naming the command, SCT and SC (LBA Out of Range is SCT 0, SC 0x80)", async () => {
  using buf = nvme.allocate(BLOCK);
  for (const q of nvme.queues.slice(0, 2)) {
    const err = await nvme.issueUnchecked(q, NVM.READ, BLOCKS, 0, 0, Number(buf.iova), BLOCK).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(NvmeCommandError);
    const e = err as NvmeCommandError;
    expect([e.sct, e.sc]).toEqual([0, 0x80]);
    expect(e.op).toMatch(new RegExp(`^NVMe Read \\(queue ${q.qid}, CID \\d+\\)$`));
    expect(e.message).toContain("LBA Out of Range");
  }
});

test("interrupt queue: a full queue of reads in flight at once, each CID's data at its own place; one more is refused", async () => {
  const q = nvme.queues[0]!;
  using buf = nvme.allocate(DEPTH_COUNT * BLOCK);
  const reads: Promise<void>[] = [];
  for (let i = 0; i < q.depth; i++) reads.push(nvme.read(BigInt(DEPTH_LBA + i), 1, buf, i * BLOCK, { queue: 0 }));
  expect(q.outstanding).toBe(q.depth);
  const extra = await nvme.read(BigInt(DEPTH_LBA), 1, buf, 0, { queue: 0 }).then(() => undefined, (e: unknown) => e);
  expect((extra as VfioError).code).toBe("EINVAL");
  expect((extra as VfioError).message).toContain("is full");
  await Promise.all(reads);
  expect(equalBytes(buf.bytes.subarray(0, q.depth * BLOCK), rangePattern(TAG_DEPTH, DEPTH_LBA, q.depth))).toBe(true);
});

test("polled queue: queue depth up to the queue size through submit/poll, completions matched by CID", () => {
  const q = nvme.queues[1]!;
  using buf = nvme.allocate(DEPTH_COUNT * BLOCK);
  const statusOf = new Map<number, number>();
  const want = Math.min(q.depth, DEPTH_COUNT);
  const cids: number[] = [];
  for (let i = 0; i < want; i++) {
    const lba = DEPTH_LBA + (DEPTH_COUNT - 1 - i); // reverse order: a CID mix-up puts data in the wrong slot
    const cid = q.submit(NVM.READ, 1, lba, 0, 0, 0, Number(buf.iova) + i * BLOCK, BLOCK, (s) => statusOf.set(cid, s));
    expect(cid).toBeGreaterThanOrEqual(0);
    cids.push(cid);
  }
  expect(q.submit(NVM.READ, 1, DEPTH_LBA, 0, 0, 0, Number(buf.iova), BLOCK, () => {})).toBe(-1);
  const end = performance.now() + 30_000;
  while (statusOf.size < want && performance.now() < end) q.poll();
  expect(statusOf.size).toBe(want);
  expect([...statusOf.values()].every((s) => s === 0)).toBe(true);
  expect(new Set(cids).size).toBe(want);
  for (let i = 0; i < want; i++) {
    const lba = DEPTH_LBA + (DEPTH_COUNT - 1 - i);
    expect(equalBytes(buf.bytes.subarray(i * BLOCK, (i + 1) * BLOCK), rangePattern(TAG_DEPTH, lba, 1))).toBe(true);
  }
});

test("close with reads outstanding settles every one, shuts down (CSTS.SHST = 10b with CC.SHN = 01b in BAR0), and the controller opens again", async () => {
  using buf = nvme.allocate(64 * BLOCK);
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < 64; i++) inFlight.push(nvme.read(BigInt(DEPTH_LBA + i), 1, buf, i * BLOCK, { queue: 2 }));
  await nvme.close();
  const settled = await Promise.allSettled(inFlight);
  for (const s of settled) {
    if (s.status === "rejected") {
      expect(s.reason).toBeInstanceOf(VfioError);
      expect(["ECANCELED", "EIO"]).toContain((s.reason as VfioError).code);
    }
  }
  // Read from BAR0 by close() itself: vfio-pci resets the function when the device is opened again.
  const regs = nvme.shutdownRegisters!;
  expect((regs.csts >>> 2) & 3).toBe(2);
  expect((regs.cc >>> 14) & 3).toBe(1);
  nvme = await NvmeController.open(bdf, { queues: ["polled"] });
  using one = nvme.allocate(BLOCK);
  await nvme.read(BigInt(READS[0]!.lba), 1, one);
  expect(equalBytes(one.bytes.subarray(0, BLOCK), rangePattern(TAG_READ, READS[0]!.lba, 1))).toBe(true);
});
