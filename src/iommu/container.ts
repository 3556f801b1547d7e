/**
 * The legacy VFIO container (`/dev/vfio/vfio`): an IOMMU context that groups
 * are attached to, and the DMA map/unmap of the type1 IOMMU backend.
 */
import { VfioError, invalidArgument } from "../errors.ts";
import { missingIsolationHint } from "../host/isolation.ts";
import { O_RDWR } from "../sys/libc.ts";
import { openPath } from "../sys/fd.ts";
import { OwnedFd } from "../sys/owned-fd.ts";
import type { Hints } from "../sys/check.ts";
import * as V from "../uapi/vfio.ts";
import { SIZEOF } from "../uapi/layout.ts";
import { argszBuffer, argszOf, decodeDmaUnmapSize, decodeIommuInfo, encodeDmaMap, encodeDmaUnmap, type IommuInfo } from "../uapi/structs.ts";
import { Group, type GroupOpenOptions } from "./group.ts";
import { DEFAULT_IOVA_RANGES, IovaAllocator } from "./iova-allocator.ts";

/** Something holding DMA mappings in a container (a DmaBuffer): closed before the groups. */
export interface DmaOwner {
  close(): void;
}

/** The IOMMU models a container can be set to. */
export type IommuType = "type1v2" | "type1" | "noiommu";

const IOMMU_TYPE_IDS: Record<IommuType, number> = {
  type1v2: V.VFIO_TYPE1v2_IOMMU,
  type1: V.VFIO_TYPE1_IOMMU,
  noiommu: V.VFIO_NOIOMMU_IOMMU,
};

/** Hints for attaching a group to an IOMMU (VFIO_SET_IOMMU, and SET_CONTAINER once the IOMMU is set). */
export const ATTACH_HINTS: Hints = {
  EPERM: missingIsolationHint(),
  EBUSY: "The group is already attached to a container (in this or another process); close that first.",
  ENODEV: "No IOMMU backend accepted the group: load vfio_iommu_type1 (modprobe vfio_iommu_type1).",
  EINVAL: "The container already uses another IOMMU type, or the group's IOMMU does not support it.",
};

const MAP_HINTS: Hints = {
  EEXIST: "That IOVA range overlaps an existing mapping: unmap it first or pick another IOVA.",
  ENOMEM:
    "Pinning the memory failed: the locked-memory limit (ulimit -l, RLIMIT_MEMLOCK) is too low for this size, or the host is out of memory. Raise the limit (run as root, or `ulimit -l unlimited`).",
  ENOSPC: "The container ran out of DMA mappings (vfio_iommu_type1 dma_entry_limit): unmap some, or raise the module parameter.",
  EINVAL: "vaddr, iova and size must be aligned to the IOMMU page size (see container.iommuInfo().pageSizes) and size non-zero.",
  EFAULT: "The virtual address range is not mapped in this process.",
};

/** Options of {@link Container.open}. */
export interface ContainerOpenOptions {
  /** The container node; default `/dev/vfio/vfio`. */
  path?: string;
}

/** One DMA mapping request for {@link Container.mapDma}. */
export interface DmaMapRequest {
  /** Process virtual address (page-aligned). */
  vaddr: number | bigint;
  /** IO virtual address the device will use (page-aligned). */
  iova: bigint;
  /** Size in bytes (a multiple of the IOMMU page size). */
  size: number | bigint;
  /** The device may read this memory (default true). */
  read?: boolean;
  /** The device may write this memory (default true). */
  write?: boolean;
}

/**
 * A VFIO container. Open it, add groups (the first one also sets the IOMMU
 * type), then open devices from those groups. Closing the container closes
 * its groups and their devices first, in the order the kernel requires
 * (device, then group, then container).
 *
 * ```ts
 * using container = Container.open();
 * using group = container.addGroup("0000:01:00.0");
 * ```
 */
export class Container implements Disposable {
  readonly #fd: OwnedFd;
  #iommuType: IommuType | undefined;
  readonly #groups = new Set<Group>();
  readonly #dmaOwners = new Set<DmaOwner>();
  #iovaAllocator: IovaAllocator | undefined;

  private constructor(fd: OwnedFd) {
    this.#fd = fd;
  }

