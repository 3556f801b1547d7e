/**
 * Releases leave nothing behind (profile `remap`, and every profile that
 * runs the remap suites): a 10,000-cycle leak suite with GC-only paths, and
 * a dropped device with a pending wait. Expected values from the kernel:
 * /proc/self/fd, /proc/self/maps, VmLck, /proc/interrupts. (Its own file, so
 * it runs in a fresh process on arm64: see test/run.ts.)
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { Container, DmaBuffer, type PciDevice } from "../../../src/index.ts";
import { find, IDS } from "../ground-truth.ts";
import { kernelPageSize } from "../platform.ts";

const nvmeBdf = find(IDS.nvme);
const PAGE = kernelPageSize();

/** VFIO device mappings in this process (`/proc/self/maps` lines backed by a vfio-device fd). */
function vfioMaps(): number {
  return readFileSync("/proc/self/maps", "utf8").split("\n").filter((l) => l.includes("vfio-device")).length;
}
function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}
function lockedKb(): number {
  return Number(/^VmLck:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? -1);
}

describe("releases leave nothing behind", () => {
  test("10,000 map/DMA/close cycles with 100 device opens, some left to the GC: fds, mappings and VmLck return, the group opens again", async () => {
    // nvme: a 16 KiB BAR keeps each cycle cheap under emulation (edu's is 1 MiB)
    using container = Container.open();
    const group = container.addGroup(nvmeBdf);
    const fds = openFds();
    const maps = vfioMaps();
    const locked = lockedKb();
    {
      using probe = DmaBuffer.allocate(container, 4096);
      expect(lockedKb()).toBe(locked + PAGE / 1024); // VFIO charges pinned pages to VmLck: the measure below means something
      void probe;
    }
    let dev: PciDevice | undefined;
    let byGc = 0;
    const cycles = 10_000;
    for (let i = 0; i < cycles; i++) {
      if (i % 100 === 0) {
        // a device open per 100 cycles: half closed, half dropped to the GC backstop
        if (dev && (i / 100) % 2 === 0) dev.close();
        else if (dev) byGc++;
        dev = group.openPciDevice(nvmeBdf);
        dev.enableMemory();
      }
      const dropped = i % 50 === 49;
      const bar = dev!.bar(0);
      bar.read32(0);
      const buf = i % 10 === 0 ? DmaBuffer.allocate(container, 4096) : undefined;
      if (dropped) byGc++;
      else {
        bar.close();
        buf?.close();
      }
    }
    dev!.close();
    for (let i = 0; i < 200 && (openFds() > fds || vfioMaps() > maps || lockedKb() > locked); i++) {
      Bun.gc(true);
      await Bun.sleep(20);
    }
    console.log(`leak suite: ${cycles} cycles, ${byGc} objects released by the GC backstop only; fds ${fds} -> ${openFds()}, vfio maps ${maps} -> ${vfioMaps()}, VmLck ${locked} -> ${lockedKb()} kB`);
    expect(openFds()).toBe(fds);
    expect(vfioMaps()).toBe(maps);
    expect(lockedKb()).toBe(locked);
    group.openPciDevice(nvmeBdf).close(); // the group is reusable
  }, 600_000);

  test("a dropped device with a pending wait is collected; its fd and interrupts are released", async () => {
    using container = Container.open();
    const group = container.addGroup(nvmeBdf);
    const fds = openFds();
    (() => {
      const dev = group.openPciDevice(nvmeBdf);
      dev.enableBusMaster();
      void dev.msix.enable(1)[0]!.next().catch(() => {});
    })();
    for (let i = 0; i < 100 && openFds() > fds; i++) {
      Bun.gc(true);
      await Bun.sleep(20);
    }
    expect(openFds()).toBe(fds);
    const interrupts = readFileSync("/proc/interrupts", "utf8").split("\n").filter((l) => l.includes(`vfio-msix[0](${nvmeBdf})`));
    expect(interrupts).toEqual([]);
    group.openPciDevice(nvmeBdf).close();
  }, 60_000);
});

