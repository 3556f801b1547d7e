/**
 * Interrupts on real vfio-pci (profile `remap`: q35 + intel-iommu with
 * interrupt remapping). The devices raise them through their own registers:
 * - edu (QEMU docs/specs/edu.rst): writing status bits to 0x60 raises an
 *   interrupt (MSI when enabled, else INTx), 0x64 acknowledges, 0x24 reads;
 * - e1000e (QEMU hw/net/e1000e_core.c): IVAR (0xE4) maps the "other" cause
 *   to an MSI-X vector (bits 16-19: vector, valid bit 19), IMS (0xD0)
 *   enables causes, ICS (0xC8) sets them, ICR (0xC0) is write-1-to-clear;
 * - nvme: software triggers only (VFIO_DEVICE_SET_IRQS, DATA_NONE).
 * Ground truth: /proc/interrupts (the kernel's vfio-msix[N](bdf) lines),
 * /proc/self/fd, and the MSI-X capability read from sysfs config bytes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { VfioError, type IrqVector, type PciDevice, type VfioSpace } from "../../../src/index.ts";
import { openTestSpace, TEST_BACKEND } from "../backend.ts";
import { find, IDS, msixFromSysfs } from "../ground-truth.ts";
import { vfioError } from "../../vfio-error.ts";
import { isArm64 } from "../platform.ts";

const nvmeBdf = find(IDS.nvme);
const e1000eBdf = find(IDS.e1000e);
const eduBdf = find(IDS.edu);

// e1000e registers and bits
const ICR = 0xc0;
const ICS = 0xc8;
const IMS = 0xd0;
const IVAR = 0xe4;
const CAUSE_OTHER = 1 << 24;
const ivarOther = (vector: number) => (0x8 | vector) << 16;
// edu registers
const EDU_STATUS = 0x24;
const EDU_RAISE = 0x60;
const EDU_ACK = 0x64;

/** Fails instead of hanging when an interrupt never comes (a guard, not a latency assertion). */
function arrives<T>(p: Promise<T>, what: string): Promise<T> {
  return Promise.race([p, Bun.sleep(15_000).then(() => { throw new Error(`${what} never arrived`); })]);
}

/** The kernel's vfio interrupt lines for `bdf` in /proc/interrupts, e.g. ["vfio-msix[0]", ...]. */
function kernelLines(bdf: string): string[] {
  return readFileSync("/proc/interrupts", "utf8").split("\n")
    .map((line) => line.match(new RegExp(`(vfio-[a-z]+(?:\\[\\d+\\])?)\\(${bdf.replaceAll(".", "\\.")}\\)`))?.[1])
    .filter((x): x is string => x !== undefined);
}

const openFds = () => readdirSync("/proc/self/fd").length;

/** Lets the event loop run so the eventfd streams deliver what is already signalled. */
const settle = () => Bun.sleep(20);

let container: VfioSpace;
let nvme: PciDevice;
let e1000e: PciDevice;
let edu: PciDevice;
type Bar = ReturnType<PciDevice["bar"]>;
let e1000eBar0: Bar;
let eduBar0: Bar;

function open(bdf: string): PciDevice {
  const dev = container.openPciDevice(bdf);
  dev.enableMemory();
  dev.enableBusMaster();
  return dev;
}

beforeAll(() => {
  container = openTestSpace();
  nvme = open(nvmeBdf);
  e1000e = open(e1000eBdf);
  edu = open(eduBdf);
  e1000eBar0 = e1000e.bar(0);
  eduBar0 = edu.bar(0);
});
afterAll(() => container.close());

/**
 * QEMU's e1000e arms an EITR throttling timer (500 x 256 ns) on every MSI-X
 * message and asserts MSI-X is still enabled when it fires (hw/net/e1000e_core.c,
 * e1000e_intrmgr_on_msix_throttling_timer): disabling MSI-X right after an
 * e1000e interrupt aborts QEMU. Let the timer run out first.
 */
const e1000eQuiesce = () => Bun.sleep(20);

