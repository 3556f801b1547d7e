/**
 * The short human strings a plan uses. Kept in one place so that the same
 * fact is always worded the same way (adjacent ranges merge on equal reasons)
 * and tests can refer to them.
 */
import type { IsolationLevel } from "./types.ts";

/** Reason strings shown beside each range by `explain()`. */
export const REASON = {
  noMmapFlag: "no VFIO_REGION_INFO_FLAG_MMAP",
  mmapAllowed: "kernel allows mmap (VFIO_REGION_INFO_FLAG_MMAP)",
  insideSparse: "inside the kernel's sparse-mmap areas",
  outsideSparse: "outside the kernel's sparse-mmap areas",
  sparseUnaligned: "sparse-mmap area edge not page-aligned: partial page trapped",
  msixTable: "holds MSI-X table (vectors configured via VFIO_DEVICE_SET_IRQS)",
  msixPba: "holds MSI-X PBA",
  msixTableAndPba: "holds MSI-X table and PBA (vectors configured via VFIO_DEVICE_SET_IRQS)",
} as const;

/** Reason for a whole-BAR mapping under rule 2. */
export function msixMappableReason(level: IsolationLevel, isolated: boolean): string {
  return isolated
    ? `kernel advertises MSIX_MAPPABLE and MSIs are isolated (${level})`
    : `policy force: kernel advertises MSIX_MAPPABLE, MSIs not known to be isolated (${level})`;
}

/** Why MSI-X pages stay trapped when rule 2 did not apply. */
export function msixTrappedBecause(msixMappable: boolean, policy: string, level: IsolationLevel): string {
  if (!msixMappable) {
    const force = policy === "force" ? "; policy force cannot override the kernel" : "";
    return `the kernel does not advertise MSIX_MAPPABLE, so it will not map them (Linux < 4.16 or the driver forbids it)${force}`;
  }
  if (policy === "strict") return "policy strict never maps them";
  return level === "none" ? "MSIs are not isolated (none)" : `MSIs are not known to be isolated (${level})`;
}
