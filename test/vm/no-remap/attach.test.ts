/**
 * Profile `no-remap`: intel-iommu with intremap=off. Attaching must fail
 * with EPERM naming allow_unsafe_interrupts; once the admin allows unsafe
 * interrupts it works, and the mmap plan traps the MSI-X pages.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { Container, VfioError } from "../../../src/index.ts";
import { barSizes, find, IDS, msixFromSysfs, readText } from "../ground-truth.ts";

const nvmeBdf = find(IDS.nvme);
const PARAM = "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts";
const page = 4096;

afterAll(() => writeFileSync(PARAM, "N"));

describe("without interrupt remapping", () => {
  test("the guest has no IR- chips and the parameter is N", () => {
    expect(readText(PARAM)).toBe("N");
    expect(readText("/proc/interrupts")).not.toContain("IR-");
  });

  test("attaching a group fails with EPERM and a hint naming allow_unsafe_interrupts", () => {
    using container = Container.open();
    let err: unknown;
    try {
      container.addGroup(nvmeBdf);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VfioError);
    const e = err as VfioError;
    expect(e.code).toBe("EPERM");
    expect(e.op).toBe("VFIO_SET_IOMMU");
    expect(e.hint).toContain("allow_unsafe_interrupts");
    expect(container.groups).toEqual([]);
  });

  test("with allow_unsafe_interrupts=1 it attaches; the plan traps the MSI-X pages (verdict none)", () => {
    writeFileSync(PARAM, "1");
    expect(readText(PARAM)).toBe("Y");
    using container = Container.open();
    using group = container.addGroup(nvmeBdf);
    using dev = group.openPciDevice(nvmeBdf);
    const msix = msixFromSysfs(nvmeBdf)!;
    const size = barSizes(nvmeBdf)[0]!;
    const holeStart = Math.floor(msix.tableOffset / page) * page;
    const bar = dev.bar(0);
    expect(dev.regionInfo(0).msixMappable).toBe(true); // the kernel would allow it...
    expect(bar.plan.isolation.level).toBe("none"); // ...but nothing isolates MSIs here
    expect(bar.plan.rule).toBe(4);
    expect(bar.plan.ranges.filter((r) => r.access === "mmap").map((r) => [r.start, r.end])).toEqual([[0, holeStart]]);
    expect(bar.plan.trappedBytes).toBe(size - holeStart); // the table's page and the PBA's page
    const why = bar.plan.explain();
    expect(why).toContain("none");
    expect(why).toContain("allow_unsafe_interrupts = Y");
    // Registers on both sides of the hole: VS through the mapping, the PBA through pread.
    expect(bar.read32(0x08)).toBe(0x10400);
    expect(bar.read32(0x08)).toBe(dev.region(0).read32(0x08));
    expect(bar.read64(msix.pbaOffset)).toBe(0n);
    // The table itself is not readable through pread: vfio-pci answers 0xff.
    expect(bar.read32(msix.tableOffset)).toBe(0xffffffff);
    // force maps it anyway, and says it is unsafe
    const forced = dev.bar(0, { policy: "force" });
    expect(forced.plan.rule).toBe(2);
    expect(forced.plan.explain()).toMatch(/unsafe|force/);
  });
});