/** e1000e: route the "other" cause to `vector`, enable it, clear ICR and raise it once. */
function e1000eRaiseOther(vector: number): void {
  e1000eBar0.write32(IVAR, ivarOther(vector));
  e1000eBar0.write32(IMS, CAUSE_OTHER);
  e1000eBar0.write32(ICR, 0xffffffff);
  e1000eBar0.write32(ICS, CAUSE_OTHER);
}

describe("what the kernel and config space say", () => {
  test("IRQ info per index: counts from the capabilities, INTx maskable and automasked, MSI not resizable", () => {
    const sysfs = msixFromSysfs(nvmeBdf)!;
    expect(nvme.msix.info()).toMatchObject({ count: sysfs.vectors, eventfd: true, maskable: false });
    expect(nvme.msix.capability()).toMatchObject({ tableSize: sysfs.vectors, tableBar: sysfs.tableBar, tableOffset: sysfs.tableOffset, pbaBar: sysfs.pbaBar, pbaOffset: sysfs.pbaOffset });
    expect(e1000e.msix.info().count).toBe(msixFromSysfs(e1000eBdf)!.vectors);
    expect(edu.msix.info().count).toBe(0);
    expect(edu.msi.info()).toMatchObject({ count: 1, maskable: false, noresize: true });
    expect(edu.msi.capability()).toMatchObject({ multipleMessageCapable: 1, perVectorMasking: false });
    expect(edu.intx.info()).toMatchObject({ count: 1, maskable: true, automasked: true });
    // Linux 6.5+ on x86 allocates MSI-X vectors dynamically: NORESIZE is clear for MSI-X only.
    // The arm64 GICv3 ITS domain does not offer dynamic allocation (6.12): NORESIZE stays set.
    expect(nvme.msix.dynamic).toBe(!isArm64);
  });
});

