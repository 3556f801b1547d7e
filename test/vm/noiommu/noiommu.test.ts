/**
 * No-IOMMU mode on real vfio-pci (profile `noiommu`: no IOMMU at all,
 * `vfio.enable_unsafe_noiommu_mode=1`, huge pages reserved). Ground truth:
 * the group nodes and taint the kernel made, its log, the device registers,
 * /proc/iomem, and the edu device copying bytes at physical addresses.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { chooseBackend, Container, DmaBuffer, openVfio, physicalAddresses } from "../../../src/index.ts";
import { find, groupOf, IDS, readText } from "../ground-truth.ts";
import { vfioError } from "../../vfio-error.ts";
import { cliJson } from "../cli-run.ts";
import { EDU, eduDma } from "../edu-dma-engine.ts";
import { blockModule, readmeBlocks } from "../../readme-blocks.ts";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const nvmeBdf = find(IDS.nvme);
const eduBdf = find(IDS.edu);
const TAINT_USER = 1 << 6;
const HUGE_2M = "/sys/kernel/mm/hugepages/hugepages-2048kB";

const kernelLog = () => Bun.spawnSync(["dmesg"]).stdout.toString();

/** /proc/iomem's "System RAM" ranges (root sees real addresses). */
function systemRam(): { start: bigint; end: bigint }[] {
  return readFileSync("/proc/iomem", "utf8").split("\n")
    .map((l) => /^\s*([0-9a-f]+)-([0-9a-f]+) : System RAM$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ start: BigInt(`0x${m[1]}`), end: BigInt(`0x${m[2]}`) }));
}

describe("what the kernel made", () => {
  test("no IOMMU; each bound device has a vfio-noiommu group with a /dev/vfio/noiommu-N node; the kernel is tainted", () => {
    expect(readdirSync("/sys/class/iommu")).toEqual([]);
    expect(readText("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode")).toBe("Y");
    for (const bdf of [nvmeBdf, eduBdf]) {
      const n = groupOf(bdf);
      expect(readText(`/sys/kernel/iommu_groups/${n}/name`)).toBe("vfio-noiommu");
      expect(existsSync(`/dev/vfio/noiommu-${n}`)).toBe(true);
      expect(existsSync(`/dev/vfio/${n}`)).toBe(false);
    }
    expect(Number(readText("/proc/sys/kernel/tainted")) & TAINT_USER).toBe(TAINT_USER);
    expect(kernelLog()).toContain("Adding kernel taint for vfio-noiommu group on device");
  });

  test("auto never picks no-IOMMU mode; the type1 path fails with a hint that names backend \"noiommu\"", () => {
    const saved = process.env.BUN_VFIO_BACKEND;
    delete process.env.BUN_VFIO_BACKEND;
    try {
      expect(chooseBackend().backend).toBe("type1");
      using space = openVfio();
      const err = vfioError(() => space.openPciDevice(eduBdf));
      expect(err.op).toBe("VFIO_SET_IOMMU");
      expect(err.hint).toContain('backend: "noiommu"');
    } finally {
      if (saved !== undefined) process.env.BUN_VFIO_BACKEND = saved;
    }
  });
});

test("bun-vfio check warns that no-IOMMU mode is on, and finds the nvme's /dev/vfio/noiommu-N node", () => {
  const { doc } = cliJson("check", nvmeBdf);
  const byId = Object.fromEntries(doc.findings.map((f: { id: string }) => [f.id, f]));
  expect(byId.backend.status).toBe("warn");
  expect(byId.backend.summary).toContain("no-IOMMU mode is on");
  expect(byId["group-node"].evidence.join("\n")).toContain(`/dev/vfio/noiommu-${groupOf(nvmeBdf)}`);
});

describe("devices in no-IOMMU mode", () => {
  test("open, plan, registers: the container is VFIO_NOIOMMU_IOMMU, isolation none, the MSI-X table trapped", () => {
    using space = openVfio({ backend: "noiommu" });
    expect(space).toBeInstanceOf(Container);
    using nvme = space.openPciDevice(nvmeBdf);
    const container = space as Container;
    expect(container.iommuType).toBe("noiommu");
    expect(container.addressing).toBe("physical");
    expect(container.groups[0]!.path).toBe(`/dev/vfio/noiommu-${groupOf(nvmeBdf)}`);
    const bar = nvme.bar(0);
    expect(bar.plan.isolation.level).toBe("none");
    expect(bar.plan.isolation.evidence[0]).toContain("VFIO_NOIOMMU_IOMMU: no DMA or MSI isolation at all");
    expect(bar.plan.explain()).toContain("the kernel taints itself (TAINT_USER)"); // and it did: see "what the kernel made"
    expect(bar.plan.ranges.some((r) => r.access === "trap")).toBe(true); // the table's page stays behind the kernel
    expect(bar.read32(0x08)).toBe(0x10400);
    const sysCfg = new DataView(readFileSync(`/sys/bus/pci/devices/${nvmeBdf}/config`).buffer);
    expect(nvme.config.read32(0)).toBe(sysCfg.getUint32(0, true));
    expect(kernelLog()).toMatch(/vfio-noiommu device opened by user/);
  });

  test("interrupts: edu's MSI arrives on its eventfd", async () => {
    using space = openVfio({ backend: "noiommu" });
    using edu = space.openPciDevice(eduBdf);
    edu.enableMemory();
    edu.enableBusMaster(); // an MSI is a memory write by the device
    const bar = edu.bar(0);
    using vectors = edu.msi.enable(1);
    bar.write32(0x60, 0x1); // edu (docs/specs/edu.rst): raise an interrupt with status bit 0
    const count = await Promise.race([vectors[0]!.next(), Bun.sleep(5000).then(() => -1)]);
    expect(count).toBe(1);
    expect(bar.read32(0x24) & 1).toBe(1);
    bar.write32(0x64, 0x1); // acknowledge
  });
});

