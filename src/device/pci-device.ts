/**
 * A vfio-pci device: config space, BARs and their mmap plans, interrupts,
 * hot reset, on top of Device.
 */
import { invalidArgument } from "../support/errors.ts";
import { oneOf } from "../support/args.ts";
import { syscallError } from "../sys/check.ts";
import { pageSize } from "../sys/memory.ts";
import * as V from "../uapi/vfio.ts";
import { decodeHotResetInfo, encodeHotReset, hotResetInfoBuffer, hotResetInfoCount, type DependentDevice } from "../uapi/structs.ts";
import { planBarMmap, type IsolationVerdict, type MmapPlan, type MmapPolicy } from "../mmap-plan/index.ts";
import { detectIsolation, type IsolationContainerState } from "../host/isolation.ts";
import type { HostOptions } from "../host/sysfs.ts";
import { DeviceInterrupts } from "../irq/interrupts.ts";
import type { ErrorEvents, IntxInterrupt, MsiInterrupts, MsixInterrupts, ReleaseRequests } from "../irq/index.ts";
import { decodeMsi, decodeMsix, findCapability, listCapabilities, msixSizes, PciCapId, type MsiCapability, type MsixCapability, type PciCapability } from "../pci/capabilities.ts";
import { parseConfigHeader, PciCommand, PciConfigOffset, type PciConfigHeader } from "../pci/config-space.ts";
import { decodeBars, type PciBar } from "../pci/bars.ts";
import type { MappedMemory } from "../sys/mmio.ts";
import { Device, type DeviceHandle } from "./device.ts";
import type { MsixSpan, Region, RegionRules } from "./region.ts";
import { Bar, type BarAccessOptions } from "./bar.ts";
import { DecodeGate } from "./decode-gate.ts";

const POLICIES: readonly MmapPolicy[] = ["auto", "strict", "force"];

/** Options of `PciDevice.bar()` and `PciDevice.mmapPlan()`. */
export interface BarOptions extends BarAccessOptions {
  /** `"auto"` (default: the device's policy), `"strict"` (never map MSI-X table/PBA pages) or `"force"` (map whatever the kernel allows). */
  policy?: MmapPolicy;
  /** Use this isolation verdict instead of detecting it (for tests and for hosts you know better). */
  isolation?: IsolationVerdict;
  /** Plan for this page size instead of sysconf(_SC_PAGESIZE) (what-if planning only: `bar()` refuses it). */
  pageSize?: number;
}

/** Options of opening a PCI device. */
export interface PciDeviceOptions {
  /** The device's default mmap policy for `bar()` and MSI-X masking (default `"auto"`). */
  policy?: MmapPolicy;
}

/**
 * A vfio-pci device: regions 0-5 are the BARs, 6 the ROM, 7 config space,
 * 8 VGA; IRQ indexes 0 INTx, 1 MSI, 2 MSI-X, 3 ERR, 4 REQ.
 */
export class PciDevice extends Device {
  /** Where sysfs is (for isolation evidence and names); `/` unless testing. */
  readonly host: HostOptions;
  /** The default mmap policy of this device's BAR accessors and MSI-X masking. */
  readonly policy: MmapPolicy;
  readonly #gate: DecodeGate;
  readonly #bars = new Set<Bar>();
  #interrupts: DeviceInterrupts | undefined;
  #msix: { cap: MsixCapability; spans: MsixSpan[][] } | null | undefined;
  #verdict: { iommuType: string | undefined; verdict: IsolationVerdict } | undefined;

  /** @internal Created by a backend (Group.openPciDevice). */
  constructor(handle: DeviceHandle, host: HostOptions = {}, options: PciDeviceOptions = {}) {
    super(handle);
    this.host = host;
    this.policy = options.policy === undefined ? "auto" : oneOf("openPciDevice", "policy", options.policy, POLICIES, handle.path);
    this.#gate = new DecodeGate(() => this.config, undefined, handle.path);
  }

  /** The PCI address, `dddd:bb:dd.f`. */
  get bdf(): string {
    return this.name;
  }

  /** Config space (region 7): read8/16/32 and write8/16/32 through pread/pwrite. */
  get config(): Region {
    return this.region(V.VFIO_PCI_CONFIG_REGION_INDEX);
  }

