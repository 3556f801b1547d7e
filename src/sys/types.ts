/**
 * The runtime seam: everything the library asks of the operating system,
 * as one interface. A runtime (Bun today, Deno next) or a test fake
 * implements it; nothing outside src/sys touches FFI, raw pointers or
 * runtime globals.
 *
 * Conventions:
 * - calls that can fail return the kernel's way: a non-negative result, or
 *   `-errno` captured in the same synchronous step as the call (never read
 *   later, when something else may have overwritten it);
 * - memory is reached through a {@link MemoryView}: loads and stores of an
 *   exact width, one machine access each, never merged, split or hoisted.
 */

declare const pointerBrand: unique symbol;

/** An address in this process. Opaque: only a `Sys` makes or reads one. */
export type Pointer = { readonly [pointerBrand]: "Pointer" };

/** The result of mmap(2): the address, or the errno. */
export type MmapResult = { readonly pointer: Pointer; readonly errno?: undefined } | { readonly pointer?: undefined; readonly errno: number };

/**
 * Exact-width access to mapped memory. Loads are single loads the JIT never
 * hoists or merges; stores are single stores of the width. `release()`
 * detaches every view it handed out, so a stale typed array reads
 * `undefined` instead of touching unmapped memory.
 */
export interface MemoryView {
  readonly length: number;
  load8(offset: number): number;
  load16(offset: number): number;
  load32(offset: number): number;
  load64(offset: number): bigint;
  store8(offset: number, value: number): void;
  store16(offset: number, value: number): void;
  store32(offset: number, value: number): void;
  store64(offset: number, value: bigint): void;
  /** A byte view of the whole range (for memcpy-like copies of RAM; not for registers). */
  readonly bytes: Uint8Array;
  /**
   * Device-memory ordering (Linux `readl`/`writel`), by construction: loads
   * are one load then a read barrier (arm64 `dmb oshld`), stores a write
   * barrier (`dmb oshst`) then one store, `*Relaxed` stores one store and
   * no barrier. Every access is an opaque call: never merged or hoisted.
   */
  readonly ordered: OrderedAccess;
  /** Detaches `bytes` and every view derived from it. Idempotent. */
  release(): void;
}

/** Ordered accesses at an offset of one view (see {@link MemoryView.ordered}). */
export interface OrderedAccess {
  load8(offset: number): number;
  load16(offset: number): number;
  load32(offset: number): number;
  load64(offset: number): bigint;
  store8(offset: number, value: number): void;
  store16(offset: number, value: number): void;
  store32(offset: number, value: number): void;
  store64(offset: number, value: bigint): void;
  store8Relaxed(offset: number, value: number): void;
  store16Relaxed(offset: number, value: number): void;
  store32Relaxed(offset: number, value: number): void;
  store64Relaxed(offset: number, value: bigint): void;
}

/** Linux's mandatory barriers: `wmb` (arm64 `dsb st`, x86 `sfence`), `rmb`, `mb`. */
export type Barrier = "wmb" | "rmb" | "mb";

/**
 * Readability of a non-blocking fd as a stream of what read(2) returns
 * (several 8-byte eventfd counters may arrive in one chunk). `cancel()`
 * settles a pending `read()` at once with `undefined` and stops watching
 * the fd; it never closes the fd.
 */
export interface ByteStream {
  read(): Promise<Uint8Array | undefined>;
  cancel(): void;
}

/** The operating system as the library uses it. */
export interface Sys {
  /** Which implementation this is: `"bun"`, `"deno"` or a test fake's name. */
  readonly name: string;
  /** The CPU architecture the implementation runs on. */
  readonly arch: "x64" | "arm64" | "other";

  open(path: string, flags: number, mode?: number): number;
  close(fd: number): number;
  /** ioctl(2) with a buffer (`struct *`) or an integer argument. */
  ioctl(fd: number, request: number, arg: Uint8Array | number): number;
  /** pread(2) of `length` bytes into `buf` at `offset` (bigint for offsets past 2^53). */
  pread(fd: number, buf: Uint8Array, length: number, offset: number | bigint): number;
  pwrite(fd: number, buf: Uint8Array, length: number, offset: number | bigint): number;
  read(fd: number, buf: Uint8Array, length: number): number;
  write(fd: number, buf: Uint8Array, length: number): number;
  eventfd(initval: number, flags: number): number;
  /** poll(2) on one fd for `events`; returns the revents (0 on timeout) or -errno. */
  pollOne(fd: number, events: number, timeoutMs: number): number;

  mmap(length: number, prot: number, flags: number, fd: number, offset: number | bigint): MmapResult;
  munmap(pointer: Pointer, length: number): number;
  mprotect(pointer: Pointer, length: number, prot: number): number;
  /** The address as a number the kernel understands (VFIO_IOMMU_MAP_DMA's vaddr). */
  address(pointer: Pointer): bigint;
  /** A view of `[pointer, pointer+length)`, which must stay mapped while the view is used. */
  view(pointer: Pointer, length: number): MemoryView;
  /** Executes a barrier instruction (between relaxed device writes and the write that must follow them). */
  barrier(kind: Barrier): void;

  sysconf(name: number): number;
  /** getrlimit(2): the soft and hard limits, or -errno. */
  getrlimit(resource: number): { soft: bigint; hard: bigint } | number;
  strerror(errno: number): string;

  /** Watches a non-blocking fd without blocking the event loop. */
  stream(fd: number): ByteStream;
}