describe("MSI-X", () => {
  test("a software trigger reaches every vector (nvme, 8 vectors); the kernel shows one line per vector", async () => {
    const fdsBefore = openFds();
    using vectors = nvme.msix.enable(8);
    expect(vectors).toHaveLength(8);
    expect(kernelLines(nvmeBdf)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((v) => `vfio-msix[${v}]`));
    for (const v of vectors) {
      v.trigger();
      expect(await arrives(v.next(), `vector ${v.vector}`)).toBe(1);
    }
    vectors[5]!.trigger();
    vectors[5]!.trigger();
    vectors[5]!.trigger();
    expect(vectors[5]!.tryRead()).toBe(3); // coalesced: one read, three interrupts
    expect(vectors[5]!.tryRead()).toBe(0);
    nvme.msix.disable();
    expect(kernelLines(nvmeBdf)).toEqual([]);
    expect(openFds()).toBe(fdsBefore);
  });

  test("e1000e: ICS delivers the cause IVAR routes, on that vector only", async () => {
    using vectors = e1000e.msix.enable(5);
    for (const target of [2, 4]) {
      e1000eRaiseOther(target);
      expect(await arrives(vectors[target]!.next(), `e1000e vector ${target}`)).toBe(1);
      expect(e1000eBar0.read32(ICR) & CAUSE_OTHER).toBe(CAUSE_OTHER); // the cause is latched until cleared
      await settle();
      expect(vectors.map((v) => v.tryRead())).toEqual([0, 0, 0, 0, 0]);
    }
  });

  test("on() handlers and for-await see device interrupts too", async () => {
    using vectors = e1000e.msix.enable(2);
    const seen: number[] = [];
    using _sub = vectors[1]!.on((n) => seen.push(n));
    const loop = (async () => {
      for await (const n of vectors[1]!) return n;
      return 0;
    })();
    e1000eRaiseOther(1);
    expect(await arrives(loop, "the iterated wake")).toBe(1);
    expect(seen).toEqual([1]);
    await e1000eQuiesce();
  });

  test("a masked vector delivers nothing and the device holds it (PBA); unmasking delivers it", async () => {
    using vectors = e1000e.msix.enable(5);
    const v = vectors[3]!;
    v.mask();
    expect(v.masked).toBe(true);
    expect(v.pending).toBe(false);
    e1000eRaiseOther(3);
    // Barrier: a wake on another vector, raised after the masked one, has been delivered.
    vectors[0]!.trigger();
    await arrives(vectors[0]!.next(), "the barrier vector");
    await settle();
    expect(v.pending).toBe(true); // QEMU msix_notify: masked => set the PBA bit instead of sending
    expect(v.tryRead()).toBe(0);
    v.unmask();
    expect(v.masked).toBe(false);
    expect(await arrives(v.next(), "the held interrupt")).toBe(1);
    expect(v.pending).toBe(false);
    await e1000eQuiesce();
  });

  test("a software trigger bypasses the device's mask (the kernel signals the eventfd itself)", async () => {
    using vectors = nvme.msix.enable(2);
    vectors[1]!.mask();
    vectors[1]!.trigger();
    expect(await arrives(vectors[1]!.next(), "the triggered vector")).toBe(1);
    vectors[1]!.unmask();
  });

  test("grow adds vectors and keeps the old ones, their waits and their masks (dynamic MSI-X)", async () => {
    using vectors = e1000e.msix.enable(2);
    const first = vectors[1]!;
    first.mask();
    const waiting = first.next();
    const grown = e1000e.msix.grow(5);
    expect(grown).toHaveLength(5);
    expect(grown[1]).toBe(first);
    expect(kernelLines(e1000eBdf)).toEqual([0, 1, 2, 3, 4].map((v) => `vfio-msix[${v}]`));
    e1000eRaiseOther(1);
    await settle();
    expect(first.pending).toBe(true);
    first.unmask();
    expect(await arrives(waiting, "the wait started before grow")).toBe(1);
    grown[4]!.trigger();
    expect(await arrives(grown[4]!.next(), "a new vector")).toBe(1);
    await e1000eQuiesce();
  });

  test("grow without dynamic MSI-X (NORESIZE) disables and re-enables with the same eventfds and masks", async () => {
    const msix = e1000e.msix;
    const realInfo = msix.info.bind(msix);
    msix.info = () => ({ ...realInfo(), noresize: true }); // what a pre-6.5 kernel reports
    try {
      using vectors = msix.enable(2);
      const [v0, v1] = [vectors[0]!, vectors[1]!];
      const fd0 = v0.unsafeFd;
      v1.mask();
      const waiting = v0.next();
      const grown = msix.grow(4);
      expect(grown[0]).toBe(v0);
      expect(v0.unsafeFd).toBe(fd0);
      expect(kernelLines(e1000eBdf)).toEqual([0, 1, 2, 3].map((v) => `vfio-msix[${v}]`));
      v0.trigger();
      expect(await arrives(waiting, "the wait started before the re-enable")).toBe(1);
      e1000eRaiseOther(1);
      await settle();
      expect(v1.pending).toBe(true); // the mask was put back after the kernel re-requested the vector
      v1.unmask();
      expect(await arrives(v1.next(), "the held interrupt")).toBe(1);
      await e1000eQuiesce();
    } finally {
      delete (msix as { info?: unknown }).info;
    }
  });

  test("disable ends pending waits with a VfioError; re-enabling with another count works", async () => {
    const vectors = nvme.msix.enable(4);
    const pending = vectors[2]!.next();
    nvme.msix.disable();
    const err = await pending.then(() => undefined, (e: unknown) => e) as VfioError;
    expect(err).toBeInstanceOf(VfioError);
    expect(err.code).toBe("ECLOSED");
    expect(err.message).toContain("MSI-X was disabled");
    expect(vectors[2]!.closed).toBe(true);
    expect(nvme.msix.vectors).toHaveLength(0);

    using again = nvme.msix.enable(2);
    expect(kernelLines(nvmeBdf)).toEqual(["vfio-msix[0]", "vfio-msix[1]"]);
    again[1]!.trigger();
    expect(await arrives(again[1]!.next(), "vector 1 after re-enable")).toBe(1);
  });
});

