#!/usr/bin/env bun
/**
 * TypeScript side of the in-guest VFIO micro-benchmarks, through the public
 * API only; bench/guest-micro.c makes the same system calls on the same
 * device. Prints the same "name value" lines.
 *
 *   region-info     dev.regionInfo(0): VFIO_DEVICE_GET_REGION_INFO twice (struct, then with capabilities) + decode
 *   irq-info        dev.irqInfo(MSI-X): VFIO_DEVICE_GET_IRQ_INFO + decode
 *   trapped-read32  dev.region(0).read32(VS): one pread(2)
 *   bar0-read32 / bar0-write32   NVMe registers VS / AQA through the mmapped BAR0 (each access traps to QEMU's device model)
 *   cmb-read32 / cmb-write32     the controller memory buffer in BAR2 (QEMU cmb_size_mb: a memory buffer behind MMIO callbacks)
 *   dma-map-1g / dma-unmap-1g    container.mapDma / unmapDma of 1 GiB in 2 MiB chunks (ms)
 *   wake-median / wake-p99       vector.trigger() (SET_IRQS DATA_NONE|TRIGGER) until vector.next() resolves (us)
 *
 *   bun bench/guest-micro.ts <bdf> <iterations> <wake-samples>
 */
import { Container, MappedMemory, uapi } from "bun-vfio";

const [bdf, nText, samplesText] = process.argv.slice(2);
if (!bdf) throw new Error("usage: bun bench/guest-micro.ts <bdf> <iterations> <wake-samples>");
const n = Number(nText ?? 20000);
const samples = Number(samplesText ?? 2000);
const MSIX = uapi.VFIO_PCI_MSIX_IRQ_INDEX;

using container = Container.open();
using group = container.addGroup(bdf);
using dev = group.openPciDevice(bdf);
dev.enableMemory();
dev.enableBusMaster();
const bar0 = dev.bar(0);
const bar2 = dev.bar(2);
const region0 = dev.region(0);
let sink = 0;

function perOp(name: string, f: (i: number) => void): void {
  for (let i = 0; i < Math.min(n, 3000); i++) f(i); // JIT warm-up
  const t = performance.now();
  for (let i = 0; i < n; i++) f(i);
  console.log(`${name} ${((performance.now() - t) * 1e6) / n}`);
}

perOp("region-info", () => { sink += dev.regionInfo(0).size; });
perOp("irq-info", () => { sink += dev.irqInfo(MSIX).count; });
perOp("trapped-read32", () => { sink += region0.read32(8); });
perOp("bar0-read32", () => { sink += bar0.read32(8); });
perOp("bar0-write32", () => bar0.write32(0x24, 0));
perOp("cmb-read32", () => { sink += bar2.read32(4); });
perOp("cmb-write32", (i) => bar2.write32(4, i));

// 1 GiB of populated shared anonymous memory (Linux mmap flags), mapped at IOVA 1 GiB in 2 MiB chunks.
const GIB = 2 ** 30;
const CHUNK = 2 * 2 ** 20;
const MAP_SHARED = 0x01, MAP_ANONYMOUS = 0x20, MAP_POPULATE = 0x8000;
const mem = MappedMemory.mapAnonymous(GIB, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE);
const base = mem.address; // a bigint: offsets are added as bigints
let t = performance.now();
for (let off = 0; off < GIB; off += CHUNK) container.mapDma({ vaddr: base + BigInt(off), iova: BigInt(GIB + off), size: CHUNK });
console.log(`dma-map-1g ${performance.now() - t}`);
t = performance.now();
for (let off = 0; off < GIB; off += CHUNK) container.unmapDma(BigInt(GIB + off), CHUNK);
console.log(`dma-unmap-1g ${performance.now() - t}`);
mem.close();

{
  using vectors = dev.msix.enable(1);
  const v = vectors[0]!;
  const lat: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    v.trigger();
    await v.next();
    lat.push((performance.now() - t0) * 1000);
  }
  lat.sort((a, b) => a - b);
  console.log(`wake-median ${lat[samples >> 1]}\nwake-p99 ${lat[Math.floor(samples * 0.99)]}`);
}
if (sink === 42) console.log("");
