/**
 * The iommufd backend (`/dev/iommu`, Linux 6.2+; device cdevs 6.6+): one
 * IO address space (IOAS) that devices opened through their VFIO cdev
 * (`/dev/vfio/devices/vfioN`) are bound and attached to. It is the
 * {@link DmaSpace} of those devices, so DmaBuffer, Bar, interrupts and the
 * mmap decision run over it unchanged.
 *
 * Teardown order: devices first (closing a cdev detaches it from the IOAS
 * and unbinds it), then DMA buffers (IOMMU_IOAS_UNMAP, then munmap), then
 * the iommufd fd (which destroys the IOAS).
 */
import { VfioError, invalidArgument } from "../support/errors.ts";
import { optionsArg, U64_LIMIT, u64Arg } from "../support/args.ts";
import { hex, show } from "../support/format.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, O_RDWR } from "../sys/constants.ts";
import { openPath } from "../sys/fd.ts";
import { OwnedFd } from "../sys/owned-fd.ts";
import { syscallError, type Hints } from "../sys/check.ts";
import { MappedMemory } from "../sys/mmio.ts";
import { pageSize } from "../sys/memory.ts";
import { runAll } from "../sys/teardown.ts";
import { WeakMembers } from "../support/weak-members.ts";
import * as F from "../uapi/iommufd.ts";
import type { IovaRange } from "../uapi/structs.ts";
import { normalizeBdf } from "../host/bdf.ts";
import { vfioCdevOf } from "../host/cdev.ts";
import { groupViability, iommuGroupOf, notViableError } from "../host/groups.ts";
import { msiIsolationAdvice } from "../host/isolation-advice.ts";
import type { HostOptions } from "../host/sysfs.ts";
import { Device, type DeviceHandle } from "../device/device.ts";
import { PciDevice, type PciDeviceOptions } from "../device/pci-device.ts";
import type { DmaMapRequest, DmaOwner, DmaSpace } from "./dma-space.ts";
import { IovaAllocator } from "./iova-allocator.ts";
import { brokenMapRule } from "./map-rules.ts";
import type { DeviceOpenOptions } from "./group.ts";

/** Options of {@link Iommufd.open}. */
export interface IommufdOpenOptions extends HostOptions {
  /** The iommufd node; default `/dev/iommu`. */
  path?: string;
}

/** The IOAS's usable IOVA ranges (inclusive ends) and the alignment mappings need. */
export interface IoasRanges {
  ranges: IovaRange[];
  /** `out_iova_alignment`: IOVA and length of every mapping must be multiples of it. */
  alignment: bigint;
}

const MAP_HINTS: Hints = {
  EEXIST: "That IOVA range overlaps an existing mapping: unmap it first or pick another IOVA.",
  ENOMEM: "Pinning the memory failed: the locked-memory limit (ulimit -l, RLIMIT_MEMLOCK; iommufd charges it per user by default) is too low, or the host is out of memory.",
  EINVAL: "vaddr, iova and size must be aligned to the IOAS's alignment (iommufd.iovaRanges().alignment) and the range must lie inside iommufd.iovaRanges().ranges.",
  ENOENT: "The IOAS no longer exists.",
  EFAULT: "The virtual address range is not mapped in this process.",
};

/** What the cdev bind can fail with, and what to do. */
function bindHints(bdf: string, host: HostOptions): Hints {
  return {
    EPERM: msiIsolationAdvice(host.root, process.arch, "iommufd"),
    EBUSY: `${bdf} is in use through its VFIO group (/dev/vfio/N, by this or another process: QEMU, a type1 Container): close that first, a device is either group- or cdev-owned.`,
    EINVAL: "The kernel refused the bind: with a VF token, this kernel's VFIO_DEVICE_BIND_IOMMUFD has no token field (VFIO_DEVICE_BIND_FLAG_TOKEN, Linux 6.17): use the type1 backend for that VF.",
    EACCES: `${bdf} needs a VF token (options.vfToken) matching the one its PF's user set.`,
    ENODEV: `${bdf} was removed.`,
  };
}

