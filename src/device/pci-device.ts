/**
 * A vfio-pci device: config space, BARs and their mmap plans, interrupts,
 * hot reset, on top of Device.
 */
import { invalidArgument } from "../errors.ts";
import { syscallError } from "../sys/check.ts";
import { libc } from "../sys/libc.ts";
import { pageSize } from "../sys/memory.ts";
import * as V from "../uapi/vfio.ts";
import { decodeHotResetInfo, encodeHotReset, hotResetInfoBuffer, hotResetInfoCount, type DependentDevice } from "../uapi/structs.ts";
import { planBarMmap, type IsolationVerdict, type MmapPlan, type MmapPolicy } from "../mmap-plan.ts";
import { detectIsolation } from "../host/isolation.ts";
import type { HostOptions } from "../host/sysfs.ts";
import { interruptsOf } from "../irq/interrupts.ts";
import type { ErrorEvents, IntxInterrupt, MsiInterrupts, MsixInterrupts, ReleaseRequests } from "../irq/index.ts";
import { Device, type DeviceOwner } from "./device.ts";
import type { Region } from "./region.ts";
import { Bar, type BarAccessOptions } from "./bar.ts";
import { decodeMsi, decodeMsix, listCapabilities, msixSizes, type MsiCapability, type MsixCapability, type PciCapability } from "../pci/capabilities.ts";
import { parseConfigHeader, PciCommand, PciConfigOffset, type PciConfigHeader } from "../pci/config-space.ts";
import { decodeBars, type PciBar } from "../pci/bars.ts";

/** Options of `PciDevice.bar()` and `PciDevice.mmapPlan()`. */
export interface BarOptions extends BarAccessOptions {
  /** `"auto"` (default), `"strict"` (never map MSI-X table/PBA pages) or `"force"` (map whatever the kernel allows). */
  policy?: MmapPolicy;
  /** Use this isolation verdict instead of detecting it (for tests and for hosts you know better). */
  isolation?: IsolationVerdict;
  /** Plan for this page size instead of sysconf(_SC_PAGESIZE) (what-if planning only; mapping needs the real one). */
  pageSize?: number;
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
