/**
 * Huge pages for DMA buffers: which sizes exist, whether enough are free,
 * and the mmap(2) flags that ask for them. A buffer on huge pages lets the
 * IOMMU map it with superpages (fewer IOTLB misses) and pins fewer pages.
 */
import { readOptional, hostPath, type HostOptions } from "../host/sysfs.ts";
import { MAP_HUGE_SHIFT, MAP_HUGETLB } from "../sys/constants.ts";

/** The huge page sizes a DmaBuffer can ask for. */
export type HugePageSize = "2M" | "1G";

/** Bytes and log2 of each size (the log2 goes into the mmap flags). */
export const HUGE_PAGES: Readonly<Record<HugePageSize, { bytes: number; shift: number }>> = {
  "2M": { bytes: 2 << 20, shift: 21 },
  "1G": { bytes: 1 << 30, shift: 30 },
};

/** mmap(2) flags for anonymous memory on huge pages of `size`: MAP_HUGETLB | log2(size) << MAP_HUGE_SHIFT. */
export function hugePageMmapFlags(size: HugePageSize): number {
  return MAP_HUGETLB | (HUGE_PAGES[size].shift << MAP_HUGE_SHIFT);
}

/** The sysfs folder of a huge page size, e.g. `/sys/kernel/mm/hugepages/hugepages-2048kB`. */
export function hugePageDir(size: HugePageSize, host?: HostOptions): string {
  return hostPath(host, `sys/kernel/mm/hugepages/hugepages-${HUGE_PAGES[size].bytes / 1024}kB`);
}

/**
 * Why `count` huge pages of `size` cannot be had right now, or undefined when
 * they can: reads `free_hugepages` minus `resv_hugepages` (pages promised to
 * other mappings) from sysfs.
 */
export function hugePageShortage(size: HugePageSize, count: number, host?: HostOptions): string | undefined {
  const dir = hugePageDir(size, host);
  const free = readOptional(`${dir}/free_hugepages`);
  if (free === undefined) return `this host has no ${size} huge pages (${dir} does not exist)`;
  const available = Number(free) - Number(readOptional(`${dir}/resv_hugepages`) ?? 0);
  if (available >= count) return undefined;
  const total = Number(readOptional(`${dir}/nr_hugepages`) ?? 0);
  return `${Math.max(available, 0)} free ${size} huge pages, ${count} needed: reserve more with \`echo ${total + count - Math.max(available, 0)} > ${dir}/nr_hugepages\` (as root)`;
}
