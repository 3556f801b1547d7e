/**
 * A VFIO group (`/dev/vfio/N` or `/dev/vfio/noiommu-N`): the unit of
 * isolation the kernel hands to userspace, and the way to a device fd.
 */
import { VfioError, invalidArgument } from "../support/errors.ts";
import { O_RDWR } from "../sys/constants.ts";
import { openPath } from "../sys/fd.ts";
import { OwnedFd } from "../sys/owned-fd.ts";
import * as V from "../uapi/vfio.ts";
import { SIZEOF } from "../uapi/layout.ts";
import { argszBuffer, decodeGroupStatus, type GroupStatus } from "../uapi/structs.ts";
import { normalizeBdf } from "../host/bdf.ts";
import { groupDevicePath, iommuGroupOf, notViableError } from "../host/groups.ts";
import { pciDeviceInfo } from "../host/pci.ts";
import type { HostOptions } from "../host/sysfs.ts";
import { Device, type DeviceHandle } from "../device/device.ts";
import { PciDevice, type PciDeviceOptions } from "../device/pci-device.ts";
import { msiIsolationAdvice } from "../host/isolation-advice.ts";
import { runAll } from "../sys/teardown.ts";
import { WeakMembers } from "../support/weak-members.ts";
import type { Hints } from "../sys/check.ts";
import { oneOf, optionsArg } from "../support/args.ts";
import { show } from "../support/format.ts";

/** What a group needs from the container it joins (the container hands it over in addGroup). */
export interface ContainerLink {
  /** The container's fd, for VFIO_GROUP_SET_CONTAINER. */
  fd(): number;
  /** The container's IOMMU type now (evidence of MSI isolation for the group's devices). */
  iommuType(): string | undefined;
  /** The group left the container (closed or detached). */
  left(group: Group): void;
}

/** @internal Attaches a group to a container's link (VFIO_GROUP_SET_CONTAINER); used by Container. */
export let attachGroup: (group: Group, link: ContainerLink) => void;

/**
 * Hints for attaching a group to an IOMMU (VFIO_SET_IOMMU, and
 * SET_CONTAINER once the IOMMU is set), the EPERM one from this host's
 * evidence.
 */
export function attachHints(host: HostOptions = {}): Hints {
  return {
    EPERM: msiIsolationAdvice(host.root),
    EBUSY: "The group is already attached to a container (in this or another process); close that first.",
    ENODEV: "No IOMMU backend accepted the group: load vfio_iommu_type1 (modprobe vfio_iommu_type1).",
    EINVAL: "The container's IOMMU type does not fit this group (its IOMMU cannot be programmed the same way as the container's other groups'): use a separate container.",
  };
}

/** Options of {@link Group.open}. */
export interface GroupOpenOptions extends HostOptions {}

/** Options of {@link Group.openDevice}. */
export interface DeviceOpenOptions {
  /** The VF token (a UUID) shared by a PF driver and its VFs' users, if the PF requires one. */
  vfToken?: string;
}

/**
 * An open VFIO group. Usually obtained from {@link Container.addGroup}.
 * Closing it closes its devices first and detaches it from its container.
 */
export class Group implements Disposable {
  readonly #fd: OwnedFd;
  readonly #host: HostOptions;
  #link: ContainerLink | undefined;
  readonly #devices = new WeakMembers<Device>(); // a dropped device stays collectable
  /** The IOMMU group number. */
  readonly id: number;
  /** True for a `/dev/vfio/noiommu-N` group (no IOMMU: no isolation, no DMA mapping). */
  readonly noiommu: boolean;

  private constructor(fd: OwnedFd, id: number, noiommu: boolean, host: HostOptions) {
    this.#fd = fd;
    this.id = id;
    this.noiommu = noiommu;
    this.#host = host;
  }

