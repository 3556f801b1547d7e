/**
 * The IOMMU backend the guest suites run over: `$BUN_VFIO_BACKEND`, set by
 * the profile (`iommufd` in the iommufd profile), type1 otherwise. Suites
 * open their devices through {@link openTestSpace}, so the same test files
 * exercise both backends.
 */
import { Container, openVfio, type VfioBackend, type VfioSpace } from "../../src/index.ts";
import type { IovaRange } from "../../src/uapi/structs.ts";

/** The backend of this run. */
export const TEST_BACKEND: VfioBackend = (process.env.BUN_VFIO_BACKEND as VfioBackend | undefined) || "type1";

/** A fresh space of the run's backend (close it, or `using`). */
export function openTestSpace(): VfioSpace {
  return openVfio({ backend: TEST_BACKEND });
}

/** The usable IOVA ranges as the kernel reports them: VFIO_IOMMU_GET_INFO (type1) or IOMMU_IOAS_IOVA_RANGES (iommufd). */
export function kernelIovaRanges(space: VfioSpace): IovaRange[] {
  return space instanceof Container ? space.iommuInfo().iovaRanges ?? [] : space.iovaRanges().ranges;
}
