/**
 * The guest platform's own ground truth, read from the kernel (procfs,
 * sysfs, the device tree) and from documented constants, never from the
 * library: page size, MSI controller, interrupt chip names, IOMMU fault lines.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { PROFILES, type Profile } from "../../sandbox/profiles.ts";

/** The profile the guest was booted with (undefined outside the sandbox). */
export const guestProfile: Profile | undefined = PROFILES[process.env.BUN_VFIO_PROFILE ?? ""];

/** True in an arm64 guest (the kernel's own `uname -m`, from /proc). */
export const isArm64 = readFileSync("/proc/sys/kernel/arch", "utf8").trim() === "aarch64";

/** The kernel's page size: `KernelPageSize` of this process's first mapping in /proc/self/smaps. */
export function kernelPageSize(): number {
  const m = /^KernelPageSize:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/smaps", "utf8"));
  if (!m) throw new Error("no KernelPageSize in /proc/self/smaps");
  return Number(m[1]) * 1024;
}

/** Compatible strings of the GIC's child nodes in the device tree (`arm,gic-v3-its`, `arm,gic-v2m-frame`). */
export function gicChildren(): string[] {
  const base = "/sys/firmware/devicetree/base";
  if (!existsSync(base)) return [];
  const out: string[] = [];
  for (const node of readdirSync(base).filter((n) => n.startsWith("intc"))) {
    for (const child of readdirSync(`${base}/${node}`)) {
      const c = `${base}/${node}/${child}/compatible`;
      if (existsSync(c)) out.push(...readFileSync(c, "latin1").split("\0").filter(Boolean));
    }
  }
  return out;
}

/** Chip names (column after the per-CPU counts) of numbered lines in /proc/interrupts. */
export function interruptChips(): string[] {
  const ncpu = readFileSync("/proc/interrupts", "utf8").split("\n")[0]!.trim().split(/\s+/).length;
  return readFileSync("/proc/interrupts", "utf8").split("\n")
    .filter((l) => /^\s*\d+:/.test(l))
    .map((l) => l.trim().split(/\s+/)[ncpu + 1]!);
}

/**
 * The chip-name prefix the kernel (6.12) gives a PCI device's MSI/MSI-X
 * vectors on this platform, as /proc/interrupts shows them: `IR-PCI-MSI`
 * (x86 with interrupt remapping), `PCI-MSI` (x86 without), `ITS-PCI-MSI`
 * (arm64 GICv3 ITS per-device domains), `GICv2m-PCI-MSI` (arm64 GICv2m).
 */
export function msiChipPattern(): RegExp {
  if (!isArm64) return guestProfile?.intremap ? /^IR-PCI-MSI/ : /^PCI-MSI/;
  return guestProfile?.arm64?.msi === "its" ? /^ITS-PCI-MSI/ : /^GICv2m-PCI-MSI/;
}

/** The arm64 SMMUv3's software MSI window (drivers/iommu/arm/arm-smmu-v3: MSI_IOVA_BASE 0x8000000, MSI_IOVA_LENGTH 0x100000). */
export const SMMU_MSI_WINDOW = { start: 0x8000000n, end: 0x80fffffn, type: "msi" } as const;
/** The x86 interrupt window every VT-d group reserves (0xfee00000-0xfeefffff, type msi). */
export const X86_MSI_WINDOW = { start: 0xfee00000n, end: 0xfeefffffn, type: "msi" } as const;
