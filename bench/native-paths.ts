/**
 * The library's native paths on memory and files any host has, timed on
 * whichever runtime imports this (Bun or Deno): a 32-bit load and store on
 * anonymous memory (`MappedMemory.read32`/`write32`), a trapped 32-bit read
 * through `Region.read32` (pread(2) of /dev/zero) and an ioctl through
 * `OwnedFd` (FIONBIO on /dev/zero). The C baseline doing the same calls is
 * `C_NATIVE` in ./register-access.ts; the names match its lines.
 */
import { MappedMemory, Region } from "../src/index.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE, O_RDONLY } from "../src/sys/constants.ts";
import { openPath } from "../src/sys/fd.ts";
import { OwnedFd } from "../src/sys/owned-fd.ts";

/** FIONBIO from asm-generic/ioctls.h: a generic ioctl every file answers. */
export const FIONBIO = 0x5421;

/** ns per call of `fn` over `n` calls, after a warm-up for the JIT. */
function time(fn: () => void, n: number): number {
  for (let i = 0; i < Math.min(n, 2000); i++) fn();
  const t = performance.now();
  for (let i = 0; i < n; i++) fn();
  return ((performance.now() - t) * 1e6) / n;
}

/** ns per operation of each path, `n` iterations each. */
export function libraryNativePaths(n = 2_000_000): Record<"load32" | "store32" | "pread32" | "ioctl", number> {
  const mem = MappedMemory.mapAnonymous(4096, MAP_PRIVATE | MAP_ANONYMOUS);
  const zero = openPath("/dev/zero", O_RDONLY);
  const region = new Region(new OwnedFd(zero, "/dev/zero", "device"), {
    index: 0, flags: 1, size: 4096, offset: 0n, readable: true, writable: false, mmappable: false, sparseAreas: undefined, msixMappable: false, type: undefined, capIds: [],
  }, "/dev/zero");
  const off = new Uint8Array(4); // FIONBIO's int argument: 0, blocking
  const zeroFd = new OwnedFd(openPath("/dev/zero", O_RDONLY), "/dev/zero", "file");
  let sink = 0;
  let i = 0;
  const out = {
    load32: time(() => { sink += mem.read32(0); }, n),
    store32: time(() => mem.write32(4, i++), n),
    pread32: time(() => { sink += region.read32(0); }, n),
    ioctl: time(() => { sink += zeroFd.ioctl("FIONBIO", FIONBIO, off); }, n),
  };
  if (sink === 42) console.log("");
  mem.close();
  region.unmapAll();
  zeroFd.close();
  return out;
}
