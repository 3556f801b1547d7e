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

/** Kernel command line: serial console, intel-iommu, panic = exit, and the profile's module options. */
export function kernelCmdline(p: Profile, verbose: boolean): string {
  return [
    "console=ttyS0",
    "intel_iommu=on",
    "panic=-1",
    "rdinit=/init",
    ...(verbose ? [] : ["loglevel=4"]),
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
    "-device", `intel-iommu,intremap=${p.intremap ? "on" : "off"},caching-mode=on`,
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