  /**
   * Opens a group by number or by the PCI address of one of its devices, and
   * checks it is viable. Internally this calls open(2) and VFIO_GROUP_GET_STATUS.
   */
  static open(groupOrBdf: number | string, options: GroupOpenOptions = {}): Group {
    const bdf = typeof groupOrBdf === "string" ? normalizeBdf(groupOrBdf) : undefined;
    const id = bdf === undefined ? (groupOrBdf as number) : iommuGroupOf(bdf, options);
    const path = nodeOf(id, bdf, options);
    const fd = openPath(path, O_RDWR, "open group", {
      ENOENT: bdf
        ? notBoundHint(bdf, options)
        : `Group ${id} has no VFIO node: bind its devices to vfio-pci (bunx bun-vfio bind <bdf>) and check that vfio-pci is loaded.`,
      EACCES: `Permission denied on ${path}: run as root, or chown the node to your user (udev rule).`,
      EBUSY: `Group ${id} is already open (by QEMU, another process, or another Group object here): close it first.`,
    });
    const group = new Group(new OwnedFd(fd, path, "group"), id, path.includes("noiommu-"), options);
    const status = group.status();
    if (!status.viable) {
      group.close();
      throw notViableError("VFIO_GROUP_GET_STATUS", path, id, options);
    }
    return group;
  }

  /** The group's fd (escape hatch for raw ioctls and hot reset). Throws after close. */
  get unsafeFd(): number {
    return this.#fd.get("unsafeFd");
  }

  /** The group node's path. */
  get path(): string {
    return this.#fd.path;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#fd.closed;
  }

  /** Where sysfs is read for this group (`/` unless testing). */
  get host(): HostOptions {
    return this.#host;
  }

  /** True while attached to a container. */
  get attached(): boolean {
    return this.#link !== undefined;
  }

