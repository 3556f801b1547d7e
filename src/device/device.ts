/**
 * An open VFIO device: info, regions, IRQ info, reset. PciDevice adds what
 * vfio-pci offers: config space, BARs, hot reset.
 */
import { VfioError, invalidArgument } from "../errors.ts";
import { OwnedFd } from "../sys/owned-fd.ts";
import { syscallError } from "../sys/check.ts";
import { libc } from "../sys/libc.ts";
import * as V from "../uapi/vfio.ts";
import { SIZEOF } from "../uapi/layout.ts";
import {
  argszBuffer, argszOf, decodeDeviceInfo, decodeHotResetInfo, decodeIrqInfo, decodeRegionInfo, encodeIrqInfoRequest,
  encodeHotReset, encodeIrqSet, encodeRegionInfoRequest, hotResetInfoBuffer, hotResetInfoCount,
  type DependentDevice, type DeviceInfo, type IrqInfo, type IrqSetData, type RegionInfo,
} from "../uapi/structs.ts";
import { Region } from "./region.ts";
import { Bar, type BarAccessOptions } from "./bar.ts";
import { decodeMsi, decodeMsix, listCapabilities, msixSizes, type MsiCapability, type MsixCapability, type PciCapability } from "./capabilities.ts";
import { parseConfigHeader, PciCommand, PciConfigOffset, type PciConfigHeader } from "./config-space.ts";
import { decodeBars, type PciBar } from "./bars.ts";
import { planBarMmap, type IsolationVerdict, type MmapPlan, type MmapPolicy } from "../mmap-plan.ts";
import { detectIsolation } from "../host/isolation.ts";
import { pageSize } from "../sys/memory.ts";

/** Options of `PciDevice.bar()` and `PciDevice.mmapPlan()`. */
export interface BarOptions extends BarAccessOptions {
  /** `"auto"` (default), `"strict"` (never map MSI-X table/PBA pages) or `"force"` (map whatever the kernel allows). */
  policy?: MmapPolicy;
  /** Use this isolation verdict instead of detecting it (for tests and for hosts you know better). */
  isolation?: IsolationVerdict;
  /** Plan for this page size instead of sysconf(_SC_PAGESIZE) (what-if planning only; mapping needs the real one). */
  pageSize?: number;
}
import type { HostOptions } from "../host/sysfs.ts";
import { interruptsOf } from "../irq/interrupts.ts";
import type { ErrorEvents, IntxInterrupt, MsiInterrupts, MsixInterrupts, ReleaseRequests } from "../irq/index.ts";

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

/**
 * A vfio-pci device: regions 0-5 are the BARs, 6 the ROM, 7 config space,
 * 8 VGA; IRQ indexes 0 INTx, 1 MSI, 2 MSI-X, 3 ERR, 4 REQ.
 */
export class PciDevice extends Device {
  /** Where sysfs is (for isolation evidence and names); `/` unless testing. */
  readonly host: HostOptions;

  /** @internal Created by Group.openPciDevice. */
  constructor(fd: number, name: string, path: string, owner: DeviceOwner, host: HostOptions = {}) {
    super(fd, name, path, owner);
    this.host = host;
  }

  /** The PCI address, `dddd:bb:dd.f`. */
  get bdf(): string {
    return this.name;
  }

  /** Config space (region 7): read8/16/32 and write8/16/32 through pread/pwrite. */
  get config(): Region {
    return this.region(V.VFIO_PCI_CONFIG_REGION_INDEX);
  }

  /**
   * A snapshot of config space as VFIO presents it (some fields, like BARs
   * and the MSI/MSI-X capabilities, are virtualised by vfio-pci).
   * Internally this is one pread(2) of region 7.
   */
  configBytes(): Uint8Array {
    const config = this.config;
    return config.read(0, config.size);
  }

  /** The decoded standard header: ids, class, command/status, header type. */
  header(): PciConfigHeader {
    return parseConfigHeader(this.configBytes());
  }

  /** The standard and extended capabilities, walked loop-safely from config space. */
  capabilities(): PciCapability[] {
    return listCapabilities(this.configBytes());
  }

  /** The MSI-X capability (table and PBA location, vector count), or undefined. */
  msixCapability(): MsixCapability | undefined {
    return decodeMsix(this.configBytes());
  }

  /** The MSI capability (vector count, 64-bit, per-vector masking), or undefined. */
  msiCapability(): MsiCapability | undefined {
    return decodeMsi(this.configBytes());
  }

  /** MSI-X: `enable(n)` vectors with one eventfd each (VFIO_DEVICE_SET_IRQS, index 2), grow, mask, trigger, disable. */
  get msix(): MsixInterrupts {
    return interruptsOf(this).msix;
  }

  /** MSI: `enable(n)` vectors (VFIO_DEVICE_SET_IRQS, index 1). */
  get msi(): MsiInterrupts {
    return interruptsOf(this).msi;
  }

