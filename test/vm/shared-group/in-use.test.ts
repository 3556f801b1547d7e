/**
 * `bun-vfio bind`'s in-use guards on real devices with their guest drivers:
 * a virtio-net carrying the default route and a virtio-blk with a mounted
 * ext4 filesystem (made on the host by host.ts), plus a device whose IOMMU
 * group another process holds open. bind refuses naming the route, the
 * mount point or the PID; --dry-run changes nothing; --force really
 * unbinds. Ground truth: /proc/net/route, /proc/self/mountinfo, the /proc
 * fd links, the sysfs driver links and driver_override. The drivers may be
 * modules (Debian's kernel: loaded by /init from the profile's `modules`)
 * or built in; nothing here depends on which.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, writeFileSync } from "node:fs";
import { cli, cliJson } from "../cli-run.ts";
import { driverOf, find, groupOf, IDS } from "../ground-truth.ts";
import { MARKER_FILE, MARKER_TEXT } from "./in-use-image.ts";

const nic = find("1af4:1000");
const disk = find("1af4:1001");
const override = (bdf: string) => readFileSync(`/sys/bus/pci/devices/${bdf}/driver_override`, "utf8").trim();

/** busybox (the sandbox's own, a static binary on the host's root) for ip and mount: no iproute2 or util-linux needed. */
function busybox(...args: string[]): void {
  const p = Bun.spawnSync(["busybox", ...args], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`busybox ${args.join(" ")} failed (status ${p.exitCode}): ${p.stderr}`);
}

/** The interfaces of a PCI function: /sys/class/net/<if>/device resolves under it (for virtio-net: to `<bdf>/virtioN`). */
function interfacesOf(bdf: string): string[] {
  return readdirSync("/sys/class/net").filter((i) => existsSync(`/sys/class/net/${i}/device`) && realpathSync(`/sys/class/net/${i}/device`).split("/").includes(bdf));
}

/** Interfaces with a default route (destination and mask 0) in /proc/net/route. */
function defaultRouteInterfaces(): string[] {
  return readFileSync("/proc/net/route", "utf8").trim().split("\n").slice(1).map((l) => l.trim().split(/\s+/)).filter((c) => c[1] === "00000000" && c[7] === "00000000").map((c) => c[0]!);
}

/** Block devices whose sysfs path lies under the PCI function. */
function disksOf(bdf: string): string[] {
  return readdirSync("/sys/class/block").filter((b) => realpathSync(`/sys/class/block/${b}`).split("/").includes(bdf));
}

/** Mount points of a block device `major:minor` in /proc/self/mountinfo (field 3 is the device, field 5 the mount point). */
function mountPointsOf(majorMinor: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8").trim().split("\n").map((l) => l.split(" ")).filter((f) => f[2] === majorMinor).map((f) => f[4]!);
}

const MNT = "/tmp/in-use-mnt";

afterAll(() => {
  // Give both devices back to virtio-pci for whatever runs next, whatever happened above.
  try {
    if (mountPointsOf(readFileSync(`/sys/class/block/${disksOf(disk)[0] ?? "none"}/dev`, "utf8").trim()).includes(MNT)) busybox("umount", MNT);
  } catch {
    // no disk left, or nothing mounted
  }
  for (const bdf of [nic, disk]) if (driverOf(bdf) !== "virtio-pci") cli("release", bdf);
});