describe("DMA at physical addresses", () => {
  test("a buffer is huge-page backed; its bus address is the physical address, in System RAM; edu round-trips a pattern byte for byte", () => {
    using space = openVfio({ backend: "noiommu" });
    using edu = space.openPciDevice(eduBdf);
    edu.enableMemory();
    edu.enableBusMaster();
    const bar = edu.bar(0);
    using src = DmaBuffer.allocate(space, 4096);
    using dst = DmaBuffer.allocate(space, 4096);
    expect(src.pageSize).toBe(2 << 20);
    expect(src.iova % BigInt(2 << 20)).toBe(0n);
    expect(src.iova).not.toBe(dst.iova);
    for (const b of [src, dst]) expect(systemRam().some((r) => b.iova >= r.start && b.iova + BigInt(b.size) - 1n <= r.end)).toBe(true);
    expect(physicalAddresses(src.address, 1, 1)).toEqual([src.iova]);
    const data = Uint8Array.from({ length: EDU.MAX_TRANSFER }, (_, i) => (i * 31 + 7) & 0xff);
    src.write(100, data);
    dst.bytes.fill(0xee);
    eduDma(bar, { toRam: false }, src.iovaAt(100), 0, data.length);
    eduDma(bar, { toRam: true }, dst.iovaAt(300), 0, data.length);
    expect(dst.read(300, data.length)).toEqual(data);
    expect(dst.bytes.subarray(0, 300).every((x) => x === 0xee)).toBe(true);
  }, 30_000);

  test("what cannot be had says so: a chosen IOVA, missing huge pages, no CAP_SYS_ADMIN", () => {
    using space = openVfio({ backend: "noiommu" });
    using edu = space.openPciDevice(eduBdf); // the first group sets the container's no-IOMMU mode
    expect(edu.closed).toBe(false);
    expect(vfioError(() => DmaBuffer.allocate(space, 4096, { iova: 0x100000n })).message).toContain("iova cannot be chosen without an IOMMU");
    const noGiant = vfioError(() => DmaBuffer.allocate(space, 4096, { hugePages: "1G" }));
    expect(noGiant.code).toBe("ENOMEM");
    expect(noGiant.hint).toContain("huge pages");
    const saved = readText(`${HUGE_2M}/nr_hugepages`);
    const free = Number(readText(`${HUGE_2M}/free_hugepages`));
    try {
      writeFileSync(`${HUGE_2M}/nr_hugepages`, String(Number(saved) - free)); // none free
      const none = vfioError(() => DmaBuffer.allocate(space, 4096));
      expect(none.code).toBe("ENOMEM");
      expect(none.message).toContain("0 free 2M huge pages");
    } finally {
      writeFileSync(`${HUGE_2M}/nr_hugepages`, saved);
    }
    const child = Bun.spawnSync(["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", process.execPath, "-e",
      `import { physicalAddresses, MappedMemory } from "${import.meta.dirname}/../../../src/index.ts";
       const m = MappedMemory.mapAnonymous(4096, 0x21 | 0x8000);
       try { physicalAddresses(m.address, 1, 1); console.log("read"); } catch (e) { console.log(JSON.stringify({ code: e.code, hint: e.hint })); }`]);
    const out = JSON.parse(child.stdout.toString().trim());
    expect(out.code).toBe("EPERM");
    expect(out.hint).toContain("CAP_SYS_ADMIN");
  });
});

describe("the README's no-IOMMU example", () => {
  const blocks = readmeBlocks(join(import.meta.dir, "../../..")).filter((b) => b.run?.profile === "noiommu");
  test("is marked to run here", () => expect(blocks.length).toBe(1));
  for (const block of blocks) {
    test(`README block at line ${block.line} runs as written and prints a physical address in System RAM`, () => {
      const file = join(mkdtempSync(join(tmpdir(), "readme-")), "block.ts");
      writeFileSync(file, blockModule(block, join(import.meta.dir, "../../../src/index.ts")));
      const p = Bun.spawnSync([process.execPath, file, find(IDS[block.run!.device as keyof typeof IDS])], { stdout: "pipe", stderr: "pipe" });
      expect({ status: p.exitCode, stderr: p.stderr.toString() }).toEqual({ status: 0, stderr: "" });
      const m = /^physical address 0x([0-9a-f]+), 2097152 bytes contiguous$/.exec(p.stdout.toString().trim());
      expect(m).not.toBeNull();
      const pa = BigInt(`0x${m![1]}`);
      expect(systemRam().some((r) => pa >= r.start && pa <= r.end)).toBe(true);
    });
  }
});