describe("MSI (edu)", () => {
  test("the raise-interrupt register delivers an MSI, once per raise", async () => {
    using vectors = edu.msi.enable(1);
    expect(kernelLines(eduBdf)).toEqual(["vfio-msi[0]"]);
    for (const bits of [0x1, 0x4]) {
      eduBar0.write32(EDU_RAISE, bits);
      expect(await arrives(vectors[0]!.next(), "the edu MSI")).toBe(1);
      expect(eduBar0.read32(EDU_STATUS)).toBe(bits);
      eduBar0.write32(EDU_ACK, bits);
    }
    vectors[0]!.trigger();
    expect(await arrives(vectors[0]!.next(), "the software-triggered MSI")).toBe(1);
  });

  test("masking is refused: no SET_IRQS masking for MSI, no per-vector masking in edu's capability", () => {
    using vectors = edu.msi.enable(1);
    const err = vfioError(() => vectors[0]!.mask());
    expect(err.code).toBe("EOPNOTSUPP");
    expect(err.message).toContain("per-vector masking");
    expect(err.hint.length).toBeGreaterThan(10);
    expect(vectors[0]!.pending).toBeUndefined();
  });
});

describe("INTx (edu)", () => {
  test("each interrupt arrives automasked; acknowledging and unmasking lets the next one through", async () => {
    const v = edu.intx.enable();
    try {
      expect(kernelLines(eduBdf)).toEqual(["vfio-intx"]);
      for (const bits of [0x1, 0x2]) {
        eduBar0.write32(EDU_RAISE, bits);
        expect(await arrives(v.next(), "the INTx wake")).toBe(1);
        eduBar0.write32(EDU_ACK, bits); // deassert the line
        edu.intx.unmask();
      }
    } finally {
      edu.intx.disable();
    }
  });

  test("mask() holds a raised line until unmask()", async () => {
    const v = edu.intx.enable();
    try {
      v.mask();
      eduBar0.write32(EDU_RAISE, 0x8);
      await settle();
      expect(v.tryRead()).toBe(0);
      v.unmask(); // the line is still asserted: the kernel signals at once
      expect(await arrives(v.next(), "the held INTx")).toBe(1);
      eduBar0.write32(EDU_ACK, 0x8);
      v.unmask();
    } finally {
      edu.intx.disable();
    }
  });

  test("the unmask eventfd (resample path) unmasks like the ioctl", async () => {
    const v = edu.intx.enable({ unmaskEventfd: true });
    try {
      expect(edu.intx.unmaskFd).toBeGreaterThan(2);
      for (const bits of [0x10, 0x20]) {
        eduBar0.write32(EDU_RAISE, bits);
        expect(await arrives(v.next(), "the INTx wake")).toBe(1);
        eduBar0.write32(EDU_ACK, bits);
        edu.intx.unmask(); // one write(2) to the unmask eventfd
      }
    } finally {
      edu.intx.disable();
    }
    expect(edu.intx.unmaskFd).toBeUndefined();
  });
});

describe("bad input", () => {
  test("more vectors than the device has, or none", () => {
    const err = vfioError(() => nvme.msix.enable(66));
    expect(err.code).toBe("EINVAL");
    expect(err.hint).toContain("1 to 65");
    expect(vfioError(() => nvme.msix.enable(0)).code).toBe("EINVAL");
    expect(vfioError(() => edu.msi.enable(2)).code).toBe("EINVAL");
    expect(nvme.msix.enabled).toBe(false);
  });

  test("an index the device lacks", () => {
    const msix = vfioError(() => edu.msix.enable(1));
    expect(msix.code).toBe("ENODEV");
    expect(msix.hint).toContain("device.msi");
    const errIndex = vfioError(() => edu.err.enable());
    expect(errIndex.code).toBe("ENODEV");
    expect(errIndex.hint).toContain("PCI Express");
  });

  test("double enable, and one of INTx/MSI/MSI-X at a time", () => {
    using _v = nvme.msix.enable(1);
    const twice = vfioError(() => nvme.msix.enable(1));
    expect(twice.code).toBe("EBUSY");
    expect(twice.hint).toContain("grow");
    const other = vfioError(() => nvme.intx.enable());
    expect(other.code).toBe("EBUSY");
    expect(other.message).toContain("MSI-X is enabled");
    expect(vfioError(() => nvme.msix.trigger(1)).code).toBe("EINVAL");
    expect(vfioError(() => nvme.msix.grow(1)).code).toBe("EINVAL");
  });

  test("operations on a disabled index", () => {
    expect(vfioError(() => edu.intx.unmask()).code).toBe("EINVAL");
    expect(vfioError(() => nvme.msix.vector(0)).code).toBe("EINVAL");
    expect(vfioError(() => nvme.req.trigger()).code).toBe("EINVAL");
  });
});

