/**
 * DMA memory without an IOMMU (no-IOMMU mode): the device uses physical
 * addresses, so a buffer must be physically contiguous and must never move.
 * Huge pages are both (hugetlb pages are neither swapped nor migrated by
 * compaction or NUMA balancing, unlike normal anonymous pages, which can
 * change their physical page under a device at any time; DPDK relies on the
 * same). Physical addresses come from `/proc/self/pagemap`, whose page frame
 * numbers the kernel shows only to CAP_SYS_ADMIN (Linux 4.2+).
 */
import { VfioError } from "../support/errors.ts";
import { hex } from "../support/format.ts";
import { MAP_ANONYMOUS, MAP_POPULATE, MAP_SHARED, O_RDONLY } from "../sys/constants.ts";
import { openPath } from "../sys/fd.ts";
import { OwnedFd } from "../sys/owned-fd.ts";
import { MappedMemory } from "../sys/mmio.ts";
import { pageSize } from "../sys/memory.ts";
import { check } from "../sys/check.ts";
import { sys } from "../sys/runtime.ts";
import { HUGE_PAGES, hugePageMmapFlags, hugePageShortage, type HugePageSize } from "./huge-pages.ts";

const PAGEMAP = "/proc/self/pagemap";
const PRESENT = 1n << 63n;
const PFN_MASK = (1n << 55n) - 1n;

/**
 * The physical address of each `stride`-sized piece of `[address, address+length)`,
 * from /proc/self/pagemap (one 8-byte entry per base page: bit 63 present,
 * bits 0-54 the page frame number).
 * @throws VfioError EPERM without CAP_SYS_ADMIN (the kernel then reports frame 0), EFAULT for a page not present
 */
export function physicalAddresses(address: bigint, length: number, stride: number): bigint[] {
  const base = BigInt(pageSize());
  const fd = new OwnedFd(openPath(PAGEMAP, O_RDONLY, "open pagemap", {
    ENOENT: "This kernel has no /proc/self/pagemap (CONFIG_PROC_PAGE_MONITOR): no-IOMMU DMA needs it to find physical addresses.",
  }), PAGEMAP, "pagemap");
  try {
    const entry = new Uint8Array(8);
    const out: bigint[] = [];
    for (let offset = 0; offset < length; offset += stride) {
      const va = address + BigInt(offset);
      const got = check(sys().pread(fd.get("pread"), entry, 8, (va / base) * 8n), "pread pagemap", PAGEMAP);
      if (got !== 8) throw new VfioError({ op: "pread pagemap", errno: 5, code: "EIO", path: PAGEMAP, detail: `short read (${got} bytes) at ${hex(va)}`, hint: "The pagemap entry could not be read." });
      const value = new DataView(entry.buffer).getBigUint64(0, true);
      const pfn = value & PFN_MASK;
      if ((value & PRESENT) === 0n) throw new VfioError({ op: "pread pagemap", errno: 14, code: "EFAULT", path: PAGEMAP, detail: `page ${hex(va)} is not present`, hint: "The buffer must be populated (MAP_POPULATE) before its physical address is read." });
      if (pfn === 0n) {
        throw new VfioError({ op: "pread pagemap", errno: 1, code: "EPERM", path: PAGEMAP, detail: "the kernel hid the page frame number (it shows it only to CAP_SYS_ADMIN)", hint: "No-IOMMU DMA needs physical addresses: run as root (CAP_SYS_ADMIN), as DPDK does in this mode." });
      }
      out.push(pfn * base + (va % base));
    }
    return out;
  } finally {
    fd.close();
  }
}

/** A no-IOMMU DMA buffer's memory: huge pages, contiguous, and where they are. */
export interface PhysicalBacking {
  memory: MappedMemory;
  pageSize: number;
  /** The bus address of byte 0 (the physical address). */
  physical: bigint;
}

/**
 * Huge-page memory for a no-IOMMU buffer of `size` bytes, checked to be
 * physically contiguous, below `limit` and aligned to `align`.
 * @throws VfioError ENOMEM when the huge pages are missing or not contiguous, ERANGE when they sit above `limit`
 */
export function physicalBacking(size: number, huge: HugePageSize, opts: { limit?: bigint; align: bigint; path: string }): PhysicalBacking {
  const op = "DmaBuffer.allocate";
  const page = HUGE_PAGES[huge].bytes;
  const length = Math.ceil(size / page) * page;
  const shortage = hugePageShortage(huge, length / page);
  if (shortage !== undefined) {
    throw new VfioError({
      op, errno: 12, code: "ENOMEM", path: opts.path, detail: `no-IOMMU DMA needs ${huge} huge pages: ${shortage}`,
      hint: "Without an IOMMU a buffer must be physically contiguous and must not move, which only huge pages guarantee: reserve them (nr_hugepages, or hugepages= on the kernel command line).",
    });
  }
  const memory = MappedMemory.mapAnonymous(length, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE | hugePageMmapFlags(huge), { op: "mmap(MAP_HUGETLB)", path: opts.path, noBackstop: true, ordering: "dma" });
  try {
    const starts = physicalAddresses(memory.address, length, page);
    const physical = starts[0]!;
    const broken = starts.findIndex((pa, i) => pa !== physical + BigInt(i * page));
    if (broken > 0) {
      throw new VfioError({
        op, errno: 12, code: "ENOMEM", path: opts.path, detail: `huge page ${broken} is at ${hex(starts[broken]!)}, not right after the one before (${hex(physical)} + ${hex(broken * page)}): the buffer is not physically contiguous`,
        hint: `Without an IOMMU a device sees one contiguous range: keep buffers within one ${huge} page, use 1G pages, or split the transfer into segments of one page each.`,
      });
    }
    if (opts.limit !== undefined && physical + BigInt(length) > opts.limit) {
      throw new VfioError({
        op, errno: 34, code: "ERANGE", path: opts.path, detail: `the buffer's physical address ${hex(physical)}+${hex(length)} is above the device's DMA limit ${hex(opts.limit)}`,
        hint: "Without an IOMMU the bus address is the physical address and cannot be chosen: reserve huge pages early at boot (hugepages= on the kernel command line, usually low memory) or widen the device's DMA mask.",
      });
    }
    if (physical % opts.align !== 0n) {
      throw new VfioError({ op, errno: 22, code: "EINVAL", path: opts.path, detail: `physical address ${hex(physical)} is not aligned to ${hex(opts.align)}`, hint: `Huge pages are aligned to their size (${huge}); ask for at most that alignment.` });
    }
    return { memory, pageSize: page, physical };
  } catch (err) {
    memory.close();
    throw err;
  }
}
