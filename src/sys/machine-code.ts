/**
 * Device-memory accessors as machine code, per architecture: the pure part
 * of the ordered-MMIO mechanism (bun-ordered-mmio.ts copies these bytes into
 * an executable page and calls them through bun:ffi). Bun's JIT has no fence
 * and the project has no native build step, so the barriers Linux's `writel`
 * and `readl` issue are written here as instructions.
 *
 * Every stub takes `(address, offset[, value])` in the platform C ABI
 * (x86-64 SysV: rdi, rsi, rdx; arm64 AAPCS64: x0, x1, x2), accesses
 * `address + offset` with exactly one load or store of the given width, and
 * returns the loaded value in eax/rax or w0/x0.
 *
 * Ordering (Linux's definitions, arch/arm64/include/asm/io.h and barrier.h):
 * - arm64 `writeN` = `dma_wmb()` (`dmb oshst`) then one `str`: every earlier
 *   store to DMA memory is visible to the device before the register store.
 * - arm64 `readN` = one `ldr` then `dma_rmb()` (`dmb oshld`): no later load
 *   of DMA memory is satisfied before the register load (the completion).
 * - x86-64 (TSO, uncached MMIO): loads are not reordered with older loads,
 *   stores not with older stores, so `writel`/`readl` need only a compiler
 *   barrier; the FFI call is one (the JIT cannot move memory accesses across
 *   an opaque call, nor merge two identical stores that are two calls).
 * - `wmb`/`rmb`/`mb` are Linux's mandatory barriers: arm64 `dsb st` /
 *   `dsb ld` / `dsb sy`; x86-64 `sfence` / `lfence` / `mfence`.
 */

/** Architectures with stubs (`process.arch` names). */
export type StubArch = "x64" | "arm64";

/** Names of the stubs, in the order they are laid out in the code page. */
export const STUB_NAMES = [
  "store8", "store16", "store32", "store64",
  "store8Relaxed", "store16Relaxed", "store32Relaxed", "store64Relaxed",
  "load8", "load16", "load32", "load64",
  "load8Relaxed", "load16Relaxed", "load32Relaxed", "load64Relaxed",
  "wmb", "rmb", "mb",
] as const;

/** One stub's name. */
export type StubName = (typeof STUB_NAMES)[number];

/** arm64 instruction words (little-endian in memory). */
const A64 = {
  ret: 0xd65f03c0, // ret
  dmbOshst: 0xd50332bf, // dmb oshst  (dma_wmb)
  dmbOshld: 0xd50331bf, // dmb oshld  (dma_rmb)
  dsbSt: 0xd5033e9f, // dsb st     (wmb)
  dsbLd: 0xd5033d9f, // dsb ld     (rmb)
  dsbSy: 0xd5033f9f, // dsb sy     (mb)
  strb: 0x38216802, // strb w2, [x0, x1]
  strh: 0x78216802, // strh w2, [x0, x1]
  strW: 0xb8216802, // str  w2, [x0, x1]
  strX: 0xf8216802, // str  x2, [x0, x1]
  ldrb: 0x38616800, // ldrb w0, [x0, x1]
  ldrh: 0x78616800, // ldrh w0, [x0, x1]
  ldrW: 0xb8616800, // ldr  w0, [x0, x1]
  ldrX: 0xf8616800, // ldr  x0, [x0, x1]
} as const;

function words(...w: number[]): Uint8Array {
  const out = new Uint8Array(w.length * 4);
  const dv = new DataView(out.buffer);
  w.forEach((x, i) => dv.setUint32(i * 4, x, true));
  return out;
}

const ARM64: Record<StubName, Uint8Array> = {
  store8: words(A64.dmbOshst, A64.strb, A64.ret),
  store16: words(A64.dmbOshst, A64.strh, A64.ret),
  store32: words(A64.dmbOshst, A64.strW, A64.ret),
  store64: words(A64.dmbOshst, A64.strX, A64.ret),
  store8Relaxed: words(A64.strb, A64.ret),
  store16Relaxed: words(A64.strh, A64.ret),
  store32Relaxed: words(A64.strW, A64.ret),
  store64Relaxed: words(A64.strX, A64.ret),
  load8: words(A64.ldrb, A64.dmbOshld, A64.ret),
  load16: words(A64.ldrh, A64.dmbOshld, A64.ret),
  load32: words(A64.ldrW, A64.dmbOshld, A64.ret),
  load64: words(A64.ldrX, A64.dmbOshld, A64.ret),
  load8Relaxed: words(A64.ldrb, A64.ret),
  load16Relaxed: words(A64.ldrh, A64.ret),
  load32Relaxed: words(A64.ldrW, A64.ret),
  load64Relaxed: words(A64.ldrX, A64.ret),
  wmb: words(A64.dsbSt, A64.ret),
  rmb: words(A64.dsbLd, A64.ret),
  mb: words(A64.dsbSy, A64.ret),
};

