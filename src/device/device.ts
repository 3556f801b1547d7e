/**
 * An open VFIO device: info, regions, IRQ info, reset. PciDevice
 * (./pci-device.ts) adds what vfio-pci offers.
 */
import { VfioError, invalidArgument } from "../errors.ts";
import { OwnedFd } from "../sys/owned-fd.ts";
import * as V from "../uapi/vfio.ts";
import { SIZEOF } from "../uapi/layout.ts";
import {
  argszBuffer, argszOf, decodeDeviceInfo, decodeIrqInfo, decodeRegionInfo, encodeIrqInfoRequest, encodeIrqSet,
  encodeRegionInfoRequest, type DeviceInfo, type IrqInfo, type IrqSetData, type RegionInfo,
} from "../uapi/structs.ts";
import { Region } from "./region.ts";

/** What a Device needs from the group that opened it. */
export interface DeviceOwner {
  _forget(device: Device): void;
  /** The container the group is attached to: its IOMMU type is evidence of MSI isolation. */
  readonly container: { readonly iommuType: "type1v2" | "type1" | "noiommu" | undefined } | undefined;
}

/**
 * A device fd from VFIO_GROUP_GET_DEVICE_FD. Obtained from
 * `group.openDevice(name)` or `group.openPciDevice(bdf)`.
 */
export class Device implements Disposable {
  protected readonly fd: OwnedFd;
  protected readonly owner: DeviceOwner;
  #info: DeviceInfo | undefined;
  readonly #regions = new Map<number, Region>();
  readonly #closeHooks: (() => void)[] = [];
  /** The device's name in its group (the PCI address for vfio-pci). */
  readonly name: string;

  /** @internal Created by Group. */
  constructor(fd: number, name: string, path: string, owner: DeviceOwner) {
    this.fd = new OwnedFd(fd, path, "device");
    this.name = name;
    this.owner = owner;
  }

  /** The device fd (escape hatch for raw ioctls). Throws after close. */
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

  /** Flags, region and IRQ counts (cached). Internally this calls VFIO_DEVICE_GET_INFO. */
  info(): DeviceInfo {
    this.fd.get("VFIO_DEVICE_GET_INFO");
    if (this.#info) return this.#info;
    let buf = argszBuffer(SIZEOF.vfio_device_info + 4);
    this.fd.ioctl("VFIO_DEVICE_GET_INFO", V.VFIO_DEVICE_GET_INFO, buf);
    if (argszOf(buf) > buf.byteLength) {
      buf = argszBuffer(argszOf(buf));
      this.fd.ioctl("VFIO_DEVICE_GET_INFO", V.VFIO_DEVICE_GET_INFO, buf);
    }
    this.#info = decodeDeviceInfo(buf);
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
    let buf = encodeRegionInfoRequest(index);
    this.fd.ioctl("VFIO_DEVICE_GET_REGION_INFO", V.VFIO_DEVICE_GET_REGION_INFO, buf, hints);
    if (argszOf(buf) > buf.byteLength) {
      buf = encodeRegionInfoRequest(index, argszOf(buf));
      this.fd.ioctl("VFIO_DEVICE_GET_REGION_INFO", V.VFIO_DEVICE_GET_REGION_INFO, buf, hints);
    }
    return decodeRegionInfo(buf);
  }

  /** The region object for `index` (cached): pread/pwrite access and raw mmap. */
  region(index: number): Region {
    this.fd.get("region");
    let region = this.#regions.get(index);
    if (!region) {
      region = new Region(this.fd, this.regionInfo(index), `${this.path}#region${index}`);
      this.#regions.set(index, region);
    }
    return region;
  }

  /** Count and flags of an interrupt index. Internally this calls VFIO_DEVICE_GET_IRQ_INFO. */
  irqInfo(index: number): IrqInfo {
    this.#checkIndex("VFIO_DEVICE_GET_IRQ_INFO", index, this.info().numIrqs, "IRQ index");
    const buf = encodeIrqInfoRequest(index);
    this.fd.ioctl("VFIO_DEVICE_GET_IRQ_INFO", V.VFIO_DEVICE_GET_IRQ_INFO, buf);
    return decodeIrqInfo(buf);
  }

  /**
   * Raw VFIO_DEVICE_SET_IRQS: `action` is VFIO_IRQ_SET_ACTION_{MASK,UNMASK,TRIGGER}.
   * The irq layer builds on this; prefer its API.
   */
  setIrqs(index: number, start: number, count: number, action: number, data: IrqSetData): void {
    this.fd.ioctl("VFIO_DEVICE_SET_IRQS", V.VFIO_DEVICE_SET_IRQS, encodeIrqSet(index, start, count, action, data), {
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
      throw new VfioError({ op: "VFIO_DEVICE_RESET", code: "ENOTSUP", errno: 95, path: this.path, detail: "the device advertises no reset (VFIO_DEVICE_FLAGS_RESET is clear)", hint: "Use a hot reset of the bus (PciDevice.hotReset) if the slot allows it, or re-bind the device." });
    }
    this.fd.ioctl("VFIO_DEVICE_RESET", V.VFIO_DEVICE_RESET, 0, {
      EAGAIN: "Another device on the same bus is in use, so the kernel could not do a bus reset now: close it and retry.",
    });
  }

  /** Runs `hook` when the device closes, before its fd is closed (irq layer, BAR accessors). */
  onClose(hook: () => void): void {
    this.#closeHooks.push(hook);
  }

  #checkIndex(op: string, index: number, count: number, what: string): void {
    this.fd.get(op);
    if (!Number.isInteger(index) || index < 0 || index >= count) {
      throw invalidArgument(op, `${what} ${index} does not exist (the device has ${count})`, `Use a ${what} from 0 to ${count - 1}.`, this.path);
    }
  }

  /**
   * Disables interrupts and releases mappings (via close hooks), unmaps every
   * region mapping, then closes the device fd. Idempotent.
   */
  close(): void {
    if (this.fd.closed) return;
    try {
      for (const hook of this.#closeHooks.splice(0).reverse()) hook();
      for (const region of this.#regions.values()) region.unmapAll();
    } finally {
      this.#regions.clear();
      this.fd.close();
      this.owner._forget(this);
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
