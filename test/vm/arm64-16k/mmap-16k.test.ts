/**
 * arm64, GICv3 ITS, 16 KiB pages: the mmap decision with MSIs isolated
 * (attested by type1 with allow_unsafe_interrupts=N), and under `strict`,
 * where QEMU nvme's 16 KiB BAR0 (table at 0x2000, PBA at 0x3000) is one
 * page and therefore trapped whole.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Container, type PciDevice } from "../../../src/index.ts";
import { barSizes, find, IDS, msixFromSysfs } from "../ground-truth.ts";
import { kernelPageSize } from "../platform.ts";
import { checkNvmeRegisters, holeRanges, keepExplain, triples } from "../mmap-16k.ts";

const nvmeBdf = find(IDS.nvme);
const e1000eBdf = find(IDS.e1000e);
const page = kernelPageSize();

let container: Container;
let nvme: PciDevice;
let e1000e: PciDevice;
beforeAll(() => {
  container = Container.open();
  nvme = container.addGroup(nvmeBdf).openPciDevice(nvmeBdf);
  e1000e = container.addGroup(e1000eBdf).openPciDevice(e1000eBdf);
  nvme.enableMemory();
  e1000e.enableMemory();
});
afterAll(() => container.close());

describe("16 KiB pages with the ITS", () => {
  test("the kernel's page size is 16 KiB; the IOMMU offers 16 KiB and 32 MiB pages", () => {
    expect(page).toBe(16384);
    const sizes = container.iommuInfo().pageSizes;
    expect(sizes & 0x4000n).toBe(0x4000n);
    expect(sizes & 0x2000000n).toBe(0x2000000n);
    expect(sizes & 0x1000n).toBe(0n);
  });

  test("nvme BAR0 is one page holding registers, table and PBA", () => {
    const m = msixFromSysfs(nvmeBdf)!;
    expect(barSizes(nvmeBdf)[0]).toBe(0x4000);
    expect([m.tableBar, m.tableOffset, m.pbaBar, m.pbaOffset]).toEqual([0, 0x2000, 0, 0x3000]);
  });

  test("auto: nvme BAR0 mapped whole (rule 2, attested, ITS named), table and PBA guarded", () => {
    const bar = nvme.bar(0);
    expect(bar.plan.rule).toBe(2);
    expect(bar.plan.isolation.level).toBe("attested");
    expect(triples(bar.plan.ranges)).toEqual([[0, 0x4000, "mmap"]]);
    expect(bar.plan.guarded.map((g) => g.what)).toEqual(["msix-table", "msix-pba"]);
    const text = bar.plan.explain();
    expect(text).toContain("page size 0x4000");
    expect(text).toContain("GICv3 ITS");
    expect(text).toMatch(/ITS MSI domains \(.*ITS-PCI-MSI/);
    keepExplain("arm64-16k-its-nvme-bar0", text);
    checkNvmeRegisters(nvme, bar);
    bar.close();
  });

  test("strict: the whole 16 KiB nvme BAR0 is trapped, and registers still read right", () => {
    const bar = nvme.bar(0, { policy: "strict" });
    expect(bar.plan.rule).toBe(4);
    expect(triples(bar.plan.ranges)).toEqual(holeRanges(nvmeBdf, 0, page));
    expect(triples(bar.plan.ranges)).toEqual([[0, 0x4000, "trap"]]);
    expect(bar.plan.mappedBytes).toBe(0);
    keepExplain("arm64-16k-strict-nvme-bar0", bar.plan.explain());
    checkNvmeRegisters(nvme, bar);
    bar.close();
  });

  test("e1000e's MSI-X BAR: whole under auto, the table's and PBA's pages trapped under strict", () => {
    const m = msixFromSysfs(e1000eBdf)!;
    const size = barSizes(e1000eBdf)[m.tableBar]!;
    const auto = e1000e.bar(m.tableBar);
    expect(auto.plan.rule).toBe(2);
    expect(triples(auto.plan.ranges)).toEqual([[0, size, "mmap"]]);
    auto.close();
    const strict = e1000e.bar(m.tableBar, { policy: "strict" });
    expect(strict.plan.rule).toBe(4);
    expect(triples(strict.plan.ranges)).toEqual(holeRanges(e1000eBdf, m.tableBar, page));
    expect(strict.plan.trappedBytes).toBeGreaterThanOrEqual(page);
    strict.close();
  });
});
