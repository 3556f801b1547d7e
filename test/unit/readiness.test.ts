/**
 * `bun-vfio check` evaluators on fake sysfs/procfs trees: one tree per host
 * situation, built here from what the real files look like (see the guest
 * captures in test/fixtures/host).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseDefaultRouteInterfaces, parseMounts, deviceUsage } from "../../src/host/in-use.ts";
import { checkReadiness, mayReadWrite, type Finding } from "../../src/host/readiness.ts";
import { releaseFromVfio } from "../../src/host/bind.ts";

const FIXTURES = join(import.meta.dir, "../fixtures/host");
const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

type Tree = { root: string; put(path: string, content: string): void; link(path: string, target: string): void; dir(path: string): void };

function tree(): Tree {
  const root = mkdtempSync(join(tmpdir(), "bun-vfio-ready-"));
  roots.push(root);
  return {
    root,
    put(path, content) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), content);
    },
    link(path, target) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      symlinkSync(target, join(root, path));
    },
    dir(path) {
      mkdirSync(join(root, path), { recursive: true });
    },
  };
}

const ROOT_STATUS = "Name:\tbun\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t0\nCapEff:\t000001ffffffffff\n";
const USER_STATUS = "Name:\tbun\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nGroups:\t1000 27\nCapEff:\t0000000000000000\n";
const LIMITS = (bytes: string) => `Limit                     Soft Limit           Hard Limit           Units\nMax locked memory         ${bytes}              ${bytes}              bytes\n`;

/** A host like the remap guest: intel-iommu with IR, vfio modules, nvme on vfio-pci alone in group 3. */
function remapHost(opts: { remap?: boolean; allowUnsafe?: "Y" | "N"; status?: string; memlock?: string } = {}): Tree {
  const t = tree();
  const remap = opts.remap ?? true;
  t.put("proc/cmdline", "console=ttyS0 intel_iommu=on panic=-1\n");
  t.put("proc/interrupts", readFileSync(join(FIXTURES, remap ? "interrupts-remap.txt" : "interrupts-noremap.txt"), "utf8"));
  t.put("sys/class/iommu/dmar0/intel-iommu/ecap", readFileSync(join(FIXTURES, remap ? "ecap-remap.txt" : "ecap-noremap.txt"), "utf8"));
  t.put("sys/firmware/acpi/tables/DMAR", "");
  for (const m of ["vfio", "vfio_iommu_type1", "vfio_pci"]) t.dir(`sys/module/${m}`);
  t.put("sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", `${opts.allowUnsafe ?? "N"}\n`);
  t.dir("sys/bus/pci/drivers/vfio-pci");
  t.dir("sys/bus/pci/drivers/virtio-pci");
  t.put("dev/vfio/vfio", "");
  t.put("proc/self/status", opts.status ?? ROOT_STATUS);
  t.put("proc/self/limits", LIMITS(opts.memlock ?? "8388608"));
  t.put("proc/meminfo", "MemTotal: 4000000 kB\nHugePages_Total:       0\nHugePages_Free:        0\nHugepagesize:       2048 kB\n");
  t.put("proc/net/route", "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n");
  t.put("proc/self/mounts", "proc /proc proc rw 0 0\n");
  addDevice(t, "0000:00:03.0", 3, "vfio-pci");
  return t;
}

function addDevice(t: Tree, bdf: string, group: number, driver: string | undefined): void {
  const dev = `sys/devices/pci0000:00/${bdf}`;
  t.put(`${dev}/vendor`, "0x1b36\n");
  t.put(`${dev}/device`, "0x0010\n");
  t.put(`${dev}/class`, "0x010802\n");
  t.put(`${dev}/driver_override`, "(null)\n");
  t.link(`sys/bus/pci/devices/${bdf}`, join(t.root, dev));
  t.link(`${dev}/iommu_group`, `../../../kernel/iommu_groups/${group}`);
  if (driver) t.link(`${dev}/driver`, `../../../bus/pci/drivers/${driver}`);
  t.link(`sys/kernel/iommu_groups/${group}/devices/${bdf}`, join(t.root, dev));
  if (driver === "vfio-pci") t.put(`dev/vfio/${group}`, "");
}

const byId = (findings: readonly Finding[], id: string) => findings.find((f) => f.id === id)!;

