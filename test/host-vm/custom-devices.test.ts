/**
 * Driven from the host: `bun-vfio sandbox --device ... --bind ...` boots a
 * guest with device models no profile contains (QEMU's pci-testdev and an
 * ivshmem-plain backed by --object memory-backend-ram, both in bookworm's
 * QEMU 7.2) and runs a script that lives under /tmp, outside the working
 * directory, against them on real vfio-pci. The script compares what VFIO
 * reports with the guest's sysfs; --write-profile saves a reusable file.
 * A file directly in /tmp given as an argument is readable there too.
 * It runs with a PATH that holds no QEMU and `--qemu` naming a wrapper
 * around the real one, which records that it was the QEMU started.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadProfileFile } from "../../sandbox/custom-profile.ts";

const ROOT = join(import.meta.dir, "../..");
const dir = mkdtempSync("/tmp/bun-vfio-custom-");
const tmpFile = `/tmp/bun-vfio-custom-arg-${process.pid}.txt`;
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(tmpFile, { force: true });
});

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
// A file directly in /tmp, named on the command line: bound into the guest's own /tmp.
console.log(JSON.stringify({ id: "tmp-file", text: readFileSync(process.argv[2], "utf8") }));
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

/**
 * The host's PATH without any qemu-system-*: folders holding one are replaced
 * by a folder of links to everything else in them.
 */
function pathWithoutQemu(): string {
  const shim = join(dir, "path-shim");
  mkdirSync(shim);
  const out: string[] = [];
  for (const d of (process.env.PATH ?? "").split(":").filter(Boolean)) {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    if (!names.some((n) => n.startsWith("qemu-system-"))) {
      out.push(d);
      continue;
    }
    for (const n of names) if (!n.startsWith("qemu-system-") && !existsSync(join(shim, n))) symlinkSync(join(d, n), join(shim, n));
  }
  return [shim, ...out].join(":");
}

test("sandbox --device/--object/--bind --qemu runs a /tmp script against pci-testdev and ivshmem-plain, no QEMU on PATH", { timeout: 15 * 60_000 }, () => {
  const script = join(dir, "custom-devices.ts");
  writeFileSync(script, SCRIPT);
  const saved = join(dir, "custom.json");
  const realQemu = Bun.which("qemu-system-x86_64");
  expect(realQemu).not.toBeNull();
  const PATH = pathWithoutQemu();
  expect(Bun.spawnSync(["/bin/sh", "-c", "command -v qemu-system-x86_64"], { env: { PATH } }).exitCode).not.toBe(0);
  const called = join(dir, "qemu-called");
  writeFileSync(tmpFile, "a file directly in /tmp\n");
  const wrapper = join(dir, "my-qemu");
  writeFileSync(wrapper, `#!/bin/sh\necho "$@" > ${called}\nexec ${realQemu} "$@"\n`, { mode: 0o755 });
  const p = Bun.spawnSync([process.execPath, join(ROOT, "src/cli/main.ts"), "sandbox", "--bare", "--qemu", wrapper,
    "--device", "pci-testdev", "--bind", "1b36:0005",
    "--object", "memory-backend-ram,id=shm0,size=1M", "--device", "ivshmem-plain,memdev=shm0", "--bind", "1af4:1110",
    "--write-profile", saved, "--timeout", "600", "--", "bun", script, tmpFile], { cwd: ROOT, env: { ...process.env, PATH }, stdout: "pipe", stderr: "pipe" });
  const out = p.stdout.toString();
  expect({ status: p.exitCode, stderr: p.exitCode === 0 ? "" : p.stderr.toString() }).toEqual({ status: 0, stderr: "" });
  // The wrapper ran, with the guest's command line (the sandbox started it, not a QEMU found elsewhere).
  expect(readFileSync(called, "utf8")).toContain("-device pci-testdev");
  const lines = out.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  expect(lines.find((l) => l.id === "tmp-file")).toEqual({ id: "tmp-file", text: "a file directly in /tmp\n" });
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