/**
 * The cdev bind answers EPERM both without MSI isolation and when the
 * device's IOMMU group is not viable (another member is on a driver using
 * the DMA API; measured on 6.12: the same bind succeeds once that member is
 * unbound). For the second, the error type1 gives (ENOTVIABLE, naming the
 * blockers) instead of the isolation advice; `undefined` when sysfs shows a
 * viable group or the error is another.
 */
function notViable(err: unknown, bdf: string, cdev: string, host: HostOptions): VfioError | undefined {
  if (!(err instanceof VfioError) || err.code !== "EPERM") return undefined;
  let id: number;
  try {
    id = iommuGroupOf(bdf, host);
  } catch {
    return undefined;
  }
  if (groupViability(id, host).viable) return undefined;
  return notViableError("VFIO_DEVICE_BIND_IOMMUFD", cdev, id, host, { errno: err.errno, cause: err, note: " (the kernel answered EPERM)" });
}

/**
 * An iommufd context with one IOAS. Open it, open devices by PCI address
 * (each is bound to this iommufd and attached to the IOAS), allocate DMA
 * buffers in it. Closing it closes the devices, then the buffers, then
 * the fd.
 *
 * ```ts
 * using iommu = Iommufd.open();                 // /dev/iommu, IOMMU_IOAS_ALLOC
 * using dev = iommu.openPciDevice("0000:01:00.0");
 * using buf = DmaBuffer.allocate(iommu, 4096);
 * ```
 */
export class Iommufd implements DmaSpace, Disposable {
  readonly #fd: OwnedFd;
  readonly #host: HostOptions;
  readonly #devices = new WeakMembers<Device>();
  readonly #dmaOwners = new WeakMembers<DmaOwner>();
  #iovaAllocator: IovaAllocator | undefined;
  /** The IOAS object ID (IOMMU_IOAS_ALLOC's `out_ioas_id`). */
  readonly ioasId: number;
  /** The backend's name, as `explain()` and the isolation evidence give it. */
  readonly backend = "iommufd" as const;
  /** How devices address DMA memory here: through the IOMMU, at IOVAs. */
  readonly addressing = "iova" as const;
  /** @internal See DmaSpace.backstopUnmap. */
  readonly backstopUnmap: (iova: bigint, size: number) => void;

  private constructor(fd: OwnedFd, ioasId: number, host: HostOptions) {
    this.#fd = fd;
    this.ioasId = ioasId;
    this.#host = host;
    this.backstopUnmap = unmapper(fd, ioasId);
  }

  /** Opens `/dev/iommu` and allocates an IOAS. Internally this calls open(2) and IOMMU_IOAS_ALLOC. */
  static open(options: IommufdOpenOptions = {}): Iommufd {
    const opts = optionsArg("Iommufd.open", options);
    const path = opts.path ?? (opts.root ? `${opts.root.replace(/\/$/, "")}/dev/iommu` : "/dev/iommu");
    if (typeof path !== "string") throw invalidArgument("Iommufd.open", `path ${show(path)} is not a string`, "Pass the iommufd node's path, or nothing for /dev/iommu.");
    const fd = new OwnedFd(openPath(path, O_RDWR, "open iommufd", {
      ENOENT: "No /dev/iommu: this kernel has no iommufd (CONFIG_IOMMUFD; Debian's kernels leave it off) or the module is not loaded (modprobe iommufd). Use the type1 backend (backend: \"type1\").",
      EACCES: "Permission denied on /dev/iommu: run as root, or give your user access to it (udev rule).",
    }), path, "iommufd");
    try {
      const buf = F.encodeIoasAlloc();
      fd.ioctl("IOMMU_IOAS_ALLOC", F.IOMMU_IOAS_ALLOC, buf);
      return new Iommufd(fd, F.decodeIoasAllocId(buf), opts);
    } catch (err) {
      fd.close();
      throw err;
    }
  }

  /** The iommufd fd (escape hatch for raw ioctls). Throws after close. */
  get unsafeFd(): number {
    return this.#fd.get("unsafeFd");
  }

  /** The node this context was opened from. */
  get path(): string {
    return this.#fd.path;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#fd.closed;
  }

