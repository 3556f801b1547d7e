/**
 * The legacy VFIO container (`/dev/vfio/vfio`): an IOMMU context that groups
 * are attached to, and the DMA map/unmap of the type1 IOMMU backend.
 */
import { VfioError, invalidArgument } from "../support/errors.ts";
import { O_RDWR } from "../sys/constants.ts";
import { openPath } from "../sys/fd.ts";
import { OwnedFd } from "../sys/owned-fd.ts";
import type { Hints } from "../sys/check.ts";
import * as V from "../uapi/vfio.ts";
import { SIZEOF } from "../uapi/layout.ts";
import { argszBuffer, decodeDmaUnmapSize, decodeIommuInfo, encodeDmaMap, encodeDmaUnmap, type IommuInfo } from "../uapi/structs.ts";
import { existsSync } from "node:fs";
import { syscallError } from "../sys/check.ts";
import { runAll } from "../sys/teardown.ts";
import { WeakMembers } from "../support/weak-members.ts";
import { oneOf, optionsArg, U64_LIMIT, u32Arg, u64Arg } from "../support/args.ts";
import { hex, show } from "../support/format.ts";
import { attachGroup, attachHints, Group, type ContainerLink, type DeviceOpenOptions, type GroupOpenOptions } from "./group.ts";
import { normalizeBdf } from "../host/bdf.ts";
import { iommuGroupOf } from "../host/groups.ts";
import type { PciDevice, PciDeviceOptions } from "../device/pci-device.ts";
import type { DmaMapRequest, DmaOwner, DmaSpace } from "./dma-space.ts";
import { DEFAULT_IOVA_RANGES, IovaAllocator } from "./iova-allocator.ts";
import { brokenMapRule } from "./map-rules.ts";

/** The IOMMU models a container can be set to. */
export type IommuType = "type1v2" | "type1" | "noiommu";

const IOMMU_TYPES: readonly IommuType[] = ["type1v2", "type1", "noiommu"];

const IOMMU_TYPE_IDS: Record<IommuType, number> = {
  type1v2: V.VFIO_TYPE1v2_IOMMU,
  type1: V.VFIO_TYPE1_IOMMU,
  noiommu: V.VFIO_NOIOMMU_IOMMU,
};

const MAP_HINTS: Hints = {
  EEXIST: "That IOVA range overlaps an existing mapping: unmap it first or pick another IOVA.",
  ENOMEM:
    "Pinning the memory failed: the locked-memory limit (ulimit -l, RLIMIT_MEMLOCK) is too low for this size, or the host is out of memory. Raise the limit (run as root, or `ulimit -l unlimited`).",
  ENOSPC: "The container ran out of DMA mappings (vfio_iommu_type1 dma_entry_limit): unmap some, or raise the module parameter.",
  EINVAL: "vaddr, iova and size must be aligned to the IOMMU page size (see container.iommuInfo().pageSizes), size non-zero, and the IOVA range inside container.iommuInfo().iovaRanges (not in the MSI window, not above the IOMMU's address width).",
  EFAULT: "The virtual address range is not mapped in this process.",
};

/** Options of {@link Container.open}. */
export interface ContainerOpenOptions {
  /** The container node; default `/dev/vfio/vfio`. */
  path?: string;
  /**
   * The IOMMU type the first group sets. Default: type1v2, else type1;
   * `noiommu` (no isolation at all) is used only when asked for by name.
   */
  iommuType?: IommuType;
}

/**
 * A VFIO container: the legacy (type1) IOMMU backend. Open it, add groups
 * (the first one also sets the IOMMU type), then open devices from those
 * groups. It is the {@link DmaSpace} of its groups' devices. Closing it
 * releases everything in the kernel's order: devices, then groups (the
 * kernel stops bus mastering and, with the last group, drops every
 * mapping), then DMA buffers, then the container fd.
 *
 * ```ts
 * using container = Container.open();
 * using group = container.addGroup("0000:01:00.0");
 * ```
 */
export class Container implements DmaSpace, Disposable {
  readonly #fd: OwnedFd;
  #iommuType: IommuType | undefined;
  readonly #groups = new Set<Group>();
  readonly #dmaOwners = new WeakMembers<DmaOwner>(); // a dropped buffer stays collectable (its backstop unmaps it)
  #iovaAllocator: IovaAllocator | undefined;
  readonly #link: ContainerLink;
  /** @internal See DmaSpace.backstopUnmap. */
  readonly backstopUnmap: (iova: bigint, size: number) => void;

