/**
 * The QEMU command line of a guest run.
 */
import type { Profile } from "./profiles.ts";
import { TAG_HOST, TAG_SHARE } from "./protocol.ts";
import { qmpArgs } from "./monitor.ts";

/** Inputs of {@link qemuArgs}. */
export interface QemuInputs {
  /** The `qemu-system-x86_64` binary. */
  qemu: string;
  /** Guest kernel image. */
  vmlinuz: string;
  /** Initramfs built by `ensureInitramfs`. */
  initramfs: string;
  /** Host folder shared writable with tag `share`. */
  shareDir: string;
  /** Host scratch folder (`{tmp}` in device arguments). */
  tmpDir: string;
  /** Print every kernel message on the console during boot. */
  verbose: boolean;
  /** Guest memory in MiB (default 2048). */
  memoryMiB?: number;
  /** Guest CPUs (default 2). */
  cpus?: number;
  /** Open a QMP socket here (profiles with `monitor: true`). */
  qmpSocket?: string;
}

/** Kernel command line: serial console, intel-iommu (x86, unless the profile has no IOMMU), panic = exit, the profile's kernel arguments and module options. */
export function kernelCmdline(p: Profile, verbose: boolean): string {
  return [
    ...(p.arm64 ? ["console=ttyAMA0"] : ["console=ttyS0", ...(p.iommu === "none" ? [] : ["intel_iommu=on"])]),
    "panic=-1",
    "rdinit=/init",
    ...(verbose ? [] : ["loglevel=4"]),
    ...(p.kernelArgs ?? []),
    ...(p.moduleOptions ?? []),
  ].join(" ");
}

/**
 * The full QEMU argv: q35 with a split irqchip, TCG (KVM guests die on
 * these hosts), an intel-iommu (caching mode, for VFIO inside the guest)
 * created before any other PCI device, the host's `/` read-only over 9p,
 * the share writable over 9p, then the profile's devices. `-no-reboot`
 * turns a guest reboot or panic into a QEMU exit.
 */
export function qemuArgs(p: Profile, i: QemuInputs): string[] {
  if (p.arm64) return qemuArgsArm64(p, i);
  const sub = (a: string): string => a.replaceAll("{tmp}", i.tmpDir);
  return [
    i.qemu,
    "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none", "-serial", "stdio",
    "-machine", "q35,kernel-irqchip=split",
    "-accel", "tcg,thread=multi",
    "-cpu", "max",
    "-smp", String(i.cpus ?? 2),
    "-m", String(i.memoryMiB ?? 2048),
    "-no-reboot",
    ...(p.iommu === "none" ? [] : ["-device", `intel-iommu,intremap=${p.intremap ? "on" : "off"},caching-mode=on`]),
    "-kernel", i.vmlinuz,
    "-initrd", i.initramfs,
    "-append", kernelCmdline(p, i.verbose),
    "-virtfs", `local,path=/,mount_tag=${TAG_HOST},security_model=none,readonly=on,multidevs=remap`,
    "-virtfs", `local,path=${i.shareDir},mount_tag=${TAG_SHARE},security_model=none,multidevs=remap`,
    ...(i.qmpSocket ? qmpArgs(i.qmpSocket) : []),
    ...(p.qemuExtra ?? []).map(sub),
    ...p.devices.flatMap((d) => d.qemu.map(sub)),
  ];
}

/**
 * The arm64 QEMU argv: `virt` with an emulated SMMUv3 in front of the PCIe
 * root complex, GICv3 (whose ITS isolates MSIs) or GICv2 (GICv2m frames, no
 * isolation); `-cpu max` (needed for 16 KiB pages) with the cheaper
 * implementation-defined pointer-authentication algorithm (2.5-3x faster
 * under TCG); the host's `/` read-only and the share over 9p; the devices.
 */
export function qemuArgsArm64(p: Profile, i: QemuInputs): string[] {
  const sub = (a: string): string => a.replaceAll("{tmp}", i.tmpDir);
  const gic = p.arm64!.msi === "its" ? "3" : "2";
  return [
    i.qemu,
    "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none", "-serial", "stdio",
    "-machine", `virt,gic-version=${gic},iommu=smmuv3`,
    "-accel", "tcg,thread=multi",
    "-cpu", "max,pauth-impdef=on",
    "-smp", String(i.cpus ?? 2),
    "-m", String(i.memoryMiB ?? 2048),
    "-no-reboot",
    "-kernel", i.vmlinuz,
    "-initrd", i.initramfs,
    "-append", kernelCmdline(p, i.verbose),
    "-virtfs", `local,path=/,mount_tag=${TAG_HOST},security_model=none,readonly=on,multidevs=remap`,
    "-virtfs", `local,path=${i.shareDir},mount_tag=${TAG_SHARE},security_model=none,multidevs=remap`,
    ...(i.qmpSocket ? qmpArgs(i.qmpSocket) : []),
    ...(p.qemuExtra ?? []).map(sub),
    ...p.devices.flatMap((d) => d.qemu.map(sub)),
  ];
}