describe("host verdicts", () => {
  test("remapping host as root: ready, isolation observed, memlock covered by CAP_IPC_LOCK", () => {
    const r = checkReadiness({ root: remapHost().root });
    expect(r.findings.filter((f) => f.status === "fail")).toEqual([]);
    expect(r.ready).toBe(true);
    expect(byId(r.findings, "iommu").summary).toContain("groups");
    expect(byId(r.findings, "isolation").summary).toContain("observed");
    expect(byId(r.findings, "isolation").evidence.join("\n")).toContain("IR-");
    expect(byId(r.findings, "memlock").status).toBe("ok");
    expect(byId(r.findings, "hugepages").status).toBe("info");
  });
  test("no remapping, allow_unsafe_interrupts=N: not ready, the fix names intremap and allow_unsafe_interrupts", () => {
    const r = checkReadiness({ root: remapHost({ remap: false }).root });
    expect(r.ready).toBe(false);
    const iso = byId(r.findings, "isolation");
    expect(iso.status).toBe("fail");
    expect(iso.fix).toContain("intremap=on");
    expect(iso.fix).toContain("allow_unsafe_interrupts=1");
  });
  test("no remapping with allow_unsafe_interrupts=Y: a warning, still ready", () => {
    const r = checkReadiness({ root: remapHost({ remap: false, allowUnsafe: "Y" }).root });
    expect(byId(r.findings, "isolation").status).toBe("warn");
    expect(r.ready).toBe(true);
  });
  test("no IOMMU groups: the fix depends on the ACPI table", () => {
    const t = tree();
    t.put("proc/cmdline", "quiet\n");
    t.put("sys/firmware/acpi/tables/DMAR", "");
    const r = checkReadiness({ root: t.root });
    const iommu = byId(r.findings, "iommu");
    expect(iommu.status).toBe("fail");
    expect(iommu.fix).toContain("intel_iommu=on");
    expect(byId(r.findings, "modules").fix).toContain("modprobe vfio-pci");
    expect(byId(r.findings, "dev-vfio").status).toBe("fail");
  });
  test("a user without CAP_IPC_LOCK and 8 MiB memlock gets a warning with the fix; 0600 container node fails", () => {
    const t = remapHost({ status: USER_STATUS });
    const r = checkReadiness({ root: t.root });
    const mem = byId(r.findings, "memlock");
    expect(mem.status).toBe("warn");
    expect(mem.fix).toContain("ulimit -l");
    // files in the fake tree belong to whoever runs the test, not uid 1000
    expect(byId(r.findings, "dev-vfio").status).toBe(process.getuid?.() === 1000 ? "ok" : "fail");
  });
  test("permission rule: owner, group, other bits", () => {
    const node = { path: "dev/vfio/3", exists: true, mode: 0o660, uid: 0, gid: 27 };
    const user = { uid: 1000, gids: [1000], memlockLimit: undefined, capIpcLock: false };
    expect(mayReadWrite(node, user)).toBe(false);
    expect(mayReadWrite(node, { ...user, gids: [1000, 27] })).toBe(true);
    expect(mayReadWrite({ ...node, mode: 0o666 }, user)).toBe(true);
    expect(mayReadWrite(node, { ...user, uid: 0 })).toBe(true);
  });
});

