#!/usr/bin/env bun
/**
 * Register access and ioctl cost, side by side with C in the same run:
 *   mmio-read32   a 32-bit load from the mmapped BAR       (C: volatile load)
 *   pread32       a trapped 32-bit read through pread(2)   (C: pread)
 *   region-info   VFIO_DEVICE_GET_REGION_INFO + decode     (C: the ioctl alone)
 *   mmio-write32  a 32-bit store to the mmapped BAR        (C: volatile store)
 * Needs a device on vfio-pci: by default the QEMU edu device in the sandbox
 * (`bunx bun-vfio sandbox -- bun bench/register-access.ts`). Offsets: edu's
 * identification register 0x00 (read) and its liveness register 0x04 (write).
 * Under TCG every instruction is emulated, which inflates the JIT-compiled
 * side far more than C's tight loops: read guest ratios as an upper bound.
 * So the same paths are also measured natively on the host, on memory and
 * files that need no VFIO (anonymous mmap, pread of /dev/zero, an ioctl on a
 * pipe): that is what the library's layers add.
 *
 *   bun bench/register-access.ts [bdf] [iterations=20000]
 *   bun bench/register-access.ts --native [iterations=2000000]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Container, iommuGroupOf, listPciDevices } from "../src/index.ts";
import { libraryNativePaths } from "./native-paths.ts";

const native = !import.meta.main || process.argv[2] === "--native";
const bdf = native ? undefined : process.argv[2] ?? listPciDevices().find((d) => d.vendorId === 0x1234 && d.deviceId === 0x11e8 && d.driver === "vfio-pci")?.bdf;
/** Iterations per operation (bench/run.ts imports this file and uses the native default). */
const N = Number((import.meta.main ? process.argv[3] : undefined) ?? (native ? 2_000_000 : 20000));
if (!bdf && !native) {
  console.error("no device: pass a BDF bound to vfio-pci, or run in `bunx bun-vfio sandbox`");
  process.exit(1);
}

const C_SOURCE = String.raw`
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
int main(int argc, char **argv) {
  const char *group_path = argv[1], *bdf = argv[2]; long n = atol(argv[3]);
  int c = open("/dev/vfio/vfio", O_RDWR), g = open(group_path, O_RDWR);
  if (c < 0 || g < 0 || ioctl(g, VFIO_GROUP_SET_CONTAINER, &c) || ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)) { perror("setup"); return 1; }
  int d = ioctl(g, VFIO_GROUP_GET_DEVICE_FD, bdf);
  struct vfio_region_info ri = { .argsz = sizeof ri, .index = 0 };
  if (d < 0 || ioctl(d, VFIO_DEVICE_GET_REGION_INFO, &ri)) { perror("device"); return 1; }
  volatile uint32_t *bar = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, d, ri.offset);
  if (bar == MAP_FAILED) { perror("mmap"); return 1; }
  uint32_t sink = 0, v; double t;
  t = now(); for (long i = 0; i < n; i++) sink += bar[0]; printf("mmio-read32 %f\n", (now() - t) / n);
  t = now(); for (long i = 0; i < n; i++) { if (pread(d, &v, 4, ri.offset) != 4) return 1; sink += v; } printf("pread32 %f\n", (now() - t) / n);
  t = now(); for (long i = 0; i < n; i++) { ri.argsz = sizeof ri; if (ioctl(d, VFIO_DEVICE_GET_REGION_INFO, &ri)) return 1; } printf("region-info %f\n", (now() - t) / n);
  t = now(); for (long i = 0; i < n; i++) bar[1] = (uint32_t)i; printf("mmio-write32 %f\n", (now() - t) / n);
  return sink == 42;
}`;

/** The native C baseline: load, store, pread of /dev/zero, an ioctl on /dev/zero. */
export const C_NATIVE = String.raw`
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
int main(int argc, char **argv) {
  long n = atol(argv[1]); int off = 0; uint32_t sink = 0, v; double t;
  volatile uint32_t *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  int zero = open("/dev/zero", O_RDONLY);
  if (mem == MAP_FAILED || zero < 0) { perror("setup"); return 1; }
  t = now(); for (long i = 0; i < n; i++) sink += mem[0]; printf("load32 %f\n", (now() - t) / n);
  t = now(); for (long i = 0; i < n; i++) mem[1] = (uint32_t)i; printf("store32 %f\n", (now() - t) / n);
  t = now(); for (long i = 0; i < n; i++) { if (pread(zero, &v, 4, 0) != 4) return 1; sink += v; } printf("pread32 %f\n", (now() - t) / n);
  t = now(); for (long i = 0; i < n; i++) { if (ioctl(zero, FIONBIO, &off)) return 1; } printf("ioctl %f\n", (now() - t) / n);
  return sink == 42;
}`;

/** Compiles `source` with cc -O2 and runs it with `args`; returns its "name value" lines. */
export function runCProgram(source: string, args: string[]): Record<string, number> {
  const dir = mkdtempSync(join(tmpdir(), "bun-vfio-bench-"));
  try {
    writeFileSync(join(dir, "bench.c"), source);
    const cc = Bun.spawnSync(["cc", "-O2", "-o", join(dir, "bench"), join(dir, "bench.c")]);
    if (cc.exitCode !== 0) throw new Error(`cc failed: ${cc.stderr}`);
    const run = Bun.spawnSync([join(dir, "bench"), ...args]);
    if (run.exitCode !== 0) throw new Error(`C baseline failed: ${run.stderr}`);
    return Object.fromEntries(run.stdout.toString().trim().split("\n").map((l) => [l.split(" ")[0]!, Number(l.split(" ")[1])]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function runC(): Record<string, number> {
  return runCProgram(C_SOURCE, [`/dev/vfio/${iommuGroupOf(bdf!)}`, bdf!, String(N)]);
}

function time(fn: () => void): number {
  for (let i = 0; i < Math.min(N, 2000); i++) fn(); // warm up the JIT
  const t = Bun.nanoseconds();
  for (let i = 0; i < N; i++) fn();
  return (Bun.nanoseconds() - t) / N;
}

function runBun(): Record<string, number> {
  using container = Container.open();
  using group = container.addGroup(bdf!);
  using dev = group.openPciDevice(bdf!);
  dev.enableMemory();
  const bar = dev.bar(0);
  const region = dev.region(0);
  let sink = 0;
  let i = 0;
  const out = {
    "mmio-read32": time(() => { sink += bar.read32(0); }),
    "pread32": time(() => { sink += region.read32(0); }),
    "region-info": time(() => { sink += dev.regionInfo(0).size; }),
    "mmio-write32": time(() => bar.write32(4, i++)),
  };
  if (sink === 42) console.log("");
  return out;
}

if (import.meta.main) {
  const c = native ? runCProgram(C_NATIVE, [String(N)]) : runC();
  const bun = native ? libraryNativePaths(N) : runBun();
  console.log(native ? `native paths without VFIO, ${N} iterations each (ns per operation)` : `register access on ${bdf}, ${N} iterations each (ns per operation)`);
  console.log(`${"operation".padEnd(14)} ${"C".padStart(10)} ${"bun-vfio".padStart(10)} ${"ratio".padStart(7)}`);
  for (const [name, ns] of Object.entries(bun)) {
    const base = c[name]!;
    console.log(`${name.padEnd(14)} ${base.toFixed(1).padStart(10)} ${ns.toFixed(1).padStart(10)} ${(ns / base).toFixed(2).padStart(6)}x`);
  }
}
