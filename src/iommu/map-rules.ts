/**
 * Why an IOMMU map request got EINVAL, in terms of the request: both
 * backends answer EINVAL for an unaligned range and for one outside the
 * usable IOVA ranges, and the user needs to know which.
 */
import { hex } from "../support/format.ts";
import type { IovaRange } from "../uapi/structs.ts";

/** What the backend requires of a mapping, and how to name it. */
export interface MapRules {
  /** IOVA and size must be multiples of this (no rule when 1 or less). */
  granule: bigint;
  /** "the IOMMU page size", "the IOAS alignment". */
  granuleName: string;
  /** The usable ranges (inclusive ends), or undefined when the kernel reports none. */
  ranges: readonly IovaRange[] | undefined;
  /** What else lies outside them, for the message. */
  outsideCauses: string;
  /** The allocator to use instead, for the message. */
  allocator: string;
}

/** The rule `[iova, iova+size)` breaks, as a hint, or undefined when it breaks neither. */
export function brokenMapRule(iova: bigint, size: bigint, rules: MapRules): string | undefined {
  const g = rules.granule;
  if (g > 1n && (iova % g !== 0n || size % g !== 0n)) return `iova ${hex(iova)} and size ${hex(size)} must be multiples of ${rules.granuleName} ${hex(g)}.`;
  const ranges = rules.ranges;
  if (ranges && !ranges.some((r) => iova >= r.start && iova + size - 1n <= r.end)) {
    const usable = ranges.map((r) => `${hex(r.start)}-${hex(r.end)}`).join(", ");
    return `IOVA ${hex(iova)}+${hex(size)} is outside the usable ranges (${usable}): ${rules.outsideCauses}. Use ${rules.allocator}.`;
  }
  return undefined;
}