  /**
   * Opens the container node and checks the API version.
   * Internally this calls open(2) and VFIO_GET_API_VERSION.
   */
  static open(options: ContainerOpenOptions = {}): Container {
    const path = options.path ?? "/dev/vfio/vfio";
    const fd = openPath(path, O_RDWR, "open container", {
      ENOENT: "VFIO is not loaded: run `modprobe vfio-pci` (and `modprobe vfio_iommu_type1`).",
      EACCES: "Permission denied on /dev/vfio/vfio: run as root or add your user to a group that owns it.",
    });
    const container = new Container(new OwnedFd(fd, path, "container"));
    const version = container.#fd.ioctl("VFIO_GET_API_VERSION", V.VFIO_GET_API_VERSION, 0);
    if (version !== V.VFIO_API_VERSION) {
      container.close();
      throw new VfioError({ op: "VFIO_GET_API_VERSION", code: "EPROTO", path, detail: `kernel API version ${version}, expected ${V.VFIO_API_VERSION}`, hint: "This kernel's VFIO API is not supported by bun-vfio." });
    }
    return container;
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

  /** The IOMMU type set on this container, or undefined before the first group is attached. */
  get iommuType(): IommuType | undefined {
    return this.#iommuType;
  }

  /** The groups currently attached. */
  get groups(): readonly Group[] {
    return [...this.#groups];
  }

  /**
   * Whether the kernel supports an extension or IOMMU type (`VFIO_TYPE1v2_IOMMU`, `VFIO_UNMAP_ALL`, ...).
   * Internally this calls VFIO_CHECK_EXTENSION.
   */
  checkExtension(extension: number | IommuType): boolean {
    const id = typeof extension === "number" ? extension : IOMMU_TYPE_IDS[extension];
    return this.#fd.ioctl("VFIO_CHECK_EXTENSION", V.VFIO_CHECK_EXTENSION, id) > 0;
  }

  /** The IOMMU types this kernel offers, best first (type1v2, type1, noiommu). */
  supportedIommuTypes(): IommuType[] {
    return (Object.keys(IOMMU_TYPE_IDS) as IommuType[]).filter((t) => this.checkExtension(t));
  }

  /**
   * Sets the IOMMU model. Needs at least one group attached; done for you by
   * {@link addGroup}. Without `type`, picks type1v2, then type1, then noiommu.
   * Internally this calls VFIO_SET_IOMMU; EPERM means MSIs are not isolated.
   */
  setIommu(type?: IommuType): IommuType {
    if (this.#iommuType !== undefined) {
      if (type === undefined || type === this.#iommuType) return this.#iommuType;
      throw invalidArgument("VFIO_SET_IOMMU", `the container already uses ${this.#iommuType}`, "Open another container for another IOMMU type.", this.path);
    }
    const chosen = type ?? this.supportedIommuTypes()[0];
    if (chosen === undefined) {
      throw new VfioError({ op: "VFIO_SET_IOMMU", code: "ENODEV", errno: 19, path: this.path, detail: "the kernel offers no IOMMU type", hint: "Load vfio_iommu_type1 (modprobe vfio_iommu_type1), or enable noiommu mode (vfio enable_unsafe_noiommu_mode=1)." });
    }
    this.#fd.ioctl("VFIO_SET_IOMMU", V.VFIO_SET_IOMMU, IOMMU_TYPE_IDS[chosen], ATTACH_HINTS);
    this.#iommuType = chosen;
    return chosen;
  }

  /**
   * Opens a group (by number or by a member's PCI address), checks that it is
   * viable, attaches it to this container and sets the IOMMU type if this is
   * the first group. Internally this calls VFIO_GROUP_GET_STATUS,
   * VFIO_GROUP_SET_CONTAINER and VFIO_SET_IOMMU.
   */
  addGroup(groupOrBdf: number | string, options: GroupOpenOptions & { iommuType?: IommuType } = {}): Group {
    this.#fd.get("addGroup");
    const group = Group.open(groupOrBdf, options);
    try {
      group.setContainer(this);
      if (this.#iommuType === undefined) this.setIommu(options.iommuType);
    } catch (err) {
      group.close();
      throw err;
    }
    return group;
  }

  /** Called by Group when it attaches/detaches; not for users. */
  _track(group: Group, attached: boolean): void {
    if (attached) this.#groups.add(group);
    else this.#groups.delete(group);
    // A group joining an IOMMU already in use may bring reserved regions of its own.
    if (attached && this.#iovaAllocator && this.#iommuType && this.#iommuType !== "noiommu") {
      this.#iovaAllocator.restrictTo(this.iommuInfo().iovaRanges ?? DEFAULT_IOVA_RANGES);
    }
    // The kernel drops the IOMMU model when the last group leaves.
    if (!attached && this.#groups.size === 0) this.#iommuType = undefined;
  }

  /**
   * The type1 IOMMU's properties: page sizes, usable IOVA ranges, DMA mappings
   * still available. Internally this calls VFIO_IOMMU_GET_INFO (twice when the
   * capability chain needs a bigger buffer).
   */
  iommuInfo(): IommuInfo {
    this.#requireType1("VFIO_IOMMU_GET_INFO");
    let buf = argszBuffer(SIZEOF.vfio_iommu_type1_info);
    this.#fd.ioctl("VFIO_IOMMU_GET_INFO", V.VFIO_IOMMU_GET_INFO, buf);
    if (argszOf(buf) > buf.byteLength) {
      buf = argszBuffer(argszOf(buf));
      this.#fd.ioctl("VFIO_IOMMU_GET_INFO", V.VFIO_IOMMU_GET_INFO, buf);
    }
    return decodeIommuInfo(buf);
  }

  /**
   * Maps process memory at an IOVA for every device in the container.
   * Internally this calls VFIO_IOMMU_MAP_DMA. Prefer DmaBuffer, which owns
   * the memory and unmaps it in the right order.
   */
  mapDma(request: DmaMapRequest): void {
    this.#requireType1("VFIO_IOMMU_MAP_DMA");
    let flags = 0;
    if (request.read ?? true) flags |= V.VFIO_DMA_MAP_FLAG_READ;
    if (request.write ?? true) flags |= V.VFIO_DMA_MAP_FLAG_WRITE;
    if (flags === 0) throw invalidArgument("VFIO_IOMMU_MAP_DMA", "neither read nor write access requested", "Allow the device to read, write or both.", this.path);
    this.#fd.ioctl("VFIO_IOMMU_MAP_DMA", V.VFIO_IOMMU_MAP_DMA, encodeDmaMap(request.vaddr, request.iova, request.size, flags), MAP_HINTS);
  }

  /**
   * Unmaps `[iova, iova+size)`; type1 only unmaps whole mappings, so the range
   * must cover what was mapped. Returns the number of bytes unmapped.
   * Internally this calls VFIO_IOMMU_UNMAP_DMA.
   */
  unmapDma(iova: bigint, size: number | bigint): bigint {
    this.#requireType1("VFIO_IOMMU_UNMAP_DMA");
    const buf = encodeDmaUnmap(iova, size, 0);
    this.#fd.ioctl("VFIO_IOMMU_UNMAP_DMA", V.VFIO_IOMMU_UNMAP_DMA, buf, {
      EINVAL: "The range must be aligned to the IOMMU page size and must not split an existing mapping (type1 unmaps whole mappings only).",
    });
    return decodeDmaUnmapSize(buf);
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
    if (this.#iommuType === "type1" || this.#iommuType === "type1v2") return;
    throw new VfioError({
      op, errno: 22, code: "EINVAL", path: this.path,
      detail: this.#iommuType === "noiommu" ? "a noiommu container has no IOMMU to program" : "no IOMMU type is set yet",
      hint: this.#iommuType === "noiommu" ? "In noiommu mode devices DMA to physical addresses; there is nothing to map." : "Attach a group first: container.addGroup(bdf).",
    });
  }

  /**
   * The container's IOVA allocator, created on first use from
   * VFIO_IOMMU_GET_INFO (usable ranges and page sizes; `[0, 2^48)` when the
   * kernel reports no ranges). One per container, since the IOVA space is.
   */
  get iovaAllocator(): IovaAllocator {
    if (this.#iovaAllocator === undefined) {
      const info = this.iommuInfo();
      this.#iovaAllocator = new IovaAllocator({ ranges: info.iovaRanges ?? DEFAULT_IOVA_RANGES, pageSizes: info.pageSizes || 0x1000n, path: this.path });
    }
    return this.#iovaAllocator;
  }

  /** Called by DmaBuffer when it maps (`held`) and unmaps; not for users. */
  _trackDma(owner: DmaOwner, held: boolean): void {
    if (held) this.#dmaOwners.add(owner);
    else this.#dmaOwners.delete(owner);
  }

  /**
   * Releases every DMA buffer (IOMMU unmap, then munmap, newest first), then
   * closes every attached group (and their devices), then the container.
   * Idempotent; the first error is rethrown after everything was closed.
   */
  close(): void {
    if (this.#fd.closed) return;
    let failure: unknown;
    for (const owner of [...this.#dmaOwners].reverse()) {
      try {
        owner.close();
      } catch (err) {
        failure ??= err;
      }
    }
    try {
      for (const group of [...this.#groups]) group.close();
    } finally {
      this.#fd.close();
    }
    if (failure !== undefined) throw failure;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