  protected override regionRules(index: number): RegionRules {
    if (index === V.VFIO_PCI_CONFIG_REGION_INDEX) return { afterWrite: () => this.#gate.invalidate() };
    if (index > V.VFIO_PCI_BAR5_REGION_INDEX) return {};
    return { gate: this.#gate, msix: this.#msixLayout()?.spans[index] ?? [], msiIsolated: () => isIsolated(this.#isolation()) };
  }

  protected override afterReset(): void {
    this.#gate.invalidate();
  }

  protected override releaseSteps(): (() => void)[] {
    const bars = [...this.#bars];
    this.#bars.clear();
    return [() => this.#interrupts?.teardown(), ...bars.map((b) => () => b.close())];
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

  /** Where the MSI-X table and PBA are, per BAR (read once: vfio-pci virtualises the capability, it cannot move). */
  #msixLayout(): { cap: MsixCapability; spans: MsixSpan[][] } | undefined {
    if (this.#msix === undefined) {
      const bytes = this.configBytes();
      const cap = decodeMsix(bytes);
      const pm = findCapability(bytes, PciCapId.PM);
      if (pm) this.#gate.watchPowerState(pm.offset + 4);
      if (!cap) this.#msix = null;
      else {
        const { tableBytes, pbaBytes } = msixSizes(cap);
        const spans: MsixSpan[][] = [[], [], [], [], [], []];
        spans[cap.tableBar]?.push({ start: cap.tableOffset, end: cap.tableOffset + tableBytes, what: "msix-table" });
        spans[cap.pbaBar]?.push({ start: cap.pbaOffset, end: cap.pbaOffset + pbaBytes, what: "msix-pba" });
        this.#msix = { cap, spans };
      }
    }
    return this.#msix ?? undefined;
  }

  /**
   * The host's MSI isolation as this device sees it. Read once per IOMMU
   * type: the evidence that counts ("the kernel checked when the group was
   * attached") does not change while the device is open, and reading
   * /proc/interrupts on every bar() would dominate short-lived accessors.
   */
  #isolation(): IsolationVerdict {
    const iommuType = this.attachment.iommuType as IsolationContainerState["iommuType"];
    if (this.#verdict?.iommuType !== iommuType || this.#verdict === undefined) {
      this.#verdict = { iommuType, verdict: detectIsolation({ root: this.host.root, container: { iommuType, attached: iommuType !== undefined } }) };
    }
    return this.#verdict.verdict;
  }

  #irq(): DeviceInterrupts {
    return (this.#interrupts ??= new DeviceInterrupts(this));
  }

  /** MSI-X: `enable(n)` vectors with one eventfd each (VFIO_DEVICE_SET_IRQS, index 2), grow, mask, trigger, disable. */
  get msix(): MsixInterrupts {
    return this.#irq().msix;
  }

  /** MSI: `enable(n)` vectors (VFIO_DEVICE_SET_IRQS, index 1). */
  get msi(): MsiInterrupts {
    return this.#irq().msi;
  }

  /** The INTx line (VFIO_DEVICE_SET_IRQS, index 0): automasked, unmask after servicing. */
  get intx(): IntxInterrupt {
    return this.#irq().intx;
  }

  /** The ERR channel (index 3, PCIe only): uncorrectable errors reported by AER. */
  get err(): ErrorEvents {
    return this.#irq().err;
  }

  /** The REQ channel (index 4): the kernel asks for the device back; `req.onRelease(handler, { autoRelease })`. */
  get req(): ReleaseRequests {
    return this.#irq().req;
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
    const policy = options.policy === undefined ? this.policy : oneOf("mmapPlan", "policy", options.policy, POLICIES, this.path);
    const msix = this.#msixLayout()?.cap;
    const sizes = msix ? msixSizes(msix) : undefined;
    return planBarMmap({
      region: { index, size: info.size, readable: info.readable, writable: info.writable, mmappable: info.mmappable, sparseAreas: info.sparseAreas, msixMappable: info.msixMappable },
      msix: msix && sizes ? { tableBar: msix.tableBar, tableOffset: msix.tableOffset, tableSize: sizes.tableBytes, pbaBar: msix.pbaBar, pbaOffset: msix.pbaOffset, pbaSize: sizes.pbaBytes } : undefined,
      pageSize: options.pageSize ?? pageSize(),
      isolation: options.isolation ?? this.#isolation(),
      policy,
    });
  }

  /**
   * A register accessor for a BAR that follows its mmap plan: mapped pages
   * are loads and stores, trapped ones pread/pwrite. Writes into the MSI-X
   * table/PBA throw unless `allowMsixWrites` (and are refused where the
   * table is trapped: vfio-pci drops them). Internally this calls
   * VFIO_DEVICE_GET_REGION_INFO and mmap(2) for each mapped range.
   * `bar.plan.explain()` says what was decided and why. Closed with the
   * device, or by `bar.close()`.
   */
  bar(index: number, options: BarOptions = {}): Bar {
    if (options.pageSize !== undefined && options.pageSize !== pageSize()) {
      throw invalidArgument("bar", `pageSize ${options.pageSize} is not the host's (${pageSize()})`, "pageSize is for what-if plans (mmapPlan); a BAR accessor maps with the real page size.", this.path);
    }
    const bar = new Bar(this.region(index), this.mmapPlan(index, options), options, () => this.#bars.delete(bar));
    this.#bars.add(bar);
    return bar;
  }

  /**
   * @internal For MSI-X masking: a mapping of the pages of `bar` holding
   * `[offset, offset+length)`, when the device's plan maps them; else why not.
   */
  mapMsixWindow(bar: number, offset: number, length: number): { memory: MappedMemory; base: number } | string {
    const plan = this.mmapPlan(bar);
    const page = plan.pageSize;
    const start = Math.floor(offset / page) * page;
    const end = Math.ceil((offset + length) / page) * page;
    const mapped = plan.ranges.filter((r) => r.access === "mmap").some((r) => r.start <= start && Math.ceil(r.end / page) * page >= end);
    if (!mapped) return `the mmap plan (policy ${plan.policy}, isolation ${plan.isolation.level}) traps the MSI-X table's pages of BAR ${bar}`;
    return { memory: this.region(bar).map({ offset: start, length: end - start, unsafeMapMsixTable: true }), base: offset - start };
  }

  /**
   * The devices a bus/slot reset of this device would also reset, with their
   * groups. Internally this calls VFIO_DEVICE_GET_PCI_HOT_RESET_INFO (again
   * with a bigger buffer on ENOSPC).
   */
  hotResetInfo(): DependentDevice[] {
    let buf = hotResetInfoBuffer(0);
    const ret = this.fd.tryIoctl("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", V.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, buf);
    if (ret < 0) {
      const err = syscallError("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", this.path, { ENODEV: "This device cannot be reset through its bus or slot (no hot reset possible)." }, -ret);
      if (err.code !== "ENOSPC") throw err;
      buf = hotResetInfoBuffer(hotResetInfoCount(buf));
      this.fd.ioctl("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", V.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, buf);
    }
    return decodeHotResetInfo(buf);
  }

  /**
   * Resets the bus or slot this device sits on. Every device listed by
   * {@link hotResetInfo} must be bound to vfio-pci. Type1: every group it
   * lists must be open here and passed in (the kernel checks it owns them
   * all). iommufd: pass `[]`; the kernel checks that the device's iommufd
   * owns every affected device (Linux 6.6+). Internally this calls
   * VFIO_DEVICE_PCI_HOT_RESET.
   */
  hotReset(groups: readonly { unsafeFd: number }[]): void {
    try {
      this.fd.ioctl("VFIO_DEVICE_PCI_HOT_RESET", V.VFIO_DEVICE_PCI_HOT_RESET, encodeHotReset(groups.map((g) => g.unsafeFd)), {
        EINVAL: "Every device that hotResetInfo() lists must be bound to vfio-pci, and every group it lists passed in, open in this process.",
        EPERM: "Every affected group must be open in this process: open the groups that hotResetInfo() lists.",
      });
    } finally {
      this.#gate.invalidate();
    }
  }
}

function isIsolated(verdict: IsolationVerdict): boolean {
  return verdict.level === "attested" || verdict.level === "observed";
}