describe("ERR and REQ", () => {
  test("ERR (PCIe nvme) and REQ vectors wake on a software trigger", async () => {
    const err = nvme.err.enable();
    const req = nvme.req.enable();
    try {
      err.trigger();
      req.trigger();
      expect(await arrives(err.next(), "ERR")).toBe(1);
      expect(await arrives(req.next(), "REQ")).toBe(1);
      expect(vfioError(() => req.mask()).code).toBe("EOPNOTSUPP");
    } finally {
      nvme.err.disable();
      nvme.req.disable();
    }
  });

  test("onRelease runs the handler; without autoRelease the device stays open", async () => {
    const calls: number[] = [];
    const { promise, resolve } = Promise.withResolvers<void>();
    using _sub = nvme.req.onRelease(({ count }) => {
      calls.push(count);
      resolve();
    });
    nvme.req.trigger();
    await arrives(promise, "the release handler");
    expect(calls).toEqual([1]);
    expect(nvme.closed).toBe(false);
    nvme.req.disable();
  });

  test("autoRelease closes the device after the (async) handler; the device can be opened again", async () => {
    // type1: a second fd of edu, so the release must close it and the shared one (an unplug waits for every open instance);
    // iommufd: a cdev has one open instance (a second bind is refused), so the shared one is swapped for it
    if (TEST_BACKEND === "iommufd") edu.close();
    const dev = open(eduBdf);
    const order: string[] = [];
    dev.msi.enable(1);
    dev.req.onRelease(async () => {
      order.push("handler");
      await Bun.sleep(5);
      order.push("handler done");
    }, { autoRelease: true });
    dev.req.trigger();
    for (let i = 0; i < 200 && !dev.closed; i++) await Bun.sleep(10);
    expect(dev.closed).toBe(true);
    expect(order).toEqual(["handler", "handler done"]);
    expect(dev.msi.enabled).toBe(false);
    expect(edu.closed).toBe(true);
  });
});

describe("teardown", () => {
  test("closing the device disables its interrupts first, rejects pending waits, leaks no fds, and the device opens again", async () => {
    e1000e.close(); // the shared handle; reopened below
    const fdsBefore = openFds();
    const dev = open(e1000eBdf);
    const vectors = dev.msix.enable(3);
    const req = dev.req.enable();
    const waits = [vectors[0]!.next(), vectors[2]!.next(), req.next()];
    const iterated = (async () => {
      let n = 0;
      for await (const _ of vectors[1]!) n++;
      return n;
    })();
    await settle();
    expect(kernelLines(e1000eBdf)).toHaveLength(3);
    dev.close();
    expect(kernelLines(e1000eBdf)).toEqual([]);
    for (const w of waits) {
      const err = await w.then(() => undefined, (e: unknown) => e) as VfioError;
      expect(err).toBeInstanceOf(VfioError);
      expect(err.code).toBe("ECLOSED");
      expect(err.message).toContain("the device was closed");
    }
    expect(await iterated).toBe(0); // the loop ends instead of throwing
    expect(vectors.every((v: IrqVector) => v.closed)).toBe(true);
    await settle();
    expect(openFds()).toBe(fdsBefore);

    e1000e = open(e1000eBdf);
    e1000eBar0 = e1000e.bar(0);
    using again = e1000e.msix.enable(5);
    e1000eRaiseOther(2);
    expect(await arrives(again[2]!.next(), "an interrupt after reopening")).toBe(1);
    await e1000eQuiesce();
  });
});
