import { existsSync, readdirSync } from "node:fs";
import { VfioError } from "../support/errors.ts";
import { normalizeBdf } from "./bdf.ts";
import { noSuchDevice, pciDeviceExists } from "./pci.ts";
import { hostError, hostPath, linkTargetName, pciDevicePath, readOptional, type HostOptions } from "./sysfs.ts";

/** One device in an IOMMU group and the driver it is bound to. */
export interface GroupMember {
  /** The device's sysfs name: a BDF for PCI devices. */
  readonly bdf: string;
  /** Bound driver name, `undefined` when unbound. */
  readonly driver: string | undefined;
}

/** Whether the kernel will hand this group to userspace, and if not, which devices stand in the way. */
export interface GroupViability {
  readonly group: number;
  /** True when every member is unbound or bound to a driver that leaves DMA to its owner. */
  readonly viable: boolean;
  readonly members: readonly GroupMember[];
  /** Members bound to a driver that uses the kernel DMA API; unbind them (or bind them to vfio-pci) first. */
  readonly blockers: readonly GroupMember[];
}

/**
 * Drivers other than VFIO drivers that declare `driver_managed_dma` in the
 * kernel (drivers/pci/pci-stub.c, drivers/pci/pcie/portdrv.c), so a device
 * bound to them does not claim the group's DMA ownership.
 */
export const DMA_NEUTRAL_DRIVERS: readonly string[] = ["pci-stub", "pcieport"];

/**
 * True for a driver that leaves the group usable by VFIO: vfio-pci and its
 * variant drivers (`mlx5_vfio_pci`, `nvgrace_gpu_vfio_pci`, ...), other VFIO
 * bus drivers (`vfio-platform`, `vfio-fsl-mc`, ...), pci-stub and pcieport.
 */
export function isDmaNeutralDriver(driver: string): boolean {
  return /vfio/i.test(driver) || DMA_NEUTRAL_DRIVERS.includes(driver);
}

const NOIOMMU_GROUP_NAME = "vfio-noiommu";

function groupDir(group: number, options?: HostOptions): string {
  return hostPath(options, "sys/kernel/iommu_groups", String(group));
}

function checkGroupNumber(op: string, group: number): void {
  if (!Number.isSafeInteger(group) || group < 0) {
    throw new VfioError({
      op,
      errno: 22,
      code: "EINVAL",
      detail: `${group} is not an IOMMU group number`,
      hint: "Pass the number from `iommuGroupOf(bdf)` or `ls /sys/kernel/iommu_groups`.",
    });
  }
}

/**
 * Why a device may have no `iommu_group` link. On arm64 (SMMU, device tree)
 * the kernel creates the link only when a driver probes the device, so an
 * unbound device has none yet: bind it (`bindToVfio`, which uses
 * driver_override + drivers_probe and needs no group), then look it up.
 */
function noGroupHint(hasDriver: boolean, arch: string = process.arch): string {
  const unbound = hasDriver ? "" : "The device has no driver: on arm64 the iommu_group link appears only once a driver probes it, so bind it first (bindToVfio(bdf)) and look the group up after. ";
  const enable = arch === "arm64"
    ? "Otherwise the device is not behind an IOMMU (SMMU) "
    : "Otherwise enable the IOMMU (intel_iommu=on / amd_iommu=on on the kernel command line) ";
  return `${unbound}${enable}or use noiommu (modprobe vfio enable_unsafe_noiommu_mode=1, no DMA protection).`;
}

/**
 * The IOMMU group number of a PCI device, from its `iommu_group` symlink.
 * Throws `ENODEV` when the device does not exist and `ENOENT` when it has
 * no group (IOMMU disabled, noiommu mode before vfio-pci is bound, or on
 * arm64 a device no driver has probed yet: bind it first).
 */
export function iommuGroupOf(bdf: string, options?: HostOptions): number {
  const address = normalizeBdf(bdf);
  if (!pciDeviceExists(address, options)) throw noSuchDevice("iommuGroupOf", address, pciDevicePath(options, address));
  const link = `${pciDevicePath(options, address)}/iommu_group`;
  const name = linkTargetName(link);
  if (name === undefined) {
    throw new VfioError({
      op: "iommuGroupOf",
      errno: 2,
      code: "ENOENT",
      path: link,
      detail: `${address} has no IOMMU group`,
      hint: noGroupHint(linkTargetName(`${pciDevicePath(options, address)}/driver`) !== undefined),
    });
  }
  return Number(name);
}

