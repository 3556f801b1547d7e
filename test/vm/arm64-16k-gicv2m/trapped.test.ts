/**
 * arm64, GICv2m (no MSI isolation), 16 KiB pages: type1 refuses groups
 * (EPERM) until allow_unsafe_interrupts=1; with it, isolation is `none`, so
 * the pages holding the MSI-X table and PBA are trapped. QEMU nvme's 16 KiB
 * BAR0 (table at 0x2000, PBA at 0x3000) is a single page: every register goes
 * through pread/pwrite, and the NVMe example still identifies the controller.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Container, type PciDevice } from "../../../src/index.ts";
import { barSizes, find, IDS, msixFromSysfs, readText } from "../ground-truth.ts";
import { kernelPageSize } from "../platform.ts";
import { checkNvmeRegisters, holeRanges, keepExplain, triples } from "../mmap-16k.ts";
import { vfioError } from "../../vfio-error.ts";

const ALLOW_UNSAFE = "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts";
const ROOT = join(import.meta.dir, "../../..");
const nvmeBdf = find(IDS.nvme);
const e1000eBdf = find(IDS.e1000e);
const page = kernelPageSize();

describe("type1 without MSI isolation", () => {
  test("allow_unsafe_interrupts=N: VFIO_SET_IOMMU is EPERM with a hint naming the GICv3 ITS, not intel_iommu", () => {
    writeFileSync(ALLOW_UNSAFE, "0");
    try {
      using c = Container.open();
      const err = vfioError(() => c.addGroup(nvmeBdf));
      expect(err.code).toBe("EPERM");
      expect(err.op).toBe("VFIO_SET_IOMMU");
      expect(err.hint).toContain("GICv3 ITS");
      expect(err.hint).toContain("GICv2m");
      expect(err.hint).not.toContain("intel_iommu");
    } finally {
      writeFileSync(ALLOW_UNSAFE, "1");
    }
    expect(readText(ALLOW_UNSAFE)).toBe("Y");
  });
});

describe("16 KiB pages, GICv2m, allow_unsafe_interrupts=Y", () => {
  let container: Container;
  let nvme: PciDevice;
  let e1000e: PciDevice;
  beforeAll(() => {
    container = Container.open();
    nvme = container.addGroup(nvmeBdf).openPciDevice(nvmeBdf);
    e1000e = container.addGroup(e1000eBdf).openPciDevice(e1000eBdf);
    nvme.enableMemory();
  });
  afterAll(() => container.close());

  test("auto: isolation none (GICv2m named); nvme BAR0 trapped whole: one 16 KiB page holds registers, table (0x2000) and PBA (0x3000)", () => {
    const m = msixFromSysfs(nvmeBdf)!;
    expect(page).toBe(16384);
    expect(barSizes(nvmeBdf)[0]).toBe(0x4000);
    expect([m.tableOffset, m.pbaOffset]).toEqual([0x2000, 0x3000]);
    const bar = nvme.bar(0);
    expect(bar.plan.isolation.level).toBe("none");
    expect(bar.plan.isolation.isolated).toBe(false);
    expect(triples(bar.plan.ranges)).toEqual(holeRanges(nvmeBdf, 0, page));
    expect(triples(bar.plan.ranges)).toEqual([[0, 0x4000, "trap"]]);
    expect(bar.plan.mappedBytes).toBe(0);
    const text = bar.plan.explain();
    expect(text).toContain("GICv2m");
    expect(text).toContain("allow_unsafe_interrupts = Y");
    keepExplain("arm64-16k-gicv2m-nvme-bar0", text);
    checkNvmeRegisters(nvme, bar);
    bar.close();
  });

  test("e1000e's MSI-X BAR: exactly the table's and PBA's pages trapped", () => {
    const m = msixFromSysfs(e1000eBdf)!;
    const bar = e1000e.bar(m.tableBar);
    expect(triples(bar.plan.ranges)).toEqual(holeRanges(e1000eBdf, m.tableBar, page));
    expect(bar.plan.trappedBytes).toBeGreaterThanOrEqual(page);
    bar.close();
  });

  test("force maps what the kernel allows (MSIX_MAPPABLE): nvme BAR0 whole", () => {
    const bar = nvme.bar(0, { policy: "force" });
    expect(triples(bar.plan.ranges)).toEqual([[0, 0x4000, "mmap"]]);
    bar.close();
  });
});

test("nvme-identify identifies the controller with BAR0 fully trapped (completion on MSI-X through GICv2m)", () => {
  const p = Bun.spawnSync(["bun", join(ROOT, "examples", "nvme-identify.ts")], { cwd: ROOT, stderr: "pipe", stdout: "pipe" });
  const out = p.stdout.toString() + p.stderr.toString();
  expect(out).toContain("NVMe 1.4.0");
  expect(out).toMatch(/serial\s+bunvfio0/);
  expect(out).toContain("completion interrupt on MSI-X vector 0 (1)");
  expect(p.exitCode).toBe(0);
}, 60_000);
