/**
 * Smoke test of the sandbox itself, in every profile: the profile's devices
 * are bound as promised and interrupt remapping matches the profile.
 * Ground truth only: sysfs, /dev and /proc, never the library.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { getProfile } from "../../../sandbox/profiles.ts";
import { groupOf, reservedRegions } from "../ground-truth.ts";
import { gicChildren, interruptChips, kernelPageSize, msiChipPattern, SMMU_MSI_WINDOW } from "../platform.ts";

const inGuest = process.env.BUN_VFIO_SANDBOX === "1";
const PCI = "/sys/bus/pci/devices";

function read(path: string): string {
  return readFileSync(path, "utf8").trim();
}

function bdfsOf(vendor: string, device: string): string[] {
  return readdirSync(PCI).filter((b) => read(`${PCI}/${b}/vendor`) === `0x${vendor}` && read(`${PCI}/${b}/device`) === `0x${device}`);
}

describe.skipIf(!inGuest)(`sandbox profile ${process.env.BUN_VFIO_PROFILE}`, () => {
  const profile = getProfile(process.env.BUN_VFIO_PROFILE ?? "");

  for (const dev of profile.devices) {
    test(`${dev.name} (${dev.vendor}:${dev.device}) is ${dev.vfio ? "bound to vfio-pci with a /dev/vfio group node" : "left on its guest driver"}`, () => {
      const bdfs = bdfsOf(dev.vendor, dev.device);
      expect(bdfs.length).toBeGreaterThan(0);
      for (const bdf of bdfs) {
        const driver = existsSync(`${PCI}/${bdf}/driver`) ? basename(readlinkSync(`${PCI}/${bdf}/driver`)) : "(none)";
        const group = basename(readlinkSync(`${PCI}/${bdf}/iommu_group`));
        if (dev.vfio) {
          expect(driver).toBe("vfio-pci");
          expect(existsSync(profile.iommu === "none" ? `/dev/vfio/noiommu-${group}` : `/dev/vfio/${group}`)).toBe(true);
        } else {
          expect(driver).not.toBe("vfio-pci");
          expect(driver).not.toBe("(none)");
        }
      }
    });
  }

  test("/dev/vfio/vfio exists", () => {
    expect(existsSync("/dev/vfio/vfio")).toBe(true);
  });

  if (profile.iommu === "none") {
    test("no IOMMU at all: /sys/class/iommu is empty, no IR- chips, vfio's no-IOMMU mode is on", () => {
      expect(readdirSync("/sys/class/iommu")).toEqual([]);
      expect(read("/proc/interrupts")).not.toMatch(/\sIR-/);
      expect(read("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode")).toBe("Y");
    });
  } else if (!profile.arm64) {
    test(`interrupt remapping is ${profile.intremap ? "on (IR- chips)" : "off (no IR- chips)"} in /proc/interrupts`, () => {
      const chips = read("/proc/interrupts").split("\n").filter((l) => /^\s*\d+:/.test(l));
      expect(chips.length).toBeGreaterThan(0);
      const remapped = chips.filter((l) => /\sIR-/.test(l));
      if (profile.intremap) expect(remapped.length).toBeGreaterThan(0);
      else expect(remapped).toEqual([]);
    });

    test(`DMAR ecap IR bit (3) is ${profile.intremap ? "set" : "clear"}`, () => {
      const dmars = readdirSync("/sys/class/iommu").filter((d) => d.startsWith("dmar"));
      expect(dmars.length).toBeGreaterThan(0);
      for (const d of dmars) {
        const ecap = BigInt(`0x${read(`/sys/class/iommu/${d}/intel-iommu/ecap`)}`);
        expect((ecap >> 3n) & 1n).toBe(profile.intremap ? 1n : 0n);
      }
    });

    test("vfio_iommu_type1 starts with allow_unsafe_interrupts=N", () => {
      expect(read("/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts")).toBe("N");
    });
  } else {
    const arm = profile.arm64;
    const its = arm.msi === "its";
    test(`the kernel runs on ${arm.pageKiB} KiB pages (KernelPageSize in /proc/self/smaps)`, () => {
      expect(read("/proc/sys/kernel/arch")).toBe("aarch64");
      expect(kernelPageSize()).toBe(arm.pageKiB * 1024);
    });

    test(`the device tree's GIC has ${its ? "a GICv3 ITS and no GICv2m frame" : "a GICv2m frame and no ITS"}`, () => {
      const compat = gicChildren();
      expect(compat.includes("arm,gic-v3-its")).toBe(its);
      expect(compat.includes("arm,gic-v2m-frame")).toBe(!its);
    });

    test(`PCI MSI-X vectors (the virtio 9p transports) sit on ${its ? "ITS-PCI-MSIX" : "GICv2m-PCI-MSIX"} chips, none on x86 names`, () => {
      const chips = interruptChips();
      expect(chips.some((c) => msiChipPattern().test(c))).toBe(true);
      expect(chips.filter((c) => /^(IR-|DMAR)/.test(c))).toEqual([]);
    });

    test("one SMMUv3 in /sys/class/iommu, no Intel DMAR", () => {
      const units = readdirSync("/sys/class/iommu");
      expect(units.filter((u) => u.startsWith("smmu3."))).toHaveLength(1);
      expect(units.filter((u) => u.startsWith("dmar"))).toEqual([]);
    });

    test("every vfio group reserves exactly the SMMUv3 software MSI window (MSI_IOVA_BASE 0x8000000, 1 MiB)", () => {
      for (const dev of profile.devices.filter((d) => d.vfio)) {
        for (const bdf of bdfsOf(dev.vendor, dev.device)) {
          expect(reservedRegions(groupOf(bdf))).toEqual([SMMU_MSI_WINDOW]);
        }
      }
    });

    test(`vfio_iommu_type1 allow_unsafe_interrupts is ${its ? "N" : "Y (set by the profile: GICv2m cannot isolate)"}`, () => {
      expect(read("/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts")).toBe(its ? "N" : "Y");
    });
  }

  test("the results folder is writable", () => {
    const dir = process.env.BUN_VFIO_RESULTS;
    expect(dir).toBeTruthy();
    writeFileSync(`${dir}/.sandbox-smoke`, "ok");
    expect(read(`${dir}/.sandbox-smoke`)).toBe("ok");
  });
});