  /** The INTx line (VFIO_DEVICE_SET_IRQS, index 0): automasked, unmask after servicing. */
  get intx(): IntxInterrupt {
    return interruptsOf(this).intx;
  }

  /** The ERR channel (index 3, PCIe only): uncorrectable errors reported by AER. */
  get err(): ErrorEvents {
    return interruptsOf(this).err;
  }

  /** The REQ channel (index 4): the kernel asks for the device back; `req.onRelease(handler, { autoRelease })`. */
  get req(): ReleaseRequests {
    return interruptsOf(this).req;
  }

  /** The BARs as decoded from the header (kind, prefetchable, address); sizes come from regionInfo(). */
  bars(): PciBar[] {
    return decodeBars(this.configBytes());
  }

  /** Sets or clears bits of the command register (read-modify-write of config offset 0x04). */
  updateCommand(set: number, clear = 0): number {
    const config = this.config;
    const value = ((config.read16(PciConfigOffset.COMMAND) & ~clear) | set) & 0xffff;
    config.write16(PciConfigOffset.COMMAND, value);
    return value;
  }

  /** Turns on memory-space decoding (command bit 1), needed before touching memory BARs. */
  enableMemory(): void {
    this.updateCommand(PciCommand.MEMORY);
  }

  /** Turns on bus mastering (command bit 2), needed before the device can DMA. */
  enableBusMaster(): void {
    this.updateCommand(PciCommand.BUS_MASTER);
  }

  /**
   * The mmap plan of a BAR: which pages to map and which to trap, from the
   * region info, the MSI-X table/PBA location, the host page size and the
   * host's MSI isolation (see `planBarMmap`).
   */
  mmapPlan(index: number, options: BarOptions = {}): MmapPlan {
    const info = this.regionInfo(index);
    if (index > V.VFIO_PCI_BAR5_REGION_INDEX) throw invalidArgument("mmapPlan", `region ${index} is not a BAR`, "BARs are regions 0 to 5.", this.path);
    const msix = this.msixCapability();
    const sizes = msix ? msixSizes(msix) : undefined;
    const isolation = options.isolation ?? detectIsolation({
      root: this.host.root,
      container: { iommuType: this.owner.container?.iommuType, attached: this.owner.container?.iommuType !== undefined },
    });
    return planBarMmap({
      region: { index, size: info.size, readable: info.readable, writable: info.writable, mmappable: info.mmappable, sparseAreas: info.sparseAreas, msixMappable: info.msixMappable },
      msix: msix && sizes ? { tableBar: msix.tableBar, tableOffset: msix.tableOffset, tableSize: sizes.tableBytes, pbaBar: msix.pbaBar, pbaOffset: msix.pbaOffset, pbaSize: sizes.pbaBytes } : undefined,
      pageSize: options.pageSize ?? pageSize(),
      isolation,
      policy: options.policy,
    });
  }

  /**
   * A register accessor for a BAR that follows its mmap plan: mapped pages
   * are loads and stores, trapped ones pread/pwrite. Writes into the MSI-X
   * table/PBA throw unless `allowMsixWrites`. Internally this calls
   * VFIO_DEVICE_GET_REGION_INFO and mmap(2) for each mapped range.
   * `bar.plan.explain()` says what was decided and why.
   */
  bar(index: number, options: BarOptions = {}): Bar {
    const bar = new Bar(this.region(index), this.mmapPlan(index, options), options);
    this.onClose(() => bar.close());
    return bar;
  }

  /**
   * The devices a bus/slot reset of this device would also reset, with their
   * groups. Internally this calls VFIO_DEVICE_GET_PCI_HOT_RESET_INFO (again
   * with a bigger buffer on ENOSPC).
   */
  hotResetInfo(): DependentDevice[] {
    const fd = this.fd.get("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO");
    let buf = hotResetInfoBuffer(0);
    if (libc.ioctl(fd, V.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, buf) < 0) {
      const err = syscallError("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", this.path, { ENODEV: "This device cannot be reset through its bus or slot (no hot reset possible)." });
      if (err.code !== "ENOSPC") throw err;
      buf = hotResetInfoBuffer(hotResetInfoCount(buf));
      this.fd.ioctl("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", V.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, buf);
    }
    return decodeHotResetInfo(buf);
  }

  /**
   * Resets the bus or slot this device sits on. Every device listed by
   * {@link hotResetInfo} must be bound to vfio-pci, and every group it lists
   * must be open here and passed in (the kernel checks it owns them all). Internally this calls VFIO_DEVICE_PCI_HOT_RESET.
   */
  hotReset(groups: readonly { unsafeFd: number }[]): void {
    this.fd.ioctl("VFIO_DEVICE_PCI_HOT_RESET", V.VFIO_DEVICE_PCI_HOT_RESET, encodeHotReset(groups.map((g) => g.unsafeFd)), {
      EINVAL: "Every device that hotResetInfo() lists must be bound to vfio-pci, and every group it lists passed in, open in this process.",
      EPERM: "Every affected group must be open in this process: open the groups that hotResetInfo() lists.",
    });
  }
}
