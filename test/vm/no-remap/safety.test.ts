/**
 * Profile `no-remap` (intremap=off): the 2016 attack must be impossible
 * through the library without a loudly named opt-in. With
 * allow_unsafe_interrupts=1 the kernel lets userspace map the MSI-X table
 * (MSIX_MAPPABLE); the library refuses every path that would reach it: a
 * raw region mapping of the table's page, pwrite over the table (which
 * vfio-pci would drop silently), writes with `allowMsixWrites` where the
 * plan traps the table, and mask() (which writes the table) where the plan
 * traps it. Expected locations come from the sysfs config bytes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { Container, type PciDevice } from "../../../src/index.ts";
import { find, IDS, msixFromSysfs, readText } from "../ground-truth.ts";
import { vfioError } from "../../vfio-error.ts";

const e1000eBdf = find(IDS.e1000e);
const PARAM = "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts";
const page = 4096;

/** This process's mappings of VFIO device fds. */
function vfioMaps(): string[] {
  return readFileSync("/proc/self/maps", "utf8").split("\n").filter((l) => l.includes("vfio-device"));
}

describe("the EPERM hint says what the evidence shows", () => {
  test("intel_iommu=on is already set and no IR- chips exist: the hint says remapping is off, not 'enable intel_iommu'", () => {
    expect(readText(PARAM)).toBe("N");
    expect(readText("/proc/cmdline")).toContain("intel_iommu=on");
    using container = Container.open();
    const err = vfioError(() => container.addGroup(e1000eBdf));
    expect(err.code).toBe("EPERM");
    expect(err.hint).toContain("no IR- chips");
    expect(err.hint).toContain("allow_unsafe_interrupts");
    expect(err.hint).not.toContain("boot with intel_iommu=on");
  });
});

describe("the MSI-X table without isolation", () => {
  let container: Container;
  let dev: PciDevice;
  beforeAll(() => {
    writeFileSync(PARAM, "1");
    container = Container.open();
    dev = container.addGroup(e1000eBdf).openPciDevice(e1000eBdf);
    dev.enableMemory();
    dev.enableBusMaster();
  });
  afterAll(() => {
    container.close();
    writeFileSync(PARAM, "N");
  });

  test("the kernel would allow mapping it: MSIX_MAPPABLE on the table's BAR, and MSIs are not isolated", () => {
    const msix = msixFromSysfs(e1000eBdf)!;
    expect(dev.regionInfo(msix.tableBar).msixMappable).toBe(true);
    expect(dev.mmapPlan(msix.tableBar).isolation.level).toBe("none");
  });

  test("a raw region mapping of the table's page is refused (EPERM, naming the opt-in); nothing gets mapped", () => {
    const msix = msixFromSysfs(e1000eBdf)!;
    const before = vfioMaps().length;
    const tablePage = Math.floor(msix.tableOffset / page) * page;
    const err = vfioError(() => dev.region(msix.tableBar).map({ offset: tablePage, length: page }));
    expect(err.code).toBe("EPERM");
    expect(err.hint).toContain("unsafeMapMsixTable");
    expect(vfioError(() => dev.region(msix.tableBar).map()).code).toBe("EPERM");
    expect(vfioMaps().length).toBe(before);
    // the loudly named opt-in maps it (and nothing is written here)
    const unsafe = dev.region(msix.tableBar).map({ offset: tablePage, length: page, unsafeMapMsixTable: true });
    expect(vfioMaps().length).toBe(before + 1);
    unsafe.close();
    expect(vfioMaps().length).toBe(before);
  });

  test("pwrite over the table is refused instead of being dropped silently by vfio-pci", () => {
    const msix = msixFromSysfs(e1000eBdf)!;
    const err = vfioError(() => dev.region(msix.tableBar).write32(msix.tableOffset + 8, 0xef));
    expect(err.code).toBe("EPERM");
    expect(err.message).toContain("drops writes");
    // what the kernel does with reads there: all-ones
    expect(dev.region(msix.tableBar).read32(msix.tableOffset + 8)).toBe(0xffffffff);
  });

  test('policy "strict" with allowMsixWrites: the table is trapped, so a write is refused, not dropped', () => {
    const msix = msixFromSysfs(e1000eBdf)!;
    const bar = dev.bar(msix.tableBar, { policy: "strict", allowMsixWrites: true });
    expect(bar.plan.ranges.find((r) => r.start <= msix.tableOffset && r.end > msix.tableOffset)?.access).toBe("trap");
    expect(vfioError(() => bar.write32(msix.tableOffset + 8, 0xef)).code).toBe("EPERM");
    bar.close();
  });

  test("mask() would write the table: refused (EOPNOTSUPP) because the plan traps it", () => {
    using vectors = dev.msix.enable(1);
    const before = vfioMaps().length;
    const err = vfioError(() => vectors[0]!.mask());
    expect(err.code).toBe("EOPNOTSUPP");
    expect(err.message).toContain("isolation none");
    expect(vfioMaps().length).toBe(before);
  });
});
