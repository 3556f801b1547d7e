/**
 * A fake kernel behind the runtime seam, for host unit tests of object
 * lifecycles (Container, Group, Device, DmaBuffer) without VFIO. It models
 * what those lifecycles depend on, after drivers/vfio (Linux 6.12): one
 * container node, groups that attach to it, type1 mappings that are
 * dropped when the last group leaves and unmapped whole only, device fds
 * with a 16 KiB BAR 0 (MSIX_MAPPABLE) and config space from a QEMU nvme
 * capture, mappings that fault ("SIGBUS") while memory decoding is off,
 * and a log of every close/munmap/unmap in order. Faults can be injected.
 *
 * The guest suites remain the ground truth; this is for order, leaks and
 * failure paths that a real kernel cannot be made to produce on demand.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { OFFSETOF as O, SIZEOF } from "../../src/uapi/layout.ts";
import * as V from "../../src/uapi/vfio.ts";
import type { ByteStream, MemoryView, MmapResult, Pointer, Sys } from "../../src/sys/types.ts";

const EPERM = 1, ENOENT = 2, EBADF = 9, EBUSY = 16, EINVAL = 22, ENOTTY = 25, EAGAIN = 11, EIO = 5;

/** Thrown by a fake mapping touched while the device has revoked it: a real process would die of SIGBUS. */
export class FakeSigbus extends Error {
  override readonly name = "FakeSigbus";
}

type Kind = "container" | "group" | "device" | "eventfd" | "other";

interface FdEntry {
  kind: Kind;
  path: string;
  group?: FakeGroup;
  device?: FakeDevice;
  counter?: bigint;
}

interface FakeGroup {
  id: number;
  openFd: number | undefined;
  container: boolean;
  openDevices: number;
}

interface FakeDevice {
  name: string;
  group: FakeGroup;
  config: Uint8Array;
  bar0: ArrayBuffer;
  mmaps: number;
}

interface Mapping {
  buffer: ArrayBuffer;
  offset: number;
  length: number;
  device?: FakeDevice;
}

const BAR0_SIZE = 0x4000;
const REGION_SHIFT = 40n;

/** Clears the PM capability's power state (PMCSR bits 1:0), as vfio-pci does on open. */
function wakeToD0(config: Uint8Array): void {
  for (let at = config[0x34]! & 0xfc, hops = 0; at !== 0 && hops < 48; at = config[at + 1]! & 0xfc, hops++) {
    if (config[at] === 0x01) config[at + 4] = config[at + 4]! & ~0x3;
  }
}

export class FakeKernel implements Sys {
  readonly name = "fake";
  readonly arch = "x64" as const;
  /** Every release in order: `close <path>`, `munmap <what>`, `unmap-dma <iova>`. */
  readonly log: string[] = [];
  /** Errno to fail the next call of an operation with (e.g. `close` -> EIO), consumed once. */
  readonly failNext = new Map<string, number>();
  readonly #fds = new Map<number, FdEntry>();
  readonly #groups = new Map<number, FakeGroup>();
  readonly #maps = new Map<number, Mapping>();
  /** type1 mappings: iova -> size. */
  readonly dma = new Map<bigint, bigint>();
  #iommuSet = false;
  #nextFd = 10;
  #nextPointer = 0x1000_0000;
  readonly #root: string;
  readonly #nvmeConfig: Uint8Array;

  /** `root` is the fake sysfs/dev tree the library is pointed at (paths arrive under it). */
  constructor(root: string, groups: number[]) {
    this.#root = root;
    this.#nvmeConfig = new Uint8Array(readFileSync(join(import.meta.dir, "../fixtures/config/nvme.config.bin")));
    for (const id of groups) this.#groups.set(id, { id, openFd: undefined, container: false, openDevices: 0 });
  }

  /** Open fds by kind (leak checks). */
  openFds(kind?: Kind): number {
    return [...this.#fds.values()].filter((e) => kind === undefined || e.kind === kind).length;
  }

  /** Live mappings (leak checks). */
  get mappings(): number {
    return this.#maps.size;
  }

  #fail(op: string): number | undefined {
    const errno = this.failNext.get(op);
    if (errno !== undefined) this.failNext.delete(op);
    return errno;
  }