const b = (...x: number[]) => new Uint8Array(x);
/** x86-64: ModRM 0x14/0x04 + SIB 0x37 = [rdi + rsi]; 0xc3 = ret. TSO: ordered = relaxed (see above). */
const X64_STORE = {
  store8: b(0x88, 0x14, 0x37, 0xc3), // mov byte  [rdi+rsi], dl ; ret
  store16: b(0x66, 0x89, 0x14, 0x37, 0xc3), // mov word  [rdi+rsi], dx ; ret
  store32: b(0x89, 0x14, 0x37, 0xc3), // mov dword [rdi+rsi], edx ; ret
  store64: b(0x48, 0x89, 0x14, 0x37, 0xc3), // mov qword [rdi+rsi], rdx ; ret
};
const X64_LOAD = {
  load8: b(0x0f, 0xb6, 0x04, 0x37, 0xc3), // movzx eax, byte [rdi+rsi] ; ret
  load16: b(0x0f, 0xb7, 0x04, 0x37, 0xc3), // movzx eax, word [rdi+rsi] ; ret
  load32: b(0x8b, 0x04, 0x37, 0xc3), // mov eax, [rdi+rsi] ; ret
  load64: b(0x48, 0x8b, 0x04, 0x37, 0xc3), // mov rax, [rdi+rsi] ; ret
};
const X64: Record<StubName, Uint8Array> = {
  ...X64_STORE,
  store8Relaxed: X64_STORE.store8,
  store16Relaxed: X64_STORE.store16,
  store32Relaxed: X64_STORE.store32,
  store64Relaxed: X64_STORE.store64,
  ...X64_LOAD,
  load8Relaxed: X64_LOAD.load8,
  load16Relaxed: X64_LOAD.load16,
  load32Relaxed: X64_LOAD.load32,
  load64Relaxed: X64_LOAD.load64,
  wmb: b(0x0f, 0xae, 0xf8, 0xc3), // sfence ; ret
  rmb: b(0x0f, 0xae, 0xe8, 0xc3), // lfence ; ret
  mb: b(0x0f, 0xae, 0xf0, 0xc3), // mfence ; ret
};

/**
 * The machine code of every stub for `arch`.
 * @throws Error for an architecture without stubs
 */
export function stubCode(arch: string): Record<StubName, Uint8Array> {
  if (arch === "arm64") return ARM64;
  if (arch === "x64") return X64;
  throw new Error(`no ordered-MMIO stubs for architecture ${arch} (x64 and arm64 only)`);
}

/** Each stub starts on this boundary in the code page (arm64 needs 4; 16 keeps x86 entries aligned too). */
export const STUB_ALIGN = 16;

/**
 * Lay the stubs of `arch` out in one buffer, each at a multiple of
 * {@link STUB_ALIGN}, padded with the architecture's trap instruction
 * (`brk #0` on arm64, `int3` on x86-64), and return it with each stub's offset.
 */
export function layoutStubs(arch: string): { code: Uint8Array; offsets: Record<StubName, number> } {
  const stubs = stubCode(arch);
  const offsets = {} as Record<StubName, number>;
  let at = 0;
  for (const name of STUB_NAMES) {
    offsets[name] = at;
    at += Math.ceil(stubs[name].length / STUB_ALIGN) * STUB_ALIGN;
  }
  const code = new Uint8Array(at);
  if (arch === "arm64") {
    const dv = new DataView(code.buffer);
    for (let i = 0; i < at; i += 4) dv.setUint32(i, 0xd4200000, true); // brk #0
  } else code.fill(0xcc); // int3
  for (const name of STUB_NAMES) code.set(stubs[name], offsets[name]);
  return { code, offsets };
}

/** Zero-extends the 32-bit offset argument into the 64-bit register the access uses: x86-64 `mov esi, esi`, arm64 `mov w1, w1` (`orr w1, wzr, w1`). */
const ZERO_EXTEND_OFFSET: Record<StubArch, Uint8Array> = { x64: b(0x89, 0xf6), arm64: words(0x2a0103e1) };

/**
 * The stubs of `arch` for callers that pass the offset as a 32-bit integer
 * (Deno: a 64-bit argument is fast only as a BigInt): each starts by
 * zero-extending the offset, since the C ABI leaves a 32-bit argument's
 * upper half undefined; the rest is {@link stubCode}'s bytes.
 * @throws Error for an architecture without stubs
 */
export function u32OffsetStubCode(arch: string): Record<StubName, Uint8Array> {
  const stubs = stubCode(arch);
  const prefix = ZERO_EXTEND_OFFSET[arch as StubArch];
  return Object.fromEntries(STUB_NAMES.map((n) => [n, new Uint8Array([...prefix, ...stubs[n]])])) as Record<StubName, Uint8Array>;
}
