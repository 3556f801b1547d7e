/**
 * A minimal ELF64 shared object, built in memory from machine-code stubs:
 * what lets Deno call the kernel-entry and ordered-MMIO stubs through
 * `Deno.dlopen` symbols (V8 fast calls, ~14 ns) instead of
 * `Deno.UnsafeFnPointer` (a slow op, ~1.3 µs a call; DESIGN.md). Pure: the
 * Deno side writes the bytes into a memfd and dlopens `/proc/self/fd/N`.
 *
 * Layout (no section headers, no relocations: the stubs are position
 * independent):
 *   0x0000  ELF header, 4 program headers, DT_HASH table, .dynsym, .dynstr,
 *           code (each stub 16-byte aligned)        PT_LOAD  R+X
 *   0x10000 the dynamic section                    PT_LOAD  R+W, PT_DYNAMIC
 *           (writable: glibc before 2.35 relocates its pointers in place)
 *   PT_GNU_STACK RW, so loading it never asks for an executable stack.
 * Segments are 64 KiB aligned, valid for 4, 16 and 64 KiB pages.
 */

/** ELF e_machine values for the architectures with stubs (Deno.build.arch names). */
const MACHINES: Record<string, number> = { x86_64: 62, aarch64: 183 };

const ALIGN = 0x10000;
const EHDR = 64;
const PHDR = 56;
const SYM = 24;
const PT_LOAD = 1, PT_DYNAMIC = 2, PT_GNU_STACK = 0x6474e551;
const PF_X = 1, PF_W = 2, PF_R = 4;
const DT_NULL = 0, DT_HASH = 4, DT_STRTAB = 5, DT_SYMTAB = 6, DT_STRSZ = 10, DT_SYMENT = 11;
const STB_GLOBAL_STT_FUNC = 0x12;
/** Any defined section index: the loader only tells SHN_UNDEF (0) and SHN_ABS apart. */
const SHNDX_DEFINED = 1;

/** The System V ELF symbol hash (DT_HASH). */
export function elfHash(name: string): number {
  let h = 0;
  for (const c of new TextEncoder().encode(name)) {
    h = ((h << 4) + c) >>> 0;
    const g = h & 0xf0000000;
    if (g) h ^= g >>> 24;
    h = (h & ~g) >>> 0;
  }
  return h;
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * A shared object exporting each stub as a global function symbol.
 * @param arch `Deno.build.arch` (`x86_64` or `aarch64`)
 * @param stubs symbol name to machine code (C calling convention)
 * @throws Error for another architecture
 */
export function sharedObject(arch: string, stubs: Record<string, Uint8Array>): Uint8Array {
  const machine = MACHINES[arch];
  if (machine === undefined) throw new Error(`no ELF machine for ${arch}`);
  const names = Object.keys(stubs);
  const nsyms = names.length + 1; // index 0 is the null symbol
  const nbucket = Math.max(1, names.length);
  const phnum = 4;
  const hashAt = align(EHDR + phnum * PHDR, 8);
  const symAt = align(hashAt + 4 * (2 + nbucket + nsyms), 8);
  const strAt = symAt + SYM * nsyms;
  const strings = new TextEncoder().encode(`\0${names.map((n) => `${n}\0`).join("")}`);
  let codeAt = align(strAt + strings.length, 16);
  const codeOffsets = names.map((n) => {
    const at = codeAt;
    codeAt = align(codeAt + stubs[n]!.length, 16);
    return at;
  });
  const textEnd = codeAt;
  if (textEnd > ALIGN) throw new Error("stubs do not fit the 64 KiB text segment");
  const dynamic: [number, number][] = [[DT_HASH, hashAt], [DT_STRTAB, strAt], [DT_SYMTAB, symAt], [DT_STRSZ, strings.length], [DT_SYMENT, SYM], [DT_NULL, 0]];
  const dynSize = dynamic.length * 16;
  const out = new Uint8Array(ALIGN + dynSize);
  const v = new DataView(out.buffer);
  const u16 = (o: number, x: number) => v.setUint16(o, x, true);
  const u32 = (o: number, x: number) => v.setUint32(o, x, true);
  const u64 = (o: number, x: number) => v.setBigUint64(o, BigInt(x), true);

  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]); // \x7fELF, 64-bit, little-endian, version 1, System V ABI
  u16(16, 3); // ET_DYN
  u16(18, machine);
  u32(20, 1); // EV_CURRENT
  u64(32, EHDR); // e_phoff
  u16(52, EHDR);
  u16(54, PHDR);
  u16(56, phnum);
  u16(58, 64); // e_shentsize (no section headers: e_shnum 0)

  const phdr = (i: number, type: number, flags: number, offset: number, size: number, alignment: number) => {
    const o = EHDR + i * PHDR;
    u32(o, type);
    u32(o + 4, flags);
    u64(o + 8, offset);
    u64(o + 16, offset); // p_vaddr = p_offset
    u64(o + 24, offset); // p_paddr
    u64(o + 32, size);
    u64(o + 40, size);
    u64(o + 48, alignment);
  };
  phdr(0, PT_LOAD, PF_R | PF_X, 0, textEnd, ALIGN);
  phdr(1, PT_LOAD, PF_R | PF_W, ALIGN, dynSize, ALIGN);
  phdr(2, PT_DYNAMIC, PF_R | PF_W, ALIGN, dynSize, 8);
  phdr(3, PT_GNU_STACK, PF_R | PF_W, 0, 0, 16);

  u32(hashAt, nbucket);
  u32(hashAt + 4, nsyms);
  const bucketAt = hashAt + 8, chainAt = bucketAt + 4 * nbucket;
  let nameAt = 1;
  names.forEach((name, i) => {
    const index = i + 1;
    const b = elfHash(name) % nbucket;
    u32(chainAt + 4 * index, v.getUint32(bucketAt + 4 * b, true)); // chain to the previous head
    u32(bucketAt + 4 * b, index);
    const s = symAt + SYM * index;
    u32(s, nameAt);
    out[s + 4] = STB_GLOBAL_STT_FUNC;
    u16(s + 6, SHNDX_DEFINED);
    u64(s + 8, codeOffsets[i]!);
    u64(s + 16, stubs[name]!.length);
    nameAt += new TextEncoder().encode(name).length + 1;
    out.set(stubs[name]!, codeOffsets[i]!);
  });
  out.set(strings, strAt);
  dynamic.forEach(([tag, value], i) => {
    u64(ALIGN + i * 16, tag);
    u64(ALIGN + i * 16 + 8, value);
  });
  return out;
}