  #fd(entry: FdEntry): number {
    const fd = this.#nextFd++;
    this.#fds.set(fd, entry);
    return fd;
  }

  open(path: string): number {
    const rel = path.startsWith(this.#root) ? path.slice(this.#root.length) : path;
    if (rel === "/dev/vfio/vfio") return this.#fd({ kind: "container", path });
    const m = /^\/dev\/vfio\/(\d+)$/.exec(rel);
    const group = m ? this.#groups.get(Number(m[1])) : undefined;
    if (!group) return -ENOENT;
    if (group.openFd !== undefined) return -EBUSY;
    const fd = this.#fd({ kind: "group", path, group });
    group.openFd = fd;
    return fd;
  }

  close(fd: number): number {
    const entry = this.#fds.get(fd);
    if (!entry) return -EBADF;
    this.#fds.delete(fd);
    this.log.push(`close ${entry.kind} ${entry.path}`);
    if (entry.kind === "group" && entry.group) {
      entry.group.openFd = undefined;
      if (entry.group.container) this.#leave(entry.group);
    }
    if (entry.kind === "device" && entry.device) entry.device.group.openDevices--;
    const injected = this.#fail("close");
    return injected ? -injected : 0;
  }

  /** A group leaves the container; with the last one the IOMMU model and every mapping go. */
  #leave(group: FakeGroup): void {
    group.container = false;
    if ([...this.#groups.values()].some((g) => g.container)) return;
    this.#iommuSet = false;
    for (const iova of this.dma.keys()) this.log.push(`kernel-drop ${iova.toString(16)}`);
    this.dma.clear();
  }

  ioctl(fd: number, request: number, arg: Uint8Array | number): number {
    const entry = this.#fds.get(fd);
    if (!entry) return -EBADF;
    const buf = typeof arg === "number" ? undefined : arg;
    const dv = buf ? new DataView(buf.buffer, buf.byteOffset, buf.byteLength) : undefined;
    const injected = this.#fail(`ioctl ${request}`);
    if (injected) return -injected;
    switch (entry.kind) {
      case "container": return this.#containerIoctl(request, arg, dv);
      case "group": return this.#groupIoctl(entry.group!, request, arg, buf, dv);
      case "device": return this.#deviceIoctl(entry.device!, request, dv);
      default: return -ENOTTY;
    }
  }

  #containerIoctl(request: number, arg: Uint8Array | number, dv: DataView | undefined): number {
    switch (request) {
      case V.VFIO_GET_API_VERSION: return V.VFIO_API_VERSION;
      case V.VFIO_CHECK_EXTENSION: return arg === V.VFIO_TYPE1v2_IOMMU || arg === V.VFIO_TYPE1_IOMMU ? 1 : 0;
      case V.VFIO_SET_IOMMU: {
        if (![...this.#groups.values()].some((g) => g.container)) return -EINVAL;
        this.#iommuSet = true;
        return 0;
      }
      case V.VFIO_IOMMU_GET_INFO: {
        if (!this.#iommuSet) return -EINVAL;
        dv!.setUint32(O["vfio_iommu_type1_info.flags"], 1, true);
        dv!.setBigUint64(O["vfio_iommu_type1_info.iova_pgsizes"], 0x40201000n, true);
        return 0;
      }
      case V.VFIO_IOMMU_MAP_DMA: {
        if (!this.#iommuSet) return -EINVAL;
        const iova = dv!.getBigUint64(O["vfio_iommu_type1_dma_map.iova"], true);
        const size = dv!.getBigUint64(O["vfio_iommu_type1_dma_map.size"], true);
        for (const [at, len] of this.dma) if (iova < at + len && at < iova + size) return -17;
        this.dma.set(iova, size);
        return 0;
      }
      case V.VFIO_IOMMU_UNMAP_DMA: {
        if (!this.#iommuSet) return -EINVAL;
        const iova = dv!.getBigUint64(O["vfio_iommu_type1_dma_unmap.iova"], true);
        const size = dv!.getBigUint64(O["vfio_iommu_type1_dma_unmap.size"], true);
        if (this.dma.get(iova) !== size) return -EINVAL; // type1 unmaps whole mappings only
        this.dma.delete(iova);
        this.log.push(`unmap-dma ${iova.toString(16)}`);
        dv!.setBigUint64(O["vfio_iommu_type1_dma_unmap.size"], size, true);
        return 0;
      }
      default: return -ENOTTY;
    }
  }

  #groupIoctl(group: FakeGroup, request: number, arg: Uint8Array | number, buf: Uint8Array | undefined, dv: DataView | undefined): number {
    switch (request) {
      case V.VFIO_GROUP_GET_STATUS:
        dv!.setUint32(O["vfio_group_status.flags"], V.VFIO_GROUP_FLAGS_VIABLE | (group.container ? V.VFIO_GROUP_FLAGS_CONTAINER_SET : 0), true);
        return 0;
      case V.VFIO_GROUP_SET_CONTAINER: {
        if (group.container) return -EINVAL;
        const target = this.#fds.get(dv!.getInt32(0, true));
        if (target?.kind !== "container") return -EBADF;
        group.container = true;
        return 0;
      }
      case V.VFIO_GROUP_UNSET_CONTAINER:
        if (group.openDevices > 0) return -EBUSY;
        if (!group.container) return -EINVAL;
        this.#leave(group);
        return 0;
      case V.VFIO_GROUP_GET_DEVICE_FD: {
        if (!group.container || !this.#iommuSet) return -EINVAL;
        const name = new TextDecoder().decode(buf!).replace(/\0.*$/s, "").split(" ")[0]!;
        group.openDevices++;
        const device: FakeDevice = { name, group, config: this.#nvmeConfig.slice(), bar0: new ArrayBuffer(BAR0_SIZE), mmaps: 0 };
        wakeToD0(device.config); // vfio-pci brings an idle (D3hot) device to D0 when it is opened
        return this.#fd({ kind: "device", path: `device ${name}`, device });
      }
      default:
        void arg;
        return -ENOTTY;
    }
  }

  #deviceIoctl(device: FakeDevice, request: number, dv: DataView | undefined): number {
    void device;
    switch (request) {
      case V.VFIO_DEVICE_GET_INFO:
        dv!.setUint32(O["vfio_device_info.flags"], V.VFIO_DEVICE_FLAGS_RESET | V.VFIO_DEVICE_FLAGS_PCI, true);
        dv!.setUint32(O["vfio_device_info.num_regions"], V.VFIO_PCI_NUM_REGIONS, true);
        dv!.setUint32(O["vfio_device_info.num_irqs"], 5, true);
        return 0;
      case V.VFIO_DEVICE_GET_REGION_INFO: {
        const index = dv!.getUint32(O["vfio_region_info.index"], true);
        const size = index === 0 ? BAR0_SIZE : index === V.VFIO_PCI_CONFIG_REGION_INDEX ? 4096 : 0;
        const rw = V.VFIO_REGION_INFO_FLAG_READ | V.VFIO_REGION_INFO_FLAG_WRITE;
        let flags = size ? rw : 0;
        if (index === 0) {
          flags |= V.VFIO_REGION_INFO_FLAG_MMAP | V.VFIO_REGION_INFO_FLAG_CAPS;
          // the MSIX_MAPPABLE capability right after the struct
          if (dv!.byteLength >= SIZEOF.vfio_region_info + 8) {
            dv!.setUint32(O["vfio_region_info.cap_offset"], SIZEOF.vfio_region_info, true);
            dv!.setUint16(SIZEOF.vfio_region_info, V.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, true);
            dv!.setUint16(SIZEOF.vfio_region_info + 2, 1, true);
          } else dv!.setUint32(0, SIZEOF.vfio_region_info + 8, true); // argsz: ask for room
        }
        dv!.setUint32(O["vfio_region_info.flags"], flags, true);
        dv!.setBigUint64(O["vfio_region_info.size"], BigInt(size), true);
        dv!.setBigUint64(O["vfio_region_info.offset"], BigInt(index) << REGION_SHIFT, true);
        return 0;
      }
      case V.VFIO_DEVICE_GET_IRQ_INFO: {
        const index = dv!.getUint32(O["vfio_irq_info.index"], true);
        dv!.setUint32(O["vfio_irq_info.flags"], 1, true);
        dv!.setUint32(O["vfio_irq_info.count"], index === 2 ? 65 : 1, true);
        return 0;
      }
      case V.VFIO_DEVICE_SET_IRQS: return 0;
      case V.VFIO_DEVICE_RESET: return 0;
      default: return -ENOTTY;
    }
  }

  #decoding(device: FakeDevice): boolean {
    return (device.config[4]! & 0x2) !== 0;
  }

  pread(fd: number, buf: Uint8Array, length: number, offset: number | bigint): number {
    const device = this.#fds.get(fd)?.device;
    if (!device) return -EBADF;
    const at = BigInt(offset);
    const index = Number(at >> REGION_SHIFT);
    const off = Number(at & ((1n << REGION_SHIFT) - 1n));
    if (index === V.VFIO_PCI_CONFIG_REGION_INDEX) {
      buf.set(device.config.subarray(off, off + length));
      return length;
    }
    if (index === 0) {
      if (!this.#decoding(device)) return -EIO;
      buf.set(new Uint8Array(device.bar0, off, length));
      return length;
    }
    return -EINVAL;
  }

  pwrite(fd: number, buf: Uint8Array, length: number, offset: number | bigint): number {
    const device = this.#fds.get(fd)?.device;
    if (!device) return -EBADF;
    const at = BigInt(offset);
    const index = Number(at >> REGION_SHIFT);
    const off = Number(at & ((1n << REGION_SHIFT) - 1n));
    if (index === V.VFIO_PCI_CONFIG_REGION_INDEX) {
      device.config.set(buf.subarray(0, length), off);
      return length;
    }
    if (index === 0) {
      if (!this.#decoding(device)) return -EIO;
      new Uint8Array(device.bar0, off, length).set(buf.subarray(0, length));
      return length;
    }
    return -EINVAL;
  }

  read(fd: number, buf: Uint8Array, length: number): number {
    const entry = this.#fds.get(fd);
    if (entry?.kind !== "eventfd") return -EBADF;
    if (!entry.counter) return -EAGAIN;
    new DataView(buf.buffer, buf.byteOffset, length).setBigUint64(0, entry.counter, true);
    entry.counter = 0n;
    return 8;
  }

  write(fd: number, buf: Uint8Array, length: number): number {
    const entry = this.#fds.get(fd);
    if (entry?.kind !== "eventfd") return -EBADF;
    entry.counter = (entry.counter ?? 0n) + new DataView(buf.buffer, buf.byteOffset, length).getBigUint64(0, true);
    return 8;
  }

  eventfd(): number {
    return this.#fd({ kind: "eventfd", path: "eventfd", counter: 0n });
  }

  pollOne(): number {
    return 0;
  }

  mmap(length: number, _prot: number, _flags: number, fd: number, offset: number | bigint): MmapResult {
    const injected = this.#fail("mmap");
    if (injected) return { errno: injected };
    const pointer = this.#nextPointer;
    this.#nextPointer += Math.max(length, 0x1000) + 0x1000;
    if (fd < 0) {
      this.#maps.set(pointer, { buffer: new ArrayBuffer(length), offset: 0, length });
      return { pointer: pointer as unknown as Pointer };
    }
    const device = this.#fds.get(fd)?.device;
    if (!device) return { errno: EBADF };
    const off = Number(BigInt(offset) & ((1n << REGION_SHIFT) - 1n));
    if (BigInt(offset) >> REGION_SHIFT !== 0n || off + length > BAR0_SIZE) return { errno: EINVAL };
    device.mmaps++;
    this.#maps.set(pointer, { buffer: device.bar0, offset: off, length, device });
    return { pointer: pointer as unknown as Pointer };
  }

  munmap(pointer: Pointer, length: number): number {
    const map = this.#maps.get(pointer as unknown as number);
    if (!map || map.length !== length) return -EINVAL;
    this.#maps.delete(pointer as unknown as number);
    if (map.device) map.device.mmaps--;
    this.log.push(`munmap ${map.device ? `bar ${map.device.name}` : "anonymous"}`);
    return 0;
  }

  mprotect(): number {
    return -EPERM;
  }

  address(pointer: Pointer): bigint {
    return BigInt(pointer as unknown as number);
  }

  /**
   * A view over memory of its own: like Bun's toArrayBuffer, each view is a
   * fresh ArrayBuffer only the view holds, so the GC backstop (keyed on it)
   * sees the real reachability. (The fake models lifetimes, not coherence
   * between a BAR mapping and pread of the same bytes.)
   */
  view(pointer: Pointer, length: number): MemoryView {
    const map = this.#maps.get(pointer as unknown as number)!;
    const live = new Uint8Array(length);
    const dv = new DataView(live.buffer);
    const maps = this.#maps;
    const device = map.device;
    const decoding = (d: FakeDevice) => this.#decoding(d);
    const check = () => {
      if (!maps.has(pointer as unknown as number)) throw new FakeSigbus("access to unmapped memory");
      if (device && !decoding(device)) throw new FakeSigbus("access to a BAR mapping while memory decoding is off");
    };
    const plain = {
      load8: (o: number) => (check(), dv.getUint8(o)),
      load16: (o: number) => (check(), dv.getUint16(o, true)),
      load32: (o: number) => (check(), dv.getUint32(o, true)),
      load64: (o: number) => (check(), dv.getBigUint64(o, true)),
      store8: (o: number, v: number) => (check(), dv.setUint8(o, v)),
      store16: (o: number, v: number) => (check(), dv.setUint16(o, v, true)),
      store32: (o: number, v: number) => (check(), dv.setUint32(o, v, true)),
      store64: (o: number, v: bigint) => (check(), dv.setBigUint64(o, v, true)),
    };
    const counted = <A extends unknown[], R>(f: (...a: A) => R) => (...a: A): R => (this.orderedAccesses++, f(...a));
    return {
      length,
      bytes: live,
      ordered: {
        load8: counted(plain.load8), load16: counted(plain.load16), load32: counted(plain.load32), load64: counted(plain.load64),
        store8: counted(plain.store8), store16: counted(plain.store16), store32: counted(plain.store32), store64: counted(plain.store64),
        store8Relaxed: plain.store8, store16Relaxed: plain.store16, store32Relaxed: plain.store32, store64Relaxed: plain.store64,
      },
      load8: (o) => (check(), dv.getUint8(o)),
      load16: (o) => (check(), dv.getUint16(o, true)),
      load32: (o) => (check(), dv.getUint32(o, true)),
      load64: (o) => (check(), dv.getBigUint64(o, true)),
      store8: (o, v) => (check(), dv.setUint8(o, v)),
      store16: (o, v) => (check(), dv.setUint16(o, v, true)),
      store32: (o, v) => (check(), dv.setUint32(o, v, true)),
      store64: (o, v) => (check(), dv.setBigUint64(o, v, true)),
      release: () => void live.buffer.transfer(0),
    };
  }

  /** Ordered (readl/writel) accesses made through any view: the library must use them for device memory. */
  orderedAccesses = 0;
  /** Barriers executed, by kind. */
  readonly barriers: string[] = [];

  barrier(kind: "wmb" | "rmb" | "mb"): void {
    this.barriers.push(kind);
  }

  sysconf(): number {
    return 4096;
  }

  getrlimit(): { soft: bigint; hard: bigint } {
    return { soft: (1n << 64n) - 1n, hard: (1n << 64n) - 1n };
  }

  strerror(errno: number): string {
    return `fake errno ${errno}`;
  }

  stream(): ByteStream {
    let wake: ((v: Uint8Array | undefined) => void) | undefined;
    return {
      read: () => new Promise((resolve) => (wake = resolve)),
      cancel: () => wake?.(undefined),
    };
  }
}