  /** True while open: an IOAS holds mappings even before a device is attached. */
  get canMap(): boolean {
    return !this.closed;
  }

  /** The devices opened here and not yet closed. */
  get devices(): readonly Device[] {
    return this.#devices.values();
  }

  /**
   * The IOAS's usable IOVA ranges and alignment. They narrow as devices
   * attach (reserved regions such as the MSI window) and widen as they
   * detach. Internally this calls IOMMU_IOAS_IOVA_RANGES (twice: once for
   * the count, once into a buffer that holds them all).
   */
  iovaRanges(): IoasRanges {
    const op = "IOMMU_IOAS_IOVA_RANGES";
    const probe = F.encodeIovaRanges(this.ioasId, 0, 0n);
    const ret = this.#fd.tryIoctl(op, F.IOMMU_IOAS_IOVA_RANGES, probe);
    if (ret < 0 && -ret !== 90 /* EMSGSIZE: more ranges than the 0 we offered */) throw syscallError(op, this.path, {}, -ret);
    const { count, alignment } = F.decodeIovaRangesHeader(probe);
    if (count === 0) return { ranges: [], alignment };
    const bytes = count * F.IOMMUFD_SIZEOF.iommu_iova_range;
    const scratch = MappedMemory.mapAnonymous(Math.ceil(bytes / pageSize()) * pageSize(), MAP_PRIVATE | MAP_ANONYMOUS, { op, path: this.path });
    try {
      const buf = F.encodeIovaRanges(this.ioasId, count, scratch.address);
      this.#fd.ioctl(op, F.IOMMU_IOAS_IOVA_RANGES, buf);
      const got = F.decodeIovaRangesHeader(buf);
      return { ranges: F.decodeIovaRangeArray(scratch.bytes, Math.min(got.count, count)), alignment: got.alignment };
    } finally {
      scratch.close();
    }
  }

  /**
   * The IOAS's IOVA allocator, created on first use from
   * {@link iovaRanges} (granule: the alignment, at least the host page);
   * narrowed again whenever a device attaches.
   */
  get iovaAllocator(): IovaAllocator {
    this.#fd.get("iovaAllocator");
    if (this.#iovaAllocator === undefined) {
      const { ranges, alignment } = this.iovaRanges();
      const granule = alignment > BigInt(pageSize()) ? alignment : BigInt(pageSize());
      this.#iovaAllocator = new IovaAllocator({ ranges, pageSizes: granule, path: this.path });
    }
    return this.#iovaAllocator;
  }

  /**
   * Maps process memory at a fixed IOVA for every device of the IOAS.
   * Internally this calls IOMMU_IOAS_MAP with IOMMU_IOAS_MAP_FIXED_IOVA.
   * Prefer DmaBuffer, which owns the memory and unmaps it in order.
   */
  mapDma(request: DmaMapRequest): void {
    const op = "IOMMU_IOAS_MAP";
    this.#fd.get(op);
    const req = optionsArg(op, request, this.path);
    const vaddr = u64Arg(op, "vaddr", req.vaddr, this.path);
    const iova = u64Arg(op, "iova", req.iova, this.path);
    const size = u64Arg(op, "size", req.size, this.path);
    if (size === 0n) throw invalidArgument(op, "size is 0", "Map at least one page.", this.path);
    if (iova + size > U64_LIMIT) throw invalidArgument(op, `iova ${hex(iova)} + size ${hex(size)} passes 2^64`, "Keep the whole range below 2^64.", this.path);
    let flags = F.IOMMU_IOAS_MAP_FIXED_IOVA;
    if (req.read ?? true) flags |= F.IOMMU_IOAS_MAP_READABLE;
    if (req.write ?? true) flags |= F.IOMMU_IOAS_MAP_WRITEABLE;
    if ((flags & ~F.IOMMU_IOAS_MAP_FIXED_IOVA) === 0) throw invalidArgument(op, "neither read nor write access requested", "Allow the device to read, write or both.", this.path);
    const ret = this.#fd.tryIoctl(op, F.IOMMU_IOAS_MAP, F.encodeIoasMap(this.ioasId, flags, vaddr, size, iova));
    if (ret < 0) throw this.#mapError(op, -ret, iova, size);
  }