describe("device verdicts", () => {
  test("nvme alone on vfio-pci: ready", () => {
    const r = checkReadiness({ root: remapHost().root, bdf: "00:03.0" });
    expect(r.ready).toBe(true);
    expect(byId(r.findings, "group").status).toBe("ok");
    expect(byId(r.findings, "driver").status).toBe("ok");
    expect(byId(r.findings, "in-use").status).toBe("ok");
  });
  test("shared group with a member on virtio-pci: not viable, naming it and the bind command", () => {
    const t = remapHost();
    addDevice(t, "0000:00:04.0", 3, "virtio-pci");
    const r = checkReadiness({ root: t.root, bdf: "0000:00:03.0" });
    expect(r.ready).toBe(false);
    const g = byId(r.findings, "group");
    expect(g.status).toBe("fail");
    expect(g.summary).toContain("0000:00:04.0 is bound to virtio-pci");
    expect(g.fix).toContain("bun-vfio bind 0000:00:04.0");
  });
  test("device on its own driver carrying the default route: must be unbound, in use", () => {
    const t = remapHost();
    addDevice(t, "0000:00:05.0", 5, "e1000e");
    t.link("sys/class/net/eth0/device", "../../../devices/pci0000:00/0000:00:05.0");
    t.put("proc/net/route", "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n");
    const r = checkReadiness({ root: t.root, bdf: "0000:00:05.0" });
    expect(byId(r.findings, "driver").status).toBe("fail");
    expect(byId(r.findings, "driver").summary).toContain("e1000e");
    expect(byId(r.findings, "in-use").summary).toContain("eth0 carries the default route");
  });
  test("a virtio NIC and disk (class entries under <bdf>/virtioN) belong to that function, not to the bridge above", () => {
    const t = remapHost();
    t.dir("sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0/virtio1/net/eth1");
    t.link("sys/class/net/eth1/device", "../../../devices/pci0000:00/0000:00:1c.0/0000:01:00.0/virtio1");
    t.dir("sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0/virtio2/block/vda");
    t.link("sys/class/block/vda", "../../devices/pci0000:00/0000:00:1c.0/0000:01:00.0/virtio2/block/vda");
    expect(deviceUsage("0000:01:00.0", undefined, { root: t.root })).toMatchObject({ interfaces: ["eth1"], blockDevices: ["vda"] });
    expect(deviceUsage("0000:00:1c.0", undefined, { root: t.root })).toMatchObject({ interfaces: [], blockDevices: [] });
  });
  test("a mounted partition and a VFIO holder are named with evidence", () => {
    const t = remapHost();
    t.dir("sys/devices/pci0000:00/0000:00:03.0/nvme/nvme0/nvme0n1/nvme0n1p1");
    t.link("sys/class/block/nvme0n1p1", "../../devices/pci0000:00/0000:00:03.0/nvme/nvme0/nvme0n1/nvme0n1p1");
    t.put("proc/self/mounts", "/dev/nvme0n1p1 /mnt/data\\040disk ext4 rw 0 0\n");
    t.link("proc/4242/fd/7", "/dev/vfio/3");
    t.put("proc/4242/comm", "qemu-system-x86\n");
    const usage = deviceUsage("0000:00:03.0", 3, { root: t.root });
    expect(usage.mounts).toEqual([{ source: "/dev/nvme0n1p1", target: "/mnt/data disk" }]);
    expect(usage.vfioHolders).toEqual([{ pid: 4242, comm: "qemu-system-x86", path: "/dev/vfio/3" }]);
    const r = checkReadiness({ root: t.root, bdf: "0000:00:03.0" });
    const inUse = byId(r.findings, "in-use");
    expect(inUse.status).toBe("fail");
    expect(inUse.summary).toContain("PID 4242 (qemu-system-x86)");
    expect(inUse.fix).toContain("kill 4242");
  });
});

test("route and mount parsers", () => {
  expect(parseDefaultRouteInterfaces("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\nens3\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\nens3\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\n")).toEqual(["ens3"]);
  expect(parseMounts("/dev/sda1 / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n")).toEqual([{ source: "/dev/sda1", target: "/" }]);
});

test("releaseFromVfio refuses with EBUSY, naming the holder, instead of blocking in the kernel", () => {
  const t = remapHost();
  t.link("proc/777/fd/3", "/dev/vfio/3");
  t.put("proc/777/comm", "my-driver\n");
  const writes: string[] = [];
  const write = (path: string, value: string) => void writes.push(`${path}=${value}`);
  let err: any;
  try {
    releaseFromVfio("0000:00:03.0", { root: t.root, write });
  } catch (e) {
    err = e;
  }
  expect(err?.code).toBe("EBUSY");
  expect(err.message).toContain("PID 777 (my-driver)");
  expect(writes).toEqual([]);
  // A device fd whose fdinfo names the device counts too (kernels that print vfio-device-syspath).
  rmSync(join(t.root, "proc/777/fd/3"));
  t.link("proc/777/fd/4", "anon_inode:[vfio-device]");
  t.put("proc/777/fdinfo/4", "pos:\t0\nflags:\t02\nvfio-device-syspath: /sys/devices/pci0000:00/0000:00:03.0\n");
  expect(() => releaseFromVfio("0000:00:03.0", { root: t.root, write })).toThrow("PID 777 (my-driver)");
  releaseFromVfio("0000:00:03.0", { root: t.root, write, ignoreHolders: true });
  expect(writes[0]).toContain("unbind=0000:00:03.0");
});