  /** Whether the group is viable and attached. Internally this calls VFIO_GROUP_GET_STATUS. */
  status(): GroupStatus {
    const buf = argszBuffer(SIZEOF.vfio_group_status);
    this.#fd.ioctl("VFIO_GROUP_GET_STATUS", V.VFIO_GROUP_GET_STATUS, buf, {
      ENODEV: "Every device of the group was removed (hot-unplug or unbind): the group is gone; close it.",
    });
    return decodeGroupStatus(buf);
  }

  /** @internal Container.addGroup: VFIO_GROUP_SET_CONTAINER with the container's fd. */
  static {
    attachGroup = (group, link) => group.#attach(link);
  }

  #attach(link: ContainerLink): void {
    if (this.#link === link) return;
    const op = "VFIO_GROUP_SET_CONTAINER";
    this.#fd.get(op);
    if (this.#link !== undefined || this.status().containerSet) {
      throw new VfioError({ op, code: "EBUSY", errno: 16, path: this.path, detail: `group ${this.id} is already attached to a container`, hint: "A group belongs to one container at a time: close the other container (or group.unsetContainer()) first." });
    }
    const arg = new Int32Array([link.fd()]);
    this.#fd.ioctl(op, V.VFIO_GROUP_SET_CONTAINER, new Uint8Array(arg.buffer), attachHints(this.#host));
    this.#link = link;
  }

  /**
   * Detaches the group from its container; its devices must be closed first.
   * Internally this calls VFIO_GROUP_UNSET_CONTAINER.
   */
  unsetContainer(): void {
    const link = this.#link;
    if (link === undefined) return;
    this.#fd.ioctl("VFIO_GROUP_UNSET_CONTAINER", V.VFIO_GROUP_UNSET_CONTAINER, 0, {
      EBUSY: "The group still has open devices: close them before detaching the group.",
    });
    this.#link = undefined;
    link.left(this);
  }

  /**
   * Opens a device of this group by its name (the PCI address for vfio-pci).
   * Internally this calls VFIO_GROUP_GET_DEVICE_FD.
   */
  openDevice(name: string, options: DeviceOpenOptions = {}): Device {
    const device = new Device(this.#handle(name, optionsArg("openDevice", options, this.path)));
    this.#devices.add(device);
    return device;
  }

  /** Opens a PCI device of this group by its address. Internally this calls VFIO_GROUP_GET_DEVICE_FD. */
  openPciDevice(bdf: string, options: DeviceOpenOptions & PciDeviceOptions = {}): PciDevice {
    const opts = optionsArg("openPciDevice", options, this.path);
    if (opts.policy !== undefined) oneOf("openPciDevice", "policy", opts.policy, ["auto", "strict", "force"], this.path);
    const device = new PciDevice(this.#handle(normalizeBdf(bdf), opts), this.#host, opts);
    this.#devices.add(device);
    return device;
  }

  /** The device fd for `name`, wrapped as the narrow handle devices are built from. */
  #handle(name: string, options: DeviceOpenOptions): DeviceHandle {
    const op = "VFIO_GROUP_GET_DEVICE_FD";
    this.#fd.get(op);
    if (typeof name !== "string" || name.length === 0) throw invalidArgument(op, `device name ${show(name)} is not a string`, "Pass the device's PCI address.", this.path);
    const link = this.#link;
    if (link === undefined) {
      throw new VfioError({ op, code: "EINVAL", errno: 22, path: this.path, detail: "the group is not attached to a container", hint: "Use container.addGroup(...) before opening devices." });
    }
    if (options.vfToken !== undefined && (typeof options.vfToken !== "string" || !/^[0-9a-f-]{36}$/i.test(options.vfToken))) {
      throw invalidArgument(op, `vfToken ${show(options.vfToken)} is not a UUID`, "Pass the VF token as a UUID string (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).", this.path);
    }
    const arg = options.vfToken ? `${name} vf_token=${options.vfToken}` : name;
    const fd = this.#fd.ioctl(op, V.VFIO_GROUP_GET_DEVICE_FD, new TextEncoder().encode(`${arg}\0`), {
      ENODEV: `No device named ${name} in group ${this.id}: check the address (bunx bun-vfio list shows groups).`,
      EINVAL: `The kernel refused ${name}: a VF of a PF bound to vfio-pci may need options.vfToken, or the name is malformed.`,
      EACCES: `${name} needs a VF token (options.vfToken) matching the one its PF's user set.`,
      EBUSY: `${name} is already open elsewhere, or is being removed.`,
    });
    const devices = this.#devices;
    return {
      fd, name, path: `${this.path}:${name}`,
      attachment: () => ({ iommuType: link.iommuType() }),
      closed: (device) => void devices.delete(device),
      closeAll: () => runAll(devices.values().filter((d) => d.name === name).map((d) => () => d.close())),
    };
  }

  /**
   * Closes the group's devices, then the group fd, which detaches it from
   * its container (the kernel does that on release; an explicit
   * UNSET_CONTAINER would fail after a hot-unplug). Every step runs even if
   * one fails. Idempotent.
   */
  close(): void {
    if (this.#fd.closed) return;
    const link = this.#link;
    this.#link = undefined;
    runAll([
      ...this.#devices.values().map((d) => () => d.close()),
      () => this.#fd.close(),
      () => link?.left(this),
    ]);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** The group's /dev/vfio node; when it is missing, say why in terms of the device the user named. */
function nodeOf(id: number, bdf: string | undefined, options: HostOptions): string {
  try {
    return groupDevicePath(id, options);
  } catch (err) {
    if (!(err instanceof VfioError) || bdf === undefined) throw err;
    throw new VfioError({ op: "open group", errno: err.errno, code: err.code, path: err.path, detail: `no VFIO node for IOMMU group ${id}`, hint: notBoundHint(bdf, options) });
  }
}

function notBoundHint(bdf: string, options: HostOptions): string {
  try {
    const driver = pciDeviceInfo(bdf, options).driver;
    if (driver && driver !== "vfio-pci") return `${bdf} is bound to ${driver}, not vfio-pci: run \`bunx bun-vfio bind ${bdf}\` (as root).`;
    if (!driver) return `${bdf} has no driver: run \`bunx bun-vfio bind ${bdf}\` (as root; modprobe vfio-pci first).`;
  } catch {
    // fall through to the generic hint
  }
  return `No VFIO node for ${bdf}'s group: bind it to vfio-pci (bunx bun-vfio bind ${bdf}) and check that vfio-pci is loaded.`;
}