  readonly #defaultType: IommuType | undefined;

  private constructor(fd: OwnedFd, defaultType: IommuType | undefined) {
    this.#fd = fd;
    this.#defaultType = defaultType;
    this.#link = {
      fd: () => this.#fd.get("VFIO_GROUP_SET_CONTAINER"),
      iommuType: () => this.#iommuType,
      left: (group) => this.#groupLeft(group),
    };
    this.backstopUnmap = unmapper(fd);
  }

  /**
   * Opens the container node and checks the API version.
   * Internally this calls open(2) and VFIO_GET_API_VERSION.
   */
  static open(options: ContainerOpenOptions = {}): Container {
    const opts = optionsArg("Container.open", options);
    const path = opts.path ?? "/dev/vfio/vfio";
    if (typeof path !== "string") throw invalidArgument("Container.open", `path ${show(path)} is not a string`, "Pass the container node's path, or nothing for /dev/vfio/vfio.");
    if (opts.iommuType !== undefined) oneOf("Container.open", "iommuType", opts.iommuType, IOMMU_TYPES, path);
    const fd = new OwnedFd(openPath(path, O_RDWR, "open container", {
      ENOENT: "VFIO is not loaded: run `modprobe vfio-pci` (and `modprobe vfio_iommu_type1`).",
      EACCES: "Permission denied on /dev/vfio/vfio: run as root or add your user to a group that owns it.",
    }), path, "container");
    try {
      const version = fd.ioctl("VFIO_GET_API_VERSION", V.VFIO_GET_API_VERSION, 0);
      if (version !== V.VFIO_API_VERSION) {
        throw new VfioError({ op: "VFIO_GET_API_VERSION", code: "EPROTO", errno: 71, path, detail: `kernel API version ${version}, expected ${V.VFIO_API_VERSION}`, hint: "This kernel's VFIO API is not supported by bun-vfio." });
      }
    } catch (err) {
      fd.close();
      throw err;
    }
    return new Container(fd, opts.iommuType);
  }

  /** The container's fd (escape hatch for raw ioctls). Throws after close. */
  get unsafeFd(): number {
    return this.#fd.get("unsafeFd");
  }

  /** The node this container was opened from. */
  get path(): string {
    return this.#fd.path;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#fd.closed;
  }

  /** The IOMMU type set on this container, or undefined before the first group is attached (and after the last left). */
  get iommuType(): IommuType | undefined {
    return this.#iommuType;
  }

  /** `"physical"` in no-IOMMU mode (devices use physical addresses, nothing is mapped), else `"iova"`. */
  get addressing(): "iova" | "physical" {
    return this.#iommuType === "noiommu" ? "physical" : "iova";
  }

  /** The backend this container is: `"noiommu"` once set to VFIO_NOIOMMU_IOMMU, else `"type1"`. */
  get backend(): "type1" | "noiommu" {
    return this.#iommuType === "noiommu" ? "noiommu" : "type1";
  }

  /** True while DMA can be mapped: a type1 IOMMU is set. */
  get canMap(): boolean {
    return !this.closed && (this.#iommuType === "type1" || this.#iommuType === "type1v2");
  }

  /**
   * The groups currently attached, as the kernel sees them (a hot-unplugged
   * group is detached by the kernel: asked with VFIO_GROUP_GET_STATUS).
   */
  get groups(): readonly Group[] {
    if (!this.closed) this.#recheckGroups();
    return [...this.#groups];
  }

  /**
   * Whether the kernel supports an extension or IOMMU type (`VFIO_TYPE1v2_IOMMU`, `VFIO_UNMAP_ALL`, ...).
   * Internally this calls VFIO_CHECK_EXTENSION.
   */
  checkExtension(extension: number | IommuType): boolean {
    const op = "VFIO_CHECK_EXTENSION";
    const id = typeof extension === "string" ? IOMMU_TYPE_IDS[oneOf(op, "extension", extension, IOMMU_TYPES, this.path)] : u32Arg(op, "extension", extension, this.path);
    return this.#fd.ioctl(op, V.VFIO_CHECK_EXTENSION, id) > 0;
  }

  /** The IOMMU types this kernel offers, best first (type1v2, type1, noiommu). */
  supportedIommuTypes(): IommuType[] {
    return IOMMU_TYPES.filter((t) => this.checkExtension(t));
  }

  /**
   * Sets the IOMMU model. Needs at least one group attached; done for you by
   * {@link addGroup}. Without `type`, picks type1v2, then type1: never
   * noiommu, which must be asked for by name (it gives up all isolation).
   * Internally this calls VFIO_SET_IOMMU; EPERM means MSIs are not isolated.
   */
  setIommu(type?: IommuType): IommuType {
    const op = "VFIO_SET_IOMMU";
    if (type !== undefined) oneOf(op, "iommuType", type, IOMMU_TYPES, this.path);
    const chosen = type ?? this.supportedIommuTypes().find((t) => t !== "noiommu");
    const noiommuGroup = chosen !== "noiommu" && [...this.#groups].some((g) => g.noiommu);
    const noiommuHint = "The group is a no-IOMMU group (/dev/vfio/noiommu-N): only VFIO_NOIOMMU_IOMMU accepts it. Ask for it by name, accepting no isolation at all: openVfio({ backend: \"noiommu\" }) or Container.open({ iommuType: \"noiommu\" }).";
    if (chosen === undefined) {
      throw new VfioError({ op, code: "ENODEV", errno: 19, path: this.path, detail: noiommuGroup ? "the kernel offers only VFIO_NOIOMMU_IOMMU for this group" : "the kernel offers no IOMMU type", hint: noiommuGroup ? noiommuHint : noIommuHint() });
    }
    const root = [...this.#groups][0]?.host.root;
    const hints: Hints = noiommuGroup ? { ...attachHints({ root }), ENODEV: noiommuHint } : attachHints({ root });
    this.#fd.ioctl(op, V.VFIO_SET_IOMMU, IOMMU_TYPE_IDS[chosen], hints);
    this.#iommuType = chosen;
    return chosen;
  }

  /**
   * Opens a group (by number or by a member's PCI address; or takes an open
   * Group), checks that it is viable, attaches it to this container and
   * sets the IOMMU type if this is the first group. Internally this calls
   * VFIO_GROUP_GET_STATUS, VFIO_GROUP_SET_CONTAINER and VFIO_SET_IOMMU.
   */
  addGroup(groupOrBdf: number | string | Group, options: GroupOpenOptions & { iommuType?: IommuType } = {}): Group {
    const op = "addGroup";
    this.#fd.get(op);
    const opts = optionsArg(op, options, this.path);
    if (opts.iommuType !== undefined) oneOf(op, "iommuType", opts.iommuType, IOMMU_TYPES, this.path);
    const given = groupOrBdf instanceof Group;
    const group = given ? groupOrBdf : Group.open(groupOrBdf, opts);
    let attachedHere = false;
    try {
      attachGroup(group, this.#link);
      attachedHere = true;
      this.#groups.add(group);
      if (this.#iommuType === undefined) this.setIommu(opts.iommuType ?? this.#defaultType);
      // A group joining an IOMMU already in use may bring reserved regions of its own.
      else if (this.#iovaAllocator && this.canMap) this.#iovaAllocator.restrictTo(this.iommuInfo().iovaRanges ?? DEFAULT_IOVA_RANGES);
    } catch (err) {
      // Undo only what this call did: a group attached elsewhere stays there.
      if (!given) group.close();
      else if (attachedHere) {
        this.#groups.delete(group);
        group.unsetContainer();
      }
      throw err;
    }
    return group;
  }

  /**
   * Opens a PCI device, adding its group first unless it is attached
   * already: the same call as `Iommufd.openPciDevice`, so code can take
   * either backend. Internally this calls what {@link addGroup} and
   * `Group.openPciDevice` call.
   */
  openPciDevice(bdf: string, options: DeviceOpenOptions & PciDeviceOptions & GroupOpenOptions = {}): PciDevice {
    const opts = optionsArg("openPciDevice", options, this.path);
    const address = normalizeBdf(bdf);
    const id = iommuGroupOf(address, opts);
    const group = this.groups.find((g) => g.id === id && !g.closed) ?? this.addGroup(address, opts);
    return group.openPciDevice(address, opts);
  }

  /** A group closed or detached. When the last one goes, the kernel drops the IOMMU model and every mapping. */
  #groupLeft(group: Group): void {
    if (!this.#groups.delete(group) || this.#groups.size > 0) return;
    this.#kernelDropped();
  }

  /** The kernel dropped every mapping (last group gone): buffers are released as "dropped", the allocator starts over. */
  #kernelDropped(): void {
    this.#iommuType = undefined;
    this.#iovaAllocator?.close();
    this.#iovaAllocator = undefined;
    const owners = this.#dmaOwners.values().reverse();
    this.#dmaOwners.clear();
    runAll(owners.map((o) => () => o.release("dropped")));
  }

  /**
   * After a failure that may mean the kernel detached groups under us (hot
   * unplug): drop the groups whose status no longer shows a container.
   */
  #recheckGroups(): void {
    for (const group of [...this.#groups]) {
      let attached = false;
      try {
        attached = !group.closed && group.status().containerSet;
      } catch {
        attached = false;
      }
      if (!attached) this.#groupLeft(group);
    }
  }

  /**
   * The type1 IOMMU's properties: page sizes, usable IOVA ranges, DMA mappings
   * still available. Internally this calls VFIO_IOMMU_GET_INFO (twice when the
   * capability chain needs a bigger buffer).
   */
  iommuInfo(): IommuInfo {
    this.#requireType1("VFIO_IOMMU_GET_INFO");
    return decodeIommuInfo(this.#fd.query("VFIO_IOMMU_GET_INFO", V.VFIO_IOMMU_GET_INFO, (argsz) => argszBuffer(Math.max(argsz, SIZEOF.vfio_iommu_type1_info))));
  }

  /**
   * Maps process memory at an IOVA for every device in the container.
   * Internally this calls VFIO_IOMMU_MAP_DMA. Prefer DmaBuffer, which owns
   * the memory and unmaps it in the right order.
   */
  mapDma(request: DmaMapRequest): void {
    const op = "VFIO_IOMMU_MAP_DMA";
    this.#requireType1(op);
    const req = optionsArg(op, request, this.path);
    const vaddr = u64Arg(op, "vaddr", req.vaddr, this.path);
    const iova = u64Arg(op, "iova", req.iova, this.path);
    const size = u64Arg(op, "size", req.size, this.path);
    if (iova + size > U64_LIMIT) throw invalidArgument(op, `iova ${hex(iova)} + size ${hex(size)} passes 2^64`, "Keep the whole range below 2^64.", this.path);
    let flags = 0;
    if (req.read ?? true) flags |= V.VFIO_DMA_MAP_FLAG_READ;
    if (req.write ?? true) flags |= V.VFIO_DMA_MAP_FLAG_WRITE;
    if (flags === 0) throw invalidArgument(op, "neither read nor write access requested", "Allow the device to read, write or both.", this.path);
    const ret = this.#fd.tryIoctl(op, V.VFIO_IOMMU_MAP_DMA, encodeDmaMap(vaddr, iova, size, flags));
    if (ret < 0) throw this.#mapError(op, -ret, iova, size);
  }

  /** EINVAL has several causes: name the one this request hits (outside the usable ranges, unaligned). */
  #mapError(op: string, errno: number, iova: bigint, size: bigint): VfioError {
    const err = syscallError(op, this.path, MAP_HINTS, errno);
    if (err.code !== "EINVAL") return err;
    try {
      const info = this.iommuInfo();
      const broken = brokenMapRule(iova, size, {
        granule: info.pageSizes & -info.pageSizes, granuleName: "the IOMMU page size", ranges: info.iovaRanges,
        outsideCauses: "it hits a reserved region such as the MSI window, or lies above the IOMMU's address width", allocator: "container.iovaAllocator",
      });
      if (broken) return syscallError(op, this.path, { EINVAL: broken }, errno);
    } catch {
      // keep the generic hint
    }
    return err;
  }

  /**
   * Unmaps `[iova, iova+size)`; type1 only unmaps whole mappings, so the range
   * must cover what was mapped. Returns the number of bytes unmapped.
   * Internally this calls VFIO_IOMMU_UNMAP_DMA.
   */
  unmapDma(iova: bigint, size: number | bigint): bigint {
    const op = "VFIO_IOMMU_UNMAP_DMA";
    this.#requireType1(op);
    const start = u64Arg(op, "iova", iova, this.path);
    const length = u64Arg(op, "size", size, this.path);
    if (start + length > U64_LIMIT) throw invalidArgument(op, `iova ${hex(start)} + size ${hex(length)} passes 2^64`, "Keep the whole range below 2^64.", this.path);
    const buf = encodeDmaUnmap(start, length, 0);
    const ret = this.#fd.tryIoctl(op, V.VFIO_IOMMU_UNMAP_DMA, buf);
    if (ret >= 0) return decodeDmaUnmapSize(buf);
    // EINVAL after a hot-unplug: the kernel detached the group and dropped every mapping already.
    if (-ret === 22) {
      this.#recheckGroups();
      if (!this.canMap) return 0n;
    }
    throw syscallError(op, this.path, {
      EINVAL: "The range must be aligned to the IOMMU page size and must not split an existing mapping (type1 unmaps whole mappings only).",
    }, -ret);
  }

  /** Unmaps every DMA mapping of the container (VFIO_DMA_UNMAP_FLAG_ALL, Linux 5.13+). Returns the bytes unmapped. */
  unmapAllDma(): bigint {
    this.#requireType1("VFIO_IOMMU_UNMAP_DMA");
    const buf = encodeDmaUnmap(0n, 0, V.VFIO_DMA_UNMAP_FLAG_ALL);
    this.#fd.ioctl("VFIO_IOMMU_UNMAP_DMA", V.VFIO_IOMMU_UNMAP_DMA, buf, { EINVAL: "This kernel lacks VFIO_UNMAP_ALL (Linux 5.13+): unmap each range instead." });
    return decodeDmaUnmapSize(buf);
  }

  #requireType1(op: string): void {
    this.#fd.get(op);
    if (this.#iommuType === undefined && this.#groups.size > 0) this.#recheckGroups();
    if (this.canMap) return;
    throw new VfioError({
      op, errno: 22, code: "EINVAL", path: this.path,
      detail: this.#iommuType === "noiommu" ? "a noiommu container has no IOMMU to program" : "no IOMMU type is set (no group attached, or the last one left and the kernel dropped every mapping)",
      hint: this.#iommuType === "noiommu" ? "In noiommu mode devices DMA to physical addresses; there is nothing to map." : "Attach a group first: container.addGroup(bdf).",
    });
  }

  /**
   * The container's IOVA allocator, created on first use from
   * VFIO_IOMMU_GET_INFO (usable ranges and page sizes; `[0, 2^48)` when the
   * kernel reports no ranges). One per container, since the IOVA space is;
   * a new one once the kernel dropped every mapping.
   */
  get iovaAllocator(): IovaAllocator {
    if (this.#iovaAllocator === undefined) {
      const info = this.iommuInfo();
      this.#iovaAllocator = new IovaAllocator({ ranges: info.iovaRanges ?? DEFAULT_IOVA_RANGES, pageSizes: info.pageSizes || 0x1000n, path: this.path });
    }
    return this.#iovaAllocator;
  }

  /** @internal DmaSpace: DmaBuffer registers itself while it holds a mapping. */
  trackDma(owner: DmaOwner): () => void {
    this.#fd.get("trackDma");
    this.#dmaOwners.add(owner);
    return () => void this.#dmaOwners.delete(owner);
  }

  /**
   * Closes the devices and groups (the kernel stops their DMA and, with the
   * last group, drops every mapping), then releases every DMA buffer
   * (munmap, newest first), then the container fd. Every step runs even if
   * one fails; the first failure is rethrown at the end. Idempotent.
   */
  close(): void {
    if (this.#fd.closed) return;
    const groups = [...this.#groups];
    runAll([
      ...groups.map((g) => () => g.close()),
      () => {
        if (this.#dmaOwners.size > 0) this.#kernelDropped();
      },
      () => this.#iovaAllocator?.close(),
      () => this.#fd.close(),
    ]);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * The GC backstop's unmap: built outside the class so the closure holds the
 * fd owner only, never the container (a FinalizationRegistry holds it
 * strongly, and a captured container could then never be collected).
 */
function unmapper(fd: OwnedFd): (iova: bigint, size: number) => void {
  return (iova, size) => {
    if (fd.closed) return;
    try {
      fd.tryIoctl("VFIO_IOMMU_UNMAP_DMA", V.VFIO_IOMMU_UNMAP_DMA, encodeDmaUnmap(iova, size, 0));
    } catch {
      // a backstop never throws
    }
  };
}

function noIommuHint(): string {
  const noiommu = existsSync("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode");
  return noiommu
    ? "Load vfio_iommu_type1 (modprobe vfio_iommu_type1); without an IOMMU, noiommu mode exists on this kernel (vfio enable_unsafe_noiommu_mode=1, unsafe)."
    : "Load vfio_iommu_type1 (modprobe vfio_iommu_type1). This kernel has no noiommu mode (CONFIG_VFIO_NOIOMMU is off), so an IOMMU is required.";
}