  /** EINVAL has several causes: name the one this request hits. */
  #mapError(op: string, errno: number, iova: bigint, size: bigint): VfioError {
    const err = syscallError(op, this.path, MAP_HINTS, errno);
    if (err.code !== "EINVAL") return err;
    try {
      const { ranges, alignment } = this.iovaRanges();
      const broken = brokenMapRule(iova, size, {
        granule: alignment, granuleName: "the IOAS alignment", ranges, outsideCauses: "it hits a reserved region such as the MSI window", allocator: "iommufd.iovaAllocator",
      });
      if (broken) return syscallError(op, this.path, { EINVAL: broken }, errno);
    } catch {
      // keep the generic hint
    }
    return err;
  }

  /**
   * Unmaps `[iova, iova+size)`, which must cover whole mappings (iommufd
   * never splits one). Returns the bytes unmapped. Internally this calls
   * IOMMU_IOAS_UNMAP.
   */
  unmapDma(iova: bigint, size: number | bigint): bigint {
    const op = "IOMMU_IOAS_UNMAP";
    this.#fd.get(op);
    const start = u64Arg(op, "iova", iova, this.path);
    const length = u64Arg(op, "size", size, this.path);
    if (start + length > U64_LIMIT) throw invalidArgument(op, `iova ${hex(start)} + size ${hex(length)} passes 2^64`, "Keep the whole range below 2^64.", this.path);
    const buf = F.encodeIoasUnmap(this.ioasId, start, length);
    this.#fd.ioctl(op, F.IOMMU_IOAS_UNMAP, buf, {
      ENOENT: `Nothing is mapped in ${hex(start)}+${hex(length)}, or the range splits a mapping (iommufd answers ENOENT for both): unmap exactly what was mapped, or a range covering whole mappings.`,
      EINVAL: "iova and size must be multiples of the IOAS alignment (iommufd.iovaRanges().alignment).",
    });
    return F.decodeIoasUnmapLength(buf);
  }

  /** Unmaps everything in the IOAS (IOMMU_IOAS_UNMAP of 0..2^64-1). Returns the bytes unmapped. */
  unmapAllDma(): bigint {
    const op = "IOMMU_IOAS_UNMAP";
    const buf = F.encodeIoasUnmap(this.ioasId, 0n, U64_LIMIT - 1n); // iova 0, length U64_MAX: "unmap everything"
    const ret = this.#fd.tryIoctl(op, F.IOMMU_IOAS_UNMAP, buf);
    if (ret < 0 && -ret !== 2 /* ENOENT: nothing was mapped */) throw syscallError(op, this.path, {}, -ret);
    return ret < 0 ? 0n : F.decodeIoasUnmapLength(buf);
  }

  /** @internal DmaSpace: DmaBuffer registers itself while it holds a mapping. */
  trackDma(owner: DmaOwner): () => void {
    this.#fd.get("trackDma");
    this.#dmaOwners.add(owner);
    return () => void this.#dmaOwners.delete(owner);
  }

  /**
   * Opens a PCI device bound to vfio-pci through its cdev, binds it to this
   * iommufd and attaches it to the IOAS. Internally this calls open(2) on
   * `/dev/vfio/devices/vfioN` (found in sysfs), VFIO_DEVICE_BIND_IOMMUFD
   * (with the VF token when given) and VFIO_DEVICE_ATTACH_IOMMUFD_PT.
   */
  openPciDevice(bdf: string, options: DeviceOpenOptions & PciDeviceOptions = {}): PciDevice {
    const opts = optionsArg("openPciDevice", options, this.path);
    const device = new PciDevice(this.#handle(normalizeBdf(bdf), opts), this.#host, opts);
    this.#devices.add(device);
    return device;
  }

  /** Like {@link openPciDevice}, as a plain {@link Device}. */
  openDevice(bdf: string, options: DeviceOpenOptions = {}): Device {
    const device = new Device(this.#handle(normalizeBdf(bdf), optionsArg("openDevice", options, this.path)));
    this.#devices.add(device);
    return device;
  }

  #handle(bdf: string, options: DeviceOpenOptions): DeviceHandle {
    this.#fd.get("VFIO_DEVICE_BIND_IOMMUFD");
    const token = options.vfToken === undefined ? undefined : F.uuidBytes(String(options.vfToken));
    if (options.vfToken !== undefined && token === undefined) {
      throw invalidArgument("VFIO_DEVICE_BIND_IOMMUFD", `vfToken ${show(options.vfToken)} is not a UUID`, "Pass the VF token as a UUID string (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).", this.path);
    }
    const cdev = vfioCdevOf(bdf, this.#host);
    const fd = new OwnedFd(openPath(cdev, O_RDWR, "open device cdev", {
      EACCES: `Permission denied on ${cdev}: run as root, or give your user the node (udev rule) and /dev/iommu.`,
      EBUSY: `${bdf} is open elsewhere.`,
    }), cdev, "device");
    try {
      try {
        this.#bind(fd, bdf, token);
      } catch (err) {
        throw notViable(err, bdf, cdev, this.#host) ?? err;
      }
      fd.ioctl("VFIO_DEVICE_ATTACH_IOMMUFD_PT", F.VFIO_DEVICE_ATTACH_IOMMUFD_PT, F.encodeAttachPt(this.ioasId), {
        EINVAL: "The IOMMU cannot serve this device from this IOAS (an incompatible IOMMU, or existing mappings outside the device's reach): use a separate Iommufd.",
        EBUSY: "The device is already attached.",
      });
      // A device brings its reserved regions (MSI window): the allocator must stay out of them.
      if (this.#iovaAllocator) this.#iovaAllocator.restrictTo(this.iovaRanges().ranges);
    } catch (err) {
      fd.close();
      throw err;
    }
    const devices = this.#devices;
    const raw = fd.disown();
    return {
      fd: raw, name: bdf, path: cdev,
      attachment: () => ({ iommuType: "iommufd" }),
      closed: (device) => void devices.delete(device),
      closeAll: () => runAll(devices.values().filter((d) => d.name === bdf).map((d) => () => d.close())),
    };
  }

  /** VFIO_DEVICE_BIND_IOMMUFD; the VF token goes in a page of its own, since the kernel reads it through a pointer. */
  #bind(fd: OwnedFd, bdf: string, token: Uint8Array | undefined): void {
    const op = "VFIO_DEVICE_BIND_IOMMUFD";
    const hints = bindHints(bdf, this.#host);
    if (token === undefined) {
      fd.ioctl(op, F.VFIO_DEVICE_BIND_IOMMUFD, F.encodeBindIommufd(this.#fd.get(op)), hints);
      return;
    }
    const page = MappedMemory.mapAnonymous(pageSize(), MAP_PRIVATE | MAP_ANONYMOUS, { op, path: fd.path });
    try {
      page.bytes.set(token);
      fd.ioctl(op, F.VFIO_DEVICE_BIND_IOMMUFD, F.encodeBindIommufd(this.#fd.get(op), page.address), hints);
    } finally {
      page.close();
    }
  }

  /**
   * Closes the devices (each detaches from the IOAS), then releases every
   * DMA buffer (unmap, then munmap, newest first), then the fd, which
   * destroys the IOAS. Every step runs even if one fails; the first failure
   * is rethrown. Idempotent.
   */
  close(): void {
    if (this.#fd.closed) return;
    const owners = this.#dmaOwners.values().reverse();
    runAll([
      ...this.#devices.values().map((d) => () => d.close()),
      ...owners.map((o) => () => o.release("close")),
      () => this.#iovaAllocator?.close(),
      () => this.#fd.close(),
    ]);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** The GC backstop's unmap, holding only the fd owner (never the Iommufd, which could then never be collected). */
function unmapper(fd: OwnedFd, ioasId: number): (iova: bigint, size: number) => void {
  return (iova, size) => {
    if (fd.closed) return;
    try {
      fd.tryIoctl("IOMMU_IOAS_UNMAP", F.IOMMU_IOAS_UNMAP, F.encodeIoasUnmap(ioasId, iova, BigInt(size)));
    } catch {
      // a backstop never throws
    }
  };
}
