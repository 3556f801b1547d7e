/**
 * Is a PCI device in use by the host? The answers a careful admin looks up
 * before unbinding a driver: the network interface carrying the default
 * route (/proc/net/route), mounted block devices (/proc/self/mounts), and
 * processes holding the device's VFIO group open (/proc/<pid>/fd). Every
 * reader takes `{ root }` and never throws for a missing file.
 */
import { readdirSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { basename } from "node:path";
import { hostPath, type HostOptions } from "./sysfs.ts";

/** A process with a file open. */
export interface FileHolder {
  readonly pid: number;
  /** The process name from /proc/<pid>/comm. */
  readonly comm: string;
  /** What the fd points to, e.g. `/dev/vfio/5`. */
  readonly path: string;
}

/** What uses a device now. */
export interface DeviceUsage {
  /** Network interfaces of the device (from /sys/class/net/<if>/device). */
  readonly interfaces: readonly string[];
  /** Those of its interfaces that carry a default route (destination 0.0.0.0 in /proc/net/route). */
  readonly defaultRoute: readonly string[];
  /** Block devices of the device (from /sys/class/block). */
  readonly blockDevices: readonly string[];
  /** Mounted filesystems on those block devices or their partitions. */
  readonly mounts: readonly { source: string; target: string }[];
  /** Processes holding the device's VFIO group node open. */
  readonly vfioHolders: readonly FileHolder[];
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function list(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** Interfaces with a default route, from the text of /proc/net/route (destination and mask 00000000). */
export function parseDefaultRouteInterfaces(procNetRoute: string): string[] {
  const out = new Set<string>();
  for (const line of procNetRoute.split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length >= 8 && cols[1] === "00000000" && cols[7] === "00000000") out.add(cols[0]!);
  }
  return [...out];
}

/** `source target` pairs of /proc/self/mounts whose source is a /dev node; octal escapes decoded. */
export function parseMounts(procMounts: string): { source: string; target: string }[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return procMounts.split("\n").map((l) => l.split(" ")).filter((c) => c.length >= 2 && c[0]!.startsWith("/dev/")).map((c) => ({ source: unescape(c[0]!), target: unescape(c[1]!) }));
}

const BDF_COMPONENT = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

/**
 * True when the PCI function nearest above a sysfs class entry (resolved) is
 * `bdf`. The nearest, because a NIC or disk sits under its own function
 * either directly or through a bus of its own (virtio: `<bdf>/virtio1/net/eth0`,
 * NVMe: `<bdf>/nvme/nvme0/nvme0n1`), and under every bridge above that.
 */
function resolvesUnder(path: string, bdf: string): boolean {
  try {
    return realpathSync(path).split("/").filter((c) => BDF_COMPONENT.test(c)).pop() === bdf;
  } catch {
    return false;
  }
}

/** Network interfaces whose `device` link leads to the PCI function `bdf` (directly, or through a virtio device on it). */
export function networkInterfacesOf(bdf: string, options?: HostOptions): string[] {
  const dir = hostPath(options, "sys/class/net");
  return list(dir).filter((ifname) => resolvesUnder(`${dir}/${ifname}/device`, bdf)).sort();
}

/** Block devices (disks and partitions) whose nearest PCI function in sysfs is `bdf`. */
export function blockDevicesOf(bdf: string, options?: HostOptions): string[] {
  const dir = hostPath(options, "sys/class/block");
  return list(dir).filter((name) => resolvesUnder(`${dir}/${name}`, bdf)).sort();
}

/**
 * Processes with `target` open, from the /proc/<pid>/fd links (needs root
 * to see other users' processes; unreadable ones are skipped).
 */
export function fileHolders(target: string, options?: HostOptions): FileHolder[] {
  const proc = hostPath(options, "proc");
  const out: FileHolder[] = [];
  for (const pid of list(proc)) {
    if (!/^\d+$/.test(pid)) continue;
    for (const fd of list(`${proc}/${pid}/fd`)) {
      let link: string;
      try {
        link = readlinkSync(`${proc}/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (link === target) {
        out.push({ pid: Number(pid), comm: (read(`${proc}/${pid}/comm`) ?? "?").trim(), path: link });
        break;
      }
    }
  }
  return out.sort((a, b) => a.pid - b.pid);
}

/** The VFIO group node paths of a group as processes see them (`/dev/vfio/N`, `/dev/vfio/noiommu-N`). */
export function groupNodePaths(group: number): string[] {
  return [`/dev/vfio/${group}`, `/dev/vfio/noiommu-${group}`];
}

/** Everything that uses the device `bdf` (canonical form) right now; `group` is its IOMMU group if it has one. */
export function deviceUsage(bdf: string, group: number | undefined, options?: HostOptions): DeviceUsage {
  const interfaces = networkInterfacesOf(bdf, options);
  const routes = parseDefaultRouteInterfaces(read(hostPath(options, "proc/net/route")) ?? "");
  const blockDevices = blockDevicesOf(bdf, options);
  const mounts = parseMounts(read(hostPath(options, "proc/self/mounts")) ?? "").filter((m) => blockDevices.includes(basename(m.source)));
  return { interfaces, defaultRoute: interfaces.filter((i) => routes.includes(i)), blockDevices, mounts, vfioHolders: vfioHolders(bdf, group, options) };
}

/** One line per reason the device is busy, empty when nothing uses it. */
export function usageReasons(usage: DeviceUsage): string[] {
  const reasons: string[] = [];
  for (const i of usage.defaultRoute) reasons.push(`network interface ${i} carries the default route (/proc/net/route)`);
  for (const m of usage.mounts) reasons.push(`${m.source} is mounted on ${m.target} (/proc/self/mounts)`);
  for (const h of usage.vfioHolders) reasons.push(`PID ${h.pid} (${h.comm}) holds ${h.path} open`);
  return reasons;
}

/**
 * Processes holding a VFIO device of `bdf` open: its group node, or a
 * device fd (`anon_inode:[vfio-device]`) whose /proc/<pid>/fdinfo names the
 * device's sysfs path (kernels that print `vfio-device-syspath`). A process
 * that closed the group but kept the device fd is caught only by the second.
 */
export function vfioHolders(bdf: string, group: number | undefined, options?: HostOptions): FileHolder[] {
  const byPid = new Map<number, FileHolder>();
  if (group !== undefined) for (const p of groupNodePaths(group)) for (const h of fileHolders(p, options)) byPid.set(h.pid, h);
  const proc = hostPath(options, "proc");
  for (const pid of list(proc)) {
    if (!/^\d+$/.test(pid) || byPid.has(Number(pid))) continue;
    for (const fd of list(`${proc}/${pid}/fd`)) {
      let link: string;
      try {
        link = readlinkSync(`${proc}/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (link !== "anon_inode:[vfio-device]") continue;
      const info = read(`${proc}/${pid}/fdinfo/${fd}`) ?? "";
      if (info.includes(`/${bdf}\n`) || info.trimEnd().endsWith(`/${bdf}`)) {
        byPid.set(Number(pid), { pid: Number(pid), comm: (read(`${proc}/${pid}/comm`) ?? "?").trim(), path: link });
        break;
      }
    }
  }
  return [...byPid.values()].sort((a, b) => a.pid - b.pid);
}