describe("the NIC carrying the default route", () => {
  let ifname = "";
  test("setup: the virtio-net's interface gets an address and the default route", () => {
    expect(driverOf(nic)).toBe("virtio-pci");
    const ifs = interfacesOf(nic);
    expect(ifs.length).toBe(1);
    ifname = ifs[0]!;
    busybox("ip", "link", "set", ifname, "up");
    busybox("ip", "addr", "add", "10.0.2.15/24", "dev", ifname);
    busybox("ip", "route", "add", "default", "via", "10.0.2.2", "dev", ifname);
    expect(defaultRouteInterfaces()).toEqual([ifname]);
  });

  test("bind refuses, naming the interface and /proc/net/route; nothing changes", () => {
    const r = cli("bind", nic);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${nic}: in use: network interface ${ifname} carries the default route (/proc/net/route)`);
    expect(r.err).toContain("nothing was changed");
    expect(driverOf(nic)).toBe("virtio-pci");
    expect(override(nic)).toBe("(null)");
    expect(defaultRouteInterfaces()).toEqual([ifname]);
  });

  test("--dry-run says it would refuse and what --force would write; --dry-run --force exits 0; nothing changes", () => {
    const dry = cli("bind", nic, "--dry-run");
    expect(dry.code).toBe(1);
    expect(dry.err).toContain(`network interface ${ifname} carries the default route`);
    expect(dry.out).toContain(`${nic}: would refuse (in use); with --force it would write:`);
    expect(dry.out).toContain(`${nic} > /sys/bus/pci/drivers/virtio-pci/unbind`);
    const forced = cliJson("bind", nic, "--dry-run", "--force");
    expect(forced.code).toBe(0);
    expect(forced.doc).toMatchObject({ command: "bind", dryRun: true, bound: false });
    expect(forced.doc.devices[0].refused).toEqual([`network interface ${ifname} carries the default route (/proc/net/route)`]);
    expect(driverOf(nic)).toBe("virtio-pci");
    expect(override(nic)).toBe("(null)");
    expect(interfacesOf(nic)).toEqual([ifname]);
  });

  test("--force unbinds it for real: vfio-pci, the interface and its route gone", () => {
    const r = cli("bind", nic, "--force");
    expect(r.code).toBe(0);
    expect(r.out).toContain(`${nic} bound to vfio-pci (was virtio-pci`);
    expect(driverOf(nic)).toBe("vfio-pci");
    expect(interfacesOf(nic)).toEqual([]);
    expect(defaultRouteInterfaces()).toEqual([]);
    const back = cli("release", nic);
    expect(back.code).toBe(0);
    expect(driverOf(nic)).toBe("virtio-pci");
  });
});

describe("the disk with a mounted filesystem", () => {
  let dev = "";
  test("setup: the virtio-blk's disk is mounted (the host's ext4 image, marker file inside)", () => {
    expect(driverOf(disk)).toBe("virtio-pci");
    const disks = disksOf(disk);
    expect(disks.length).toBe(1);
    dev = disks[0]!;
    mkdirSync(MNT, { recursive: true });
    busybox("mount", "-t", "ext4", `/dev/${dev}`, MNT);
    expect(readFileSync(`${MNT}/${MARKER_FILE}`, "utf8")).toBe(MARKER_TEXT);
    expect(mountPointsOf(readFileSync(`/sys/class/block/${dev}/dev`, "utf8").trim())).toEqual([MNT]);
  });

  test("bind refuses, naming the device and the mount point; --dry-run changes nothing", () => {
    const r = cli("bind", disk);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${disk}: in use: /dev/${dev} is mounted on ${MNT}`);
    expect(driverOf(disk)).toBe("virtio-pci");
    const dry = cliJson("bind", disk, "--dry-run");
    expect(dry.code).toBe(1);
    expect(dry.doc.devices[0].refused[0]).toContain(`/dev/${dev} is mounted on ${MNT}`);
    expect(driverOf(disk)).toBe("virtio-pci");
    expect(override(disk)).toBe("(null)");
    expect(mountPointsOf(readFileSync(`/sys/class/block/${dev}/dev`, "utf8").trim())).toEqual([MNT]);
  });

  test("--force unbinds it for real: vfio-pci, the block device gone", () => {
    const r = cli("bind", disk, "--force");
    expect(r.code).toBe(0);
    expect(driverOf(disk)).toBe("vfio-pci");
    expect(disksOf(disk)).toEqual([]);
    expect(existsSync(`/sys/class/block/${dev}`)).toBe(false);
    busybox("umount", "-l", MNT);
    const back = cli("release", disk);
    expect(back.code).toBe(0);
    expect(driverOf(disk)).toBe("virtio-pci");
    expect(disksOf(disk).length).toBe(1);
  });
});

describe("a device whose IOMMU group another process holds open", () => {
  const edu = find(IDS.edu);
  const rng = find("1af4:1005");
  test("bind of the group's other member refuses naming the PID; nothing changes", async () => {
    if (driverOf(rng) === undefined) writeFileSync("/sys/bus/pci/drivers/virtio-pci/bind", rng);
    expect(driverOf(rng)).toBe("virtio-pci");
    const group = groupOf(edu);
    expect(groupOf(rng)).toBe(group);
    // A plain open of /dev/vfio/N (allowed while the group is not viable), held until stdin closes.
    const holder = Bun.spawn(["bun", "-e", `require("node:fs").openSync("/dev/vfio/${group}", "r+"); console.log("holding"); await Bun.stdin.text();`], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
    try {
      const first = await holder.stdout.getReader().read();
      expect(new TextDecoder().decode(first.value)).toContain("holding");
      const fds = readdirSync(`/proc/${holder.pid}/fd`).map((fd) => { try { return readlinkSync(`/proc/${holder.pid}/fd/${fd}`); } catch { return ""; } });
      expect(fds).toContain(`/dev/vfio/${group}`);
      const r = cli("bind", rng);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`${rng}: in use: PID ${holder.pid} (bun) holds /dev/vfio/${group} open`);
      expect(driverOf(rng)).toBe("virtio-pci");
      expect(override(rng)).toBe("(null)");
    } finally {
      holder.stdin.end();
      holder.kill();
      await holder.exited;
    }
  });
});
