/**
 * What to tell a user whose host refused to attach a group because MSIs are
 * not isolated (VFIO_SET_IOMMU / SET_CONTAINER EPERM): say what the evidence
 * shows on this platform, not a generic recipe.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The parameter each backend checks before it lets a device in without MSI isolation. */
const UNSAFE_PARAM = { type1: "vfio_iommu_type1", iommufd: "iommufd" } as const;

/**
 * The EPERM hint for attaching a group (type1: VFIO_SET_IOMMU) or binding a
 * cdev (iommufd: VFIO_DEVICE_BIND_IOMMUFD), from /proc/cmdline,
 * /proc/interrupts and the IOMMU class under `root`.
 */
export function msiIsolationAdvice(root = "/", arch: string = process.arch, backend: keyof typeof UNSAFE_PARAM = "type1"): string {
  const UNSAFE = `\`echo 1 > /sys/module/${UNSAFE_PARAM[backend]}/parameters/allow_unsafe_interrupts\` (unsafe: the device can then send any interrupt)`;
  const read = (p: string) => {
    try {
      return readFileSync(join(root, p), "utf8");
    } catch {
      return "";
    }
  };
  const cmdline = read("/proc/cmdline");
  const interrupts = read("/proc/interrupts");
  if (arch === "arm64") {
    if (/GICv2m|v2m/i.test(interrupts)) return `This host's MSI controller is a GICv2m (seen in /proc/interrupts), which cannot isolate MSIs per device; a GICv3 ITS can. Use an ITS-based host, or accept the risk: ${UNSAFE}.`;
    return `No MSI isolation was found (no ITS MSI domain in /proc/interrupts): the MSI controller is not a GICv3 ITS (a GICv2m frame, or a GICv3 without ITS, lets any device send any MSI). Use a platform whose GIC has an ITS (QEMU virt: gic-version=3), or accept the risk: ${UNSAFE}.`;
  }
  const intel = existsSync(join(root, "/sys/class/iommu")) && /dmar/.test(safeList(join(root, "/sys/class/iommu")));
  const remapped = /\bIR-/.test(interrupts);
  if (/intremap=off|nointremap/.test(cmdline)) return `Interrupt remapping is disabled on the kernel command line (${/intremap=off/.test(cmdline) ? "intremap=off" : "nointremap"}): remove it, or accept the risk: ${UNSAFE}.`;
  if (intel && !remapped) return `An Intel IOMMU is present but /proc/interrupts shows no IR- chips: interrupt remapping is off (firmware, x2apic opt-out or intremap=off), so MSIs are not isolated. Enable it, or accept the risk: ${UNSAFE}.`;
  if (!intel && !/amd_iommu|intel_iommu=on/.test(cmdline)) return `No IOMMU with interrupt remapping is active: boot with intel_iommu=on (Intel) or amd_iommu=on (AMD), or accept the risk: ${UNSAFE}.`;
  return `The IOMMU does not isolate this device's MSIs (no interrupt remapping: a virtio-iommu, for example, has none): use an IOMMU with remapping, or accept the risk: ${UNSAFE}.`;
}

function safeList(dir: string): string {
  try {
    return readdirSync(dir).join(" ");
  } catch {
    return "";
  }
}
