/**
 * The x86-64 guest kernel: the sandbox's own build (sandbox/kernel-build.ts)
 * by default, Debian's prebuilt one with `BUN_VFIO_KERNEL=debian`, or the
 * user's own with `BUN_VFIO_KERNEL=/path/to/bzImage` (and `BUN_VFIO_MODULES`
 * when it needs modules).
 */
import { existsSync } from "node:fs";
import { basename } from "node:path";
import { bzImageVersion } from "./bzimage.ts";
import { ensureDebianKernel } from "./debian-kernel.ts";
import { ensureBuiltKernel, findBuiltKernel } from "./kernel-build.ts";
import type { GuestKernel } from "./kernel-types.ts";
import { SandboxError, say } from "./log.ts";

export { bzImageVersion } from "./bzimage.ts";
export type { GuestKernel } from "./kernel-types.ts";

/** How to use another kernel, shown when the build is impossible. */
export const KERNEL_ENV_HINT =
  "or point the sandbox at a kernel with BUN_VFIO_KERNEL=/path/to/bzImage (plus BUN_VFIO_MODULES=/lib/modules/<version> " +
  "if 9p, vfio, vfio_iommu_type1 and vfio-pci are modules; intel-iommu with IRQ remapping must be built in)";

/** `BUN_VFIO_KERNEL` value that selects Debian's prebuilt bookworm-backports kernel. */
export const DEBIAN_KERNEL = "debian";
/** `BUN_VFIO_KERNEL=built`: always the sandbox's own kernel, built when not cached (the test runner sets it: one kernel for every x86 profile). */
export const BUILT_KERNEL = "built";

/**
 * The kernel named by `BUN_VFIO_KERNEL` (a bzImage) and `BUN_VFIO_MODULES`
 * (its `/lib/modules/<version>` folder), or null when `BUN_VFIO_KERNEL` is
 * unset or `debian`. Without `BUN_VFIO_MODULES`, `/lib/modules/<v>` is
 * tried for a kernel file named `vmlinuz-<v>`; failing that, the kernel
 * must have everything built in (as the sandbox's own build has).
 */
export function kernelFromEnv(): GuestKernel | null {
  const vmlinuz = process.env.BUN_VFIO_KERNEL;
  if (!vmlinuz || vmlinuz === DEBIAN_KERNEL || vmlinuz === BUILT_KERNEL) {
    if (!vmlinuz && process.env.BUN_VFIO_MODULES) throw new SandboxError("BUN_VFIO_MODULES is set but BUN_VFIO_KERNEL is not: set both");
    return null;
  }
  if (!existsSync(vmlinuz)) throw new SandboxError(`BUN_VFIO_KERNEL=${vmlinuz} does not exist`);
  let modulesDir = process.env.BUN_VFIO_MODULES;
  if (!modulesDir) {
    const m = /^vmlinuz-(.+)$/.exec(basename(vmlinuz));
    if (m && existsSync(`/lib/modules/${m[1]}`)) modulesDir = `/lib/modules/${m[1]}`;
    else {
      const version = bzImageVersion(vmlinuz) ?? basename(vmlinuz);
      say(`BUN_VFIO_KERNEL=${vmlinuz} without BUN_VFIO_MODULES: loading no modules (9p and VFIO must be built in)`);
      return { version, vmlinuz, modulesDir: "", builtIn: true };
    }
  }
  if (!existsSync(modulesDir)) throw new SandboxError(`BUN_VFIO_MODULES=${modulesDir} does not exist`);
  return { version: bzImageVersion(vmlinuz) ?? basename(modulesDir), vmlinuz, modulesDir };
}

/**
 * Return the x86-64 guest kernel: `BUN_VFIO_KERNEL`/`BUN_VFIO_MODULES` when
 * set, Debian's download with `BUN_VFIO_KERNEL=debian`, the sandbox's own
 * build (see {@link ensureBuiltKernel}) with `BUN_VFIO_KERNEL=built` or
 * `needBuilt` (profiles that need iommufd or no-IOMMU mode). Otherwise the
 * own build when it is cached, else Debian's prebuilt kernel, so a first
 * `npm start` or sandbox run is a download, not a 4-minute build.
 * @throws SandboxError with a fix when no kernel can be had
 */
export async function ensureKernel(options: { needBuilt?: boolean } = {}): Promise<GuestKernel> {
  const fromEnv = kernelFromEnv();
  if (fromEnv) return fromEnv;
  const asked = process.env.BUN_VFIO_KERNEL;
  if (asked === DEBIAN_KERNEL) return ensureDebianKernel();
  if (asked === BUILT_KERNEL || options.needBuilt) return ensureBuiltKernel();
  const cached = await findBuiltKernel(true);
  if (cached) return cached;
  say(`no kernel of the sandbox's own built yet: using Debian's prebuilt one (a download, no iommufd); BUN_VFIO_KERNEL=${BUILT_KERNEL}, npm test or the iommufd/noiommu profiles build it (about 4 min on 2 cores, once)`);
  return ensureDebianKernel();
}
