/**
 * The generated bad-input campaign at the iommufd backend's own slots
 * (test/harness/bad-inputs.ts, IOMMUFD_CASES) against the real kernel: every
 * case a VfioError with a hint, the IOAS still serving, nothing leaked.
 */
import { expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { DmaBuffer, Iommufd } from "../../../src/index.ts";
import { find, IDS } from "../ground-truth.ts";
import { runIommufdCampaign } from "../../harness/bad-inputs.ts";
import { vfioError } from "../../vfio-error.ts";

test("every generated bad input to Iommufd and openVfio is a VfioError with a hint; nothing leaks", () => {
  const bdf = find(IDS.nvme);
  const fds = readdirSync("/proc/self/fd").length;
  const iommu = Iommufd.open();
  const dev = iommu.openPciDevice(bdf);
  const buffer = DmaBuffer.allocate(iommu, 4096);
  const result = runIommufdCampaign({ iommu, buffer });
  console.log(`iommufd bad-input campaign: ${result.cases} cases, ${result.vfioErrors} VfioErrors, ${result.findings.length} other outcomes`);
  expect(dev.bar(0).read32(0x08)).toBe(0x10400);
  // the buffer's mapping survived the campaign: the kernel still holds that IOVA
  expect(vfioError(() => iommu.mapDma({ vaddr: buffer.address, iova: buffer.iova, size: buffer.size })).code).toBe("EEXIST");
  iommu.close();
  expect(result.findings).toEqual([]);
  expect(result.vfioErrors).toBe(result.cases);
  expect(readdirSync("/proc/self/fd").length).toBe(fds);
});