/**
 * The devices in an IOMMU group, from `/sys/kernel/iommu_groups/<group>/devices`,
 * each with its bound driver. Throws `ENOENT` for a group that does not exist.
 */
export function groupMembers(group: number, options?: HostOptions): GroupMember[] {
  checkGroupNumber("groupMembers", group);
  const dir = `${groupDir(group, options)}/devices`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    throw hostError("groupMembers", dir, err, "No such IOMMU group: list groups with `ls /sys/kernel/iommu_groups` or find a device's with `iommuGroupOf(bdf)`.");
  }
  return names.sort().map((bdf) => ({ bdf, driver: linkTargetName(`${dir}/${bdf}/driver`) }));
}

/**
 * True when the group is a VFIO noiommu group: the kernel names such groups
 * `vfio-noiommu` (drivers/vfio/group.c, vfio_noiommu_group_alloc) and their
 * device node `/dev/vfio/noiommu-<group>`.
 */
export function isNoiommuGroup(group: number, options?: HostOptions): boolean {
  checkGroupNumber("isNoiommuGroup", group);
  return readOptional(`${groupDir(group, options)}/name`) === NOIOMMU_GROUP_NAME;
}

/**
 * The VFIO device node of a group: `/dev/vfio/<group>`, or
 * `/dev/vfio/noiommu-<group>` for a noiommu group, whichever exists
 * (checked under the root). Throws `ENOENT` when neither exists, which
 * means no device of the group is bound to a VFIO driver yet.
 */
export function groupDevicePath(group: number, options?: HostOptions): string {
  checkGroupNumber("groupDevicePath", group);
  const plain = hostPath(options, "dev/vfio", String(group));
  const noiommu = hostPath(options, "dev/vfio", `noiommu-${group}`);
  const candidates = isNoiommuGroup(group, options) ? [noiommu, plain] : [plain, noiommu];
  const found = candidates.find((path) => existsSync(path));
  if (found !== undefined) return found;
  throw new VfioError({
    op: "groupDevicePath",
    errno: 2,
    code: "ENOENT",
    path: candidates[0],
    detail: `no VFIO device node for IOMMU group ${group}`,
    hint: "Bind the group's device to vfio-pci first (`bindToVfio(bdf)`, after `modprobe vfio-pci`).",
  });
}

/**
 * Applies the kernel's viability rule to a group without opening it. Since
 * Linux 5.19 VFIO_GROUP_GET_STATUS reports VIABLE when no device in the group
 * is bound to a driver that uses the kernel DMA API (drivers/vfio/group.c:
 * `iommu_group_dma_owner_claimed`); drivers opt out of that with
 * `driver_managed_dma`, which vfio-pci and its variants, pci-stub and
 * pcieport set. Unbound devices never block. (Kernels before 5.19 also
 * exempted every PCI bridge whatever its driver.)
 */
/**
 * The error for a device whose IOMMU group is not viable, naming the
 * blockers and the fix (type1's VFIO_GROUP_GET_STATUS, iommufd's EPERM bind).
 */
export function notViableError(op: string, path: string, group: number, options?: HostOptions, extra: { errno?: number; cause?: unknown; note?: string } = {}): VfioError {
  const { blockers } = groupViability(group, options);
  const who = blockers.map((b) => `${b.bdf} (driver ${b.driver})`).join(", ") || "an unknown device";
  return new VfioError({
    op, code: "ENOTVIABLE", path, errno: extra.errno, cause: extra.cause,
    detail: `group ${group} is not viable: ${who} is bound to a non-VFIO driver${extra.note ?? ""}`,
    hint: `Every device of IOMMU group ${group} must be bound to vfio-pci or unbound: bunx bun-vfio bind <bdf> for each of ${who}.`,
  });
}

export function groupViability(group: number, options?: HostOptions): GroupViability {
  const members = groupMembers(group, options);
  const blockers = members.filter((m) => m.driver !== undefined && !isDmaNeutralDriver(m.driver));
  return { group, viable: blockers.length === 0, members, blockers };
}
