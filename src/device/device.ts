/**
 * An open VFIO device: info, regions, IRQ info, reset. PciDevice
 * (./pci-device.ts) adds what vfio-pci offers.
 */
import { VfioError, invalidArgument } from "../support/errors.ts";
import { show } from "../support/format.ts";
import { OwnedFd } from "../sys/owned-fd.ts";
import { Lifetime, runAll } from "../sys/teardown.ts";
import * as V from "../uapi/vfio.ts";
import { SIZEOF } from "../uapi/layout.ts";
import {
  argszBuffer, decodeDeviceInfo, decodeIrqInfo, decodeRegionInfo, encodeIrqInfoRequest, encodeRegionInfoRequest, type DeviceInfo, type IrqInfo, type IrqSetData, type RegionInfo,
} from "../uapi/structs.ts";
import { setIrqs } from "../irq/set-irqs.ts";
import { Region, type RegionRules } from "./region.ts";

/**
 * A device fd as an IOMMU backend hands it out (VFIO_GROUP_GET_DEVICE_FD
 * for the type1 container, the cdev bound with VFIO_DEVICE_BIND_IOMMUFD for
 * iommufd): the narrow seam between backends and devices.
 */
export interface DeviceHandle {
  /** The open device fd; the Device owns it from now on. */
  readonly fd: number;
  /** The device's name in its backend (the PCI address for vfio-pci). */
  readonly name: string;
  /** Named in errors: `<group node>:<name>`. */
  readonly path: string;
  /** The backend's view of MSI isolation: how it attached the device. */
  readonly attachment: () => DeviceAttachment;
  /** Called once when the device has closed. */
  readonly closed: (device: Device) => void;
  /** Closes every open instance of this device (REQ auto-release must free them all). */
  readonly closeAll: () => void;
}

/** How a device reaches its IOMMU, as evidence for the isolation verdict. */
export interface DeviceAttachment {
  /** The container's IOMMU type (`type1v2`, `type1`, `noiommu`), `iommufd` for a cdev bound to iommufd, or undefined when not attached. */
  readonly iommuType: string | undefined;
}

/** A device collected unclosed: end its children's waits (the fd, mappings and DMA have backstops of their own). */
const collected = new FinalizationRegistry<Lifetime>((lifetime) => lifetime.releaseAll());

/**
 * A device fd from VFIO_GROUP_GET_DEVICE_FD. Obtained from
 * `group.openDevice(name)` or `group.openPciDevice(bdf)`.
 */
export class Device implements Disposable {
  protected readonly fd: OwnedFd;
  readonly #handle: DeviceHandle;
  #info: DeviceInfo | undefined;
  readonly #regions = new Map<number, Region>();
  /** The device's name in its group (the PCI address for vfio-pci). */
  readonly name: string;
  /** @internal Releases of the device's children that must run even if the device is dropped unclosed (interrupt waits). */
  readonly lifetime: Lifetime = new Lifetime();

  /** @internal Created by a backend (Group) from a {@link DeviceHandle}. */
  constructor(handle: DeviceHandle) {
    this.fd = new OwnedFd(handle.fd, handle.path, "device");
    this.name = handle.name;
    this.#handle = handle;
    collected.register(this, this.lifetime, this);
  }

  /** The device fd (escape hatch for raw ioctls: they bypass the library's checks). Throws after close. */
  get unsafeFd(): number {
    return this.fd.get("unsafeFd");
  }

  /** `<group node>:<name>`, used in errors. */
  get path(): string {
    return this.fd.path;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.fd.closed;
  }

  /** How the device's backend attached it (evidence for MSI isolation). */
  protected get attachment(): DeviceAttachment {
    return this.#handle.attachment();
  }

