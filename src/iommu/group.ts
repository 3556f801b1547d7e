/**
 * A VFIO group (`/dev/vfio/N` or `/dev/vfio/noiommu-N`): the unit of
 * isolation the kernel hands to userspace, and the way to a device fd.
 */
import { VfioError } from "../errors.ts";
import { O_RDWR } from "../sys/libc.ts";
import { cString, openPath } from "../sys/fd.ts";
import { OwnedFd } from "../sys/owned-fd.ts";
import * as V from "../uapi/vfio.ts";
import { SIZEOF } from "../uapi/layout.ts";
import { argszBuffer, decodeGroupStatus, type GroupStatus } from "../uapi/structs.ts";
import { normalizeBdf } from "../host/bdf.ts";
import { groupDevicePath, groupViability, iommuGroupOf } from "../host/groups.ts";
import { pciDevice } from "../host/pci.ts";
import type { HostOptions } from "../host/sysfs.ts";
import { Device } from "../device/device.ts";
import { PciDevice } from "../device/pci-device.ts";
import { ATTACH_HINTS, type Container } from "./container.ts";

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
  #container: Container | undefined;
  readonly #devices = new Set<Device>();
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
      const { blockers } = groupViability(id, options);
      const who = blockers.map((b) => `${b.bdf} (driver ${b.driver})`).join(", ") || "an unknown device";
      throw new VfioError({
        op: "VFIO_GROUP_GET_STATUS", code: "ENOTVIABLE", path,
        detail: `group ${id} is not viable: ${who} is bound to a non-VFIO driver`,
        hint: `Every device of IOMMU group ${id} must be bound to vfio-pci or unbound: bunx bun-vfio bind <bdf> for each of ${who}.`,
      });
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

  /** The container this group is attached to, if any. */
  get container(): Container | undefined {
    return this.#container;
  }

  /** Whether the group is viable and attached. Internally this calls VFIO_GROUP_GET_STATUS. */
  status(): GroupStatus {
    const buf = argszBuffer(SIZEOF.vfio_group_status);
    this.#fd.ioctl("VFIO_GROUP_GET_STATUS", V.VFIO_GROUP_GET_STATUS, buf);
    return decodeGroupStatus(buf);
  }

  /**
   * Attaches the group to a container. Internally this calls VFIO_GROUP_SET_CONTAINER
   * (EPERM there means the container's IOMMU cannot isolate this group's MSIs).
   */
  setContainer(container: Container): void {
    if (this.#container === container) return;
    const arg = new Int32Array([container.unsafeFd]);
    this.#fd.ioctl("VFIO_GROUP_SET_CONTAINER", V.VFIO_GROUP_SET_CONTAINER, new Uint8Array(arg.buffer), ATTACH_HINTS);
    this.#container = container;
    container._track(this, true);
  }

  /**
   * Detaches the group from its container; its devices must be closed first.
   * Internally this calls VFIO_GROUP_UNSET_CONTAINER.
   */
  unsetContainer(): void {
    const container = this.#container;
    if (container === undefined) return;
    this.#fd.ioctl("VFIO_GROUP_UNSET_CONTAINER", V.VFIO_GROUP_UNSET_CONTAINER, 0, {
      EBUSY: "The group still has open devices: close them before detaching the group.",
    });
    this.#container = undefined;
    container._track(this, false);
  }

  /**
   * Opens a device of this group by its name (the PCI address for vfio-pci).
   * Internally this calls VFIO_GROUP_GET_DEVICE_FD.
   */
  openDevice(name: string, options: DeviceOpenOptions = {}): Device {
    return this.#open(name, options, (fd, path) => new Device(fd, name, path, this));
  }

  /** Opens a PCI device of this group by its address. Internally this calls VFIO_GROUP_GET_DEVICE_FD. */
  openPciDevice(bdf: string, options: DeviceOpenOptions = {}): PciDevice {
    const name = normalizeBdf(bdf);
    return this.#open(name, options, (fd, path) => new PciDevice(fd, name, path, this, this.#host));
  }

  #open<D extends Device>(name: string, options: DeviceOpenOptions, make: (fd: number, path: string) => D): D {
    this.#fd.get("VFIO_GROUP_GET_DEVICE_FD");
    if (this.#container === undefined) {
      throw new VfioError({ op: "VFIO_GROUP_GET_DEVICE_FD", code: "EINVAL", errno: 22, path: this.path, detail: "the group is not attached to a container", hint: "Use container.addGroup(...) (or group.setContainer) before opening devices." });
    }
    const arg = options.vfToken ? `${name} vf_token=${options.vfToken}` : name;
    const fd = this.#fd.ioctl("VFIO_GROUP_GET_DEVICE_FD", V.VFIO_GROUP_GET_DEVICE_FD, cString(arg), {
      ENODEV: `No device named ${name} in group ${this.id}: check the address (bunx bun-vfio list shows groups).`,
      EINVAL: `The kernel refused ${name}: a VF of a PF bound to vfio-pci may need options.vfToken, or the name is malformed.`,
      EACCES: `${name} needs a VF token (options.vfToken) matching the one its PF's user set.`,
      EBUSY: `${name} is already open elsewhere, or is being removed.`,
    });
    const device = make(fd, `${this.path}:${name}`);
    this.#devices.add(device);
    return device;
  }

  /** Called by Device on close; not for users. */
  _forget(device: Device): void {
    this.#devices.delete(device);
  }

  /**
   * Closes the group's devices, then the group fd, which detaches it from
   * its container (the kernel does that on release; an explicit
   * UNSET_CONTAINER would fail after a hot-unplug). Idempotent.
   */
  close(): void {
    if (this.#fd.closed) return;
    try {
      for (const device of [...this.#devices]) device.close();
    } finally {
      this.#container?._track(this, false);
      this.#container = undefined;
      this.#fd.close();
    }
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
    const driver = pciDevice(bdf, options).driver;
    if (driver && driver !== "vfio-pci") return `${bdf} is bound to ${driver}, not vfio-pci: run \`bunx bun-vfio bind ${bdf}\` (as root).`;
    if (!driver) return `${bdf} has no driver: run \`bunx bun-vfio bind ${bdf}\` (as root; modprobe vfio-pci first).`;
  } catch {
    // fall through to the generic hint
  }
  return `No VFIO node for ${bdf}'s group: bind it to vfio-pci (bunx bun-vfio bind ${bdf}) and check that vfio-pci is loaded.`;
}
