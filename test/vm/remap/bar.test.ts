/**
 * The mmap decision and BAR accessor on real vfio-pci with interrupt
 * remapping on (profile `remap`).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { VfioError, type PciDevice, type VfioSpace } from "../../../src/index.ts";
import { openTestSpace, TEST_BACKEND } from "../backend.ts";
import { barSizes, find, IDS, msixFromSysfs, readText } from "../ground-truth.ts";
import { interruptChips, isArm64, kernelPageSize, msiChipPattern } from "../platform.ts";

const nvmeBdf = find(IDS.nvme);
const e1000eBdf = find(IDS.e1000e);
const page = kernelPageSize();

let container: VfioSpace;
let nvme: PciDevice;
let e1000e: PciDevice;
beforeAll(() => {
  container = openTestSpace();
  nvme = container.openPciDevice(nvmeBdf);
  e1000e = container.openPciDevice(e1000eBdf);
});
afterAll(() => container.close());

describe("nvme BAR0 with interrupt remapping", () => {
  test("the host really remaps interrupts and refuses unsafe ones", () => {
    expect(readText("/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts")).toBe("N");
    // x86: IR-PCI-MSI chips; arm64: ITS-PCI-MSI per-device domains (the GICv3 ITS isolates by device ID).
    expect(interruptChips().some((c) => msiChipPattern().test(c))).toBe(true);
    expect(msiChipPattern().source).toBe(isArm64 ? "^ITS-PCI-MSI" : "^IR-PCI-MSI");
  });

  test("is mapped whole (rule 2, isolation attested), with the MSI-X table and PBA guarded", () => {
    const msix = msixFromSysfs(nvmeBdf)!;
    expect(msix.tableBar).toBe(0);
    const bar = nvme.bar(0);
    expect(bar.plan.rule).toBe(2);
    expect(bar.plan.isolation.level).toBe("attested");
    expect(bar.plan.ranges).toEqual([{ start: 0, end: barSizes(nvmeBdf)[0]!, access: "mmap", reason: expect.any(String) }]);
    expect(bar.plan.guarded).toEqual([
      { start: msix.tableOffset, end: msix.tableOffset + 16 * msix.vectors, what: "msix-table" },
      { start: msix.pbaOffset, end: msix.pbaOffset + 8 * Math.ceil(msix.vectors / 64), what: "msix-pba" },
    ]);
    expect(bar.plan.explain()).toContain("rule 2");
    expect(bar.plan.explain()).toContain("attested");
    // the first evidence line names the backend whose kernel check attested isolation
    expect(bar.plan.isolation.evidence[0]).toContain(TEST_BACKEND === "iommufd" ? "bound to iommufd" : "container while allow_unsafe_interrupts = N");
    bar.close();
  });

  test("registers read the same through the mapping and through pread", () => {
    const bar = nvme.bar(0);
    const region = nvme.region(0);
    expect(bar.read32(0x08)).toBe(0x10400);
    expect(bar.read64(0x00)).toBe(region.read64(0x00));
    expect(bar.read32(0x1c)).toBe(region.read32(0x1c)); // CSTS
    const bulk = bar.read(0, 0x40);
    expect(bulk).toEqual(region.read(0, 0x40));
    bar.close();
  });

  test("writes into the MSI-X table and PBA are refused unless the caller opts out", () => {
    const msix = msixFromSysfs(nvmeBdf)!;
    const bar = nvme.bar(0);
    const err = (() => { try { bar.write32(msix.tableOffset + 8, 0); } catch (e) { return e; } })() as VfioError;
    expect(err).toBeInstanceOf(VfioError);
    expect(err.code).toBe("EPERM");
    expect(err.hint).toContain("SET_IRQS");
    expect(() => bar.write(msix.pbaOffset - 4, new Uint8Array(8))).toThrow(VfioError);
    const open = nvme.bar(0, { allowMsixWrites: true });
    open.write32(msix.tableOffset + 12, 1); // vector 0's mask bit: harmless while MSI-X is disabled
    open.close();
    bar.close();
  });

  test("strict traps the MSI-X pages and still reads correct values on both sides", () => {
    const msix = msixFromSysfs(nvmeBdf)!;
    const size = barSizes(nvmeBdf)[0]!;
    const bar = nvme.bar(0, { policy: "strict" });
    const holeStart = Math.floor(msix.tableOffset / page) * page;
    expect(bar.plan.rule).toBe(4);
    // On 16 KiB pages the table's page is the whole 16 KiB BAR: nothing is left to map.
    expect(bar.plan.ranges.filter((r) => r.access === "mmap").map((r) => [r.start, r.end])).toEqual(holeStart > 0 ? [[0, holeStart]] : []);
    expect(bar.plan.trappedBytes).toBe(size - holeStart); // the table's page and the PBA's page
    expect(bar.read32(0x08)).toBe(0x10400); // mapped side
    expect(bar.read64(msix.pbaOffset)).toBe(0n); // trapped side: no vector pending, MSI-X disabled
    expect(bar.plan.explain()).toContain("strict");
    bar.close();
  });

  test("force gives the same whole-BAR plan as auto when MSIs are isolated", () => {
    const bar = nvme.bar(0, { policy: "force" });
    expect(bar.plan.rule).toBe(2);
    expect(bar.plan.trappedBytes).toBe(0);
    bar.close();
  });
});

describe("e1000e: the table lives in BAR3", () => {
  test("BAR0 holds no MSI-X structures and is mapped whole with no guard", () => {
    const msix = msixFromSysfs(e1000eBdf)!;
    expect(msix.tableBar).toBe(3);
    expect(msix.vectors).toBe(5);
    const bar0 = e1000e.bar(0);
    expect(bar0.plan.guarded).toEqual([]);
    expect(bar0.plan.mappedBytes).toBe(barSizes(e1000eBdf)[0]!);
    // STATUS (0x08) through the mapping equals pread
    expect(bar0.read32(0x08)).toBe(e1000e.region(0).read32(0x08));
    bar0.close();
  });

  test("BAR3 is mapped whole and guards the table", () => {
    const msix = msixFromSysfs(e1000eBdf)!;
    const bar3 = e1000e.bar(3);
    expect(bar3.plan.rule).toBe(2);
    expect(bar3.plan.guarded[0]).toEqual({ start: msix.tableOffset, end: msix.tableOffset + 16 * 5, what: "msix-table" });
    bar3.close();
  });
});