  /** Flags, region and IRQ counts (cached). Internally this calls VFIO_DEVICE_GET_INFO. */
  info(): DeviceInfo {
    this.fd.get("VFIO_DEVICE_GET_INFO");
    if (this.#info) return this.#info;
    this.#info = decodeDeviceInfo(this.fd.query("VFIO_DEVICE_GET_INFO", V.VFIO_DEVICE_GET_INFO, (size) => argszBuffer(Math.max(size, SIZEOF.vfio_device_info + 4))));
    return this.#info;
  }

  /**
   * A region's flags, size, offset and capability chain (sparse mmap areas,
   * MSIX_MAPPABLE, type). Internally this calls VFIO_DEVICE_GET_REGION_INFO,
   * twice when the capabilities need a bigger buffer.
   */
  regionInfo(index: number): RegionInfo {
    this.#checkIndex("VFIO_DEVICE_GET_REGION_INFO", index, this.info().numRegions, "region");
    const hints = { EINVAL: `The device does not implement region ${index} (vfio-pci has a VGA region, index 8, only for VGA devices).` };
    return decodeRegionInfo(this.fd.query("VFIO_DEVICE_GET_REGION_INFO", V.VFIO_DEVICE_GET_REGION_INFO, (size) => encodeRegionInfoRequest(index, size || undefined), hints));
  }

  /** The region object for `index` (cached): pread/pwrite access and raw mmap. */
  region(index: number): Region {
    this.fd.get("region");
    let region = this.#regions.get(index);
    if (!region) {
      region = new Region(this.fd, this.regionInfo(index), `${this.path}#region${index}`, this.regionRules(index));
      this.#regions.set(index, region);
    }
    return region;
  }

  /** What a subclass decides for a region (PciDevice: gate, MSI-X spans). */
  protected regionRules(_index: number): RegionRules {
    return {};
  }

  /** Count and flags of an interrupt index. Internally this calls VFIO_DEVICE_GET_IRQ_INFO. */
  irqInfo(index: number): IrqInfo {
    this.#checkIndex("VFIO_DEVICE_GET_IRQ_INFO", index, this.info().numIrqs, "IRQ index");
    const buf = encodeIrqInfoRequest(index);
    this.fd.ioctl("VFIO_DEVICE_GET_IRQ_INFO", V.VFIO_DEVICE_GET_IRQ_INFO, buf, {
      EINVAL: `The device does not implement IRQ index ${index} (vfio-pci offers ERR, index 3, only on PCI Express devices).`,
    });
    return decodeIrqInfo(buf);
  }

  /**
   * Raw VFIO_DEVICE_SET_IRQS: `action` is VFIO_IRQ_SET_ACTION_{MASK,UNMASK,TRIGGER}.
   * The irq layer builds on this; prefer its API.
   */
  setIrqs(index: number, start: number, count: number, action: number, data: IrqSetData): void {
    setIrqs(this, index, start, count, action, data, {
      EINVAL: "The kernel refused this index/start/count/action: check device.irqInfo(index) for the count and the MASKABLE flag.",
    });
  }

  /**
   * Resets the device (FLR, PM reset or a bus reset limited to this device,
   * whichever the kernel picks). Throws when the device has no reset rather
   * than doing nothing. Internally this calls VFIO_DEVICE_RESET.
   */
  reset(): void {
    if (!this.info().canReset) {
      throw new VfioError({ op: "VFIO_DEVICE_RESET", code: "EOPNOTSUPP", errno: 95, path: this.path, detail: "the device advertises no reset (VFIO_DEVICE_FLAGS_RESET is clear)", hint: "Use a hot reset of the bus (PciDevice.hotReset) if the slot allows it, or re-bind the device." });
    }
    try {
      this.fd.ioctl("VFIO_DEVICE_RESET", V.VFIO_DEVICE_RESET, 0, {
        EAGAIN: "Another device on the same bus is in use, so the kernel could not do a bus reset now: close it and retry.",
      });
    } finally {
      this.afterReset();
    }
  }

  /** A reset may change what is reachable (PciDevice: look at the command register again). */
  protected afterReset(): void {}

  #checkIndex(op: string, index: unknown, count: number, what: string): asserts index is number {
    this.fd.get(op);
    if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index >= count) {
      throw invalidArgument(op, `${what} ${show(index)} does not exist (the device has ${count})`, `Use a ${what} from 0 to ${count - 1}.`, this.path);
    }
  }

  /** What a subclass releases before the regions are unmapped (PciDevice: interrupts, then BAR accessors). */
  protected releaseSteps(): (() => void)[] {
    return [];
  }

  /**
   * Closes this device and every other open instance of it in this process,
   * so an unbind or hot-unplug waiting on them can complete.
   */
  releaseEverywhere(): void {
    this.#handle.closeAll();
  }

  /**
   * Disables interrupts, closes BAR accessors, unmaps every region mapping,
   * then closes the device fd: every step runs even if one fails (the first
   * failure is rethrown at the end). Idempotent.
   */
  close(): void {
    if (this.fd.closed) return;
    const regions = [...this.#regions.values()];
    this.#regions.clear();
    collected.unregister(this);
    runAll([
      ...this.releaseSteps(),
      ...regions.map((r) => () => r.unmapAll()),
      () => this.fd.close(),
      () => this.#handle.closed(this),
    ]);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
