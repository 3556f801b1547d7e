/**
 * Driven from the host: `bun-vfio sandbox --device ... --bind ...` boots a
 * guest with device models no profile contains (QEMU's pci-testdev and an
 * ivshmem-plain backed by --object memory-backend-ram, both in bookworm's
 * QEMU 7.2) and runs a script that lives under /tmp, outside the working
 * directory, against them on real vfio-pci. The script compares what VFIO
 * reports with the guest's sysfs; --write-profile saves a reusable file.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadProfileFile } from "../../sandbox/custom-profile.ts";

const ROOT = join(import.meta.dir, "../..");
const dir = mkdtempSync("/tmp/bun-vfio-custom-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SCRIPT = `
import { readdirSync, readFileSync } from "node:fs";
import { Container } from ${JSON.stringify(join(ROOT, "src/index.ts"))};
const PCI = "/sys/bus/pci/devices";
const attr = (b, n) => readFileSync(PCI + "/" + b + "/" + n, "utf8").trim();
function find(v, d) {
  const b = readdirSync(PCI).find((x) => attr(x, "vendor") === "0x" + v && attr(x, "device") === "0x" + d);
  if (!b) throw new Error("no " + v + ":" + d);
  return b;
}
function sizes(b) {
  return attr(b, "resource").split("\\n").slice(0, 6).map((l) => { const [s, e] = l.trim().split(/\\s+/).map(BigInt); return s === 0n && e === 0n ? 0 : Number(e - s + 1n); });
}
for (const [v, d] of [["1b36", "0005"], ["1af4", "1110"]]) {
  const bdf = find(v, d);
  using container = Container.open();
  using group = container.addGroup(bdf);
  using dev = group.openPciDevice(bdf);
  const vfio = [0, 1, 2, 3, 4, 5].map((i) => dev.regionInfo(i).size);
  console.log(JSON.stringify({ id: v + ":" + d, driver: readFileSync(PCI + "/" + bdf + "/driver_override", "utf8").trim(), vfio, sysfs: sizes(bdf) }));
  if (d === "1110") {
    dev.enableMemory();
    const shm = dev.bar(2);
    shm.write32(0x100, 0xc0ffee11);
    console.log(JSON.stringify({ id: "shm", readBack: shm.read32(0x100).toString(16), size: shm.size }));
  }
}
`;

test("sandbox --device/--object/--bind runs a /tmp script against pci-testdev and ivshmem-plain", { timeout: 15 * 60_000 }, () => {
  const script = join(dir, "custom-devices.ts");
  writeFileSync(script, SCRIPT);
  const saved = join(dir, "custom.json");
  const p = Bun.spawnSync([process.execPath, join(ROOT, "src/cli/main.ts"), "sandbox", "--bare",
    "--device", "pci-testdev", "--bind", "1b36:0005",
    "--object", "memory-backend-ram,id=shm0,size=1M", "--device", "ivshmem-plain,memdev=shm0", "--bind", "1af4:1110",
    "--write-profile", saved, "--timeout", "600", "--", "bun", script], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const out = p.stdout.toString();
  expect({ status: p.exitCode, stderr: p.exitCode === 0 ? "" : p.stderr.toString() }).toEqual({ status: 0, stderr: "" });
  const lines = out.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  const testdev = lines.find((l) => l.id === "1b36:0005");
  const ivshmem = lines.find((l) => l.id === "1af4:1110");
  for (const d of [testdev, ivshmem]) {
    expect(d.driver).toBe("vfio-pci");
    expect(d.vfio).toEqual(d.sysfs);
  }
  // ivshmem's BAR2 is the 1 MiB memory-backend-ram given with --object.
  expect(ivshmem.sysfs[2]).toBe(1 << 20);
  expect(lines.find((l) => l.id === "shm")).toEqual({ id: "shm", readBack: "c0ffee11", size: 1 << 20 });
  const profile = loadProfileFile(saved);
  expect(profile.devices.filter((d) => d.vfio).map((d) => `${d.vendor}:${d.device}`)).toEqual(["1b36:0005", "1af4:1110"]);
  expect(profile.devices.flatMap((d) => d.qemu)).toEqual(["-device", "pci-testdev", "-device", "ivshmem-plain,memdev=shm0"]);
  expect(profile.qemuExtra).toEqual(["-object", "memory-backend-ram,id=shm0,size=1M"]);
});
