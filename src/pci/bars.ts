import { configRead32, PciConfigOffset, PciHeaderType, requireHeader } from "./config-space.ts";

/**
 * One Base Address Register slot as config space shows it. Size is not
 * here: config space holds it only behind the write-all-ones probe, which
 * this pure decoder never does; take it from the VFIO region info.
 */
export interface PciBar {
  /** Slot number, 0-5 (0-1 in a bridge header). */
  readonly index: number;
  /**
   * `"mem32"`, `"mem64"` (this slot and the next form one BAR), `"io"`, or
   * `"unused"`: the register reads 0, or it is the upper half of a 64-bit BAR
   * (then `upperHalfOf` is set). An implemented BAR not yet given an address
   * may also read 0; the VFIO region size (0 when absent) tells them apart.
   */
  readonly kind: "mem32" | "mem64" | "io" | "unused";
  readonly prefetchable: boolean;
  /** Bus address the BAR decodes, flag bits cleared; both halves for mem64. */
  readonly address: bigint;
  /** For the upper half of a 64-bit BAR: the index of its lower half. */
  readonly upperHalfOf?: number;
  /** The raw 32-bit register. */
  readonly raw: number;
}

// BAR low bits (PCI_BASE_ADDRESS_* in pci_regs.h).
const SPACE_IO = 0x1;
const MEM_TYPE_MASK = 0x6;
const MEM_TYPE_64 = 0x4;
const MEM_PREFETCH = 0x8;
const IO_ADDRESS_MASK = ~0x3;
const MEM_ADDRESS_MASK = ~0xf;

/** Number of BAR slots for a header type: 6 normal, 2 PCI bridge, 1 CardBus. */
export function barCount(headerType: number): number {
  return headerType === PciHeaderType.NORMAL ? 6 : headerType === PciHeaderType.BRIDGE ? 2 : 1;
}

/**
 * Decodes the BAR slots of a config-space dump. A 64-bit memory BAR takes
 * two slots: the first is `"mem64"` with the full address, the second is
 * `"unused"` with `upperHalfOf` naming the first. A 64-bit BAR in the last
 * slot (a broken device) gets an upper half of 0. Throws EINVAL for less
 * than the 64-byte header.
 */
export function decodeBars(bytes: Uint8Array): PciBar[] {
  requireHeader("decodeBars", bytes);
  const count = barCount(bytes[PciConfigOffset.HEADER_TYPE]! & 0x7f);
  const bars: PciBar[] = [];
  for (let index = 0; index < count; index++) {
    const raw = configRead32(bytes, PciConfigOffset.BASE_ADDRESS_0 + 4 * index);
    if (raw & SPACE_IO) {
      bars.push({ index, kind: "io", prefetchable: false, address: BigInt((raw & IO_ADDRESS_MASK) >>> 0), raw });
      continue;
    }
    const prefetchable = (raw & MEM_PREFETCH) !== 0;
    const low = BigInt((raw & MEM_ADDRESS_MASK) >>> 0);
    if ((raw & MEM_TYPE_MASK) !== MEM_TYPE_64) {
      bars.push({ index, kind: raw === 0 ? "unused" : "mem32", prefetchable, address: low, raw });
      continue;
    }
    const upperIndex = index + 1;
    const upper = upperIndex < count ? configRead32(bytes, PciConfigOffset.BASE_ADDRESS_0 + 4 * upperIndex) : 0;
    bars.push({ index, kind: "mem64", prefetchable, address: (BigInt(upper) << 32n) | low, raw });
    if (upperIndex < count) {
      bars.push({ index: upperIndex, kind: "unused", prefetchable: false, address: 0n, upperHalfOf: index, raw: upper });
      index++;
    }
  }
  return bars;
}
