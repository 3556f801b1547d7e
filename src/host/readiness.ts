/**
 * Host readiness for VFIO (`bun-vfio check`): facts read from sysfs and
 * procfs under `{ root }`, then pure evaluators that turn them into
 * findings, each with its evidence and the fix, in the spirit of the mmap
 * plan's explain(). Nothing here opens /dev/vfio or changes the host.
 */
import { hasIommufd, hasVfioCdevs } from "./cdev.ts";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { normalizeBdf } from "./bdf.ts";
import { groupViability, isDmaNeutralDriver, isNoiommuGroup, type GroupViability } from "./groups.ts";
import { deviceUsage, usageReasons, type DeviceUsage } from "./in-use.ts";
import { detectIsolation } from "./isolation.ts";
import { pciDeviceInfo, type PciDeviceInfo } from "./pci.ts";
import { hostPath, type HostOptions } from "./sysfs.ts";
import type { IsolationVerdict } from "../mmap-plan/index.ts";

/** How one check came out: `fail` makes the host (or device) not ready; `warn` works with a caveat. */
export type FindingStatus = "ok" | "warn" | "fail" | "info";

/** One check, what it saw and what to do. */
export interface Finding {
  /** Stable key: `iommu`, `isolation`, `modules`, `dev-vfio`, `backend`, `memlock`, `hugepages`, `device`, `group`, `driver`, `in-use`, `group-node`. */
  readonly id: string;
  readonly status: FindingStatus;
  /** One line saying what was found. */
  readonly summary: string;
  /** The files and values it was decided from. */
  readonly evidence: readonly string[];
  /** What to do about a `fail` or `warn`; undefined when nothing needs doing. */
  readonly fix: string | undefined;
}

/** The whole report. */
export interface Readiness {
  /** No finding failed. */
  readonly ready: boolean;
  readonly findings: readonly Finding[];
}

/** A file's owner and mode, for the permission check. */
export interface NodeAccess {
  readonly path: string;
  readonly exists: boolean;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

/** Who is asking: the permission and memlock checks depend on it. */
export interface Caller {
  readonly uid: number;
  readonly gids: readonly number[];
  /** Soft RLIMIT_MEMLOCK in bytes, undefined when unlimited. */
  readonly memlockLimit: bigint | undefined;
  /** CAP_IPC_LOCK is effective (the memlock limit does not apply). */
  readonly capIpcLock: boolean;
}

/** Everything the evaluators look at, gathered by {@link readHostFacts}. */
export interface HostFacts {
  readonly cmdline: string;
  readonly iommuUnits: readonly string[];
  readonly iommuGroups: number;
  readonly acpiTables: readonly string[];
  readonly isolation: IsolationVerdict;
  readonly modules: Readonly<Record<"vfio" | "vfio_iommu_type1" | "vfio_pci" | "iommufd", boolean>>;
  readonly vfioPciDriver: boolean;
  readonly allowUnsafeInterrupts: string | undefined;
  readonly noiommuMode: string | undefined;
  /** iommufd: `/dev/iommu` exists, VFIO device cdev nodes exist, its own allow_unsafe_interrupts. */
  readonly iommufd: { readonly node: boolean; readonly cdevs: boolean; readonly allowUnsafeInterrupts: string | undefined };
  readonly container: NodeAccess;
  readonly hugePages: { total: number; free: number; sizeKb: number } | undefined;
  readonly caller: Caller;
}

/** What the device checks look at. */
export interface DeviceFacts {
  readonly device: PciDeviceInfo;
  readonly group: GroupViability | undefined;
  readonly groupNode: NodeAccess | undefined;
  readonly usage: DeviceUsage;
}

/** Locked memory a typical userspace driver pins: queues and buffers of one device (64 MiB). */
export const TYPICAL_DMA_BYTES = 64n << 20n;

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}

function list(path: string): string[] {
  try {
    return readdirSync(path).sort();
  } catch {
    return [];
  }
}

/** Owner and mode of a device node under the root. */
export function nodeAccess(path: string, options?: HostOptions): NodeAccess {
  try {
    const s = statSync(hostPath(options, path));
    return { path, exists: true, mode: s.mode & 0o7777, uid: s.uid, gid: s.gid };
  } catch {
    return { path, exists: false, mode: 0, uid: 0, gid: 0 };
  }
}

/** RLIMIT_MEMLOCK and CAP_IPC_LOCK of this process, from /proc/self/limits and /proc/self/status under the root. */
export function readCaller(options?: HostOptions): Caller {
  const limits = read(hostPath(options, "proc/self/limits")) ?? "";
  const soft = /^Max locked memory\s+(\S+)/m.exec(limits)?.[1];
  const status = read(hostPath(options, "proc/self/status")) ?? "";
  const capEff = /^CapEff:\s+([0-9a-f]+)/m.exec(status)?.[1];
  const uid = Number(/^Uid:\s+\d+\s+(\d+)/m.exec(status)?.[1] ?? process.getuid?.() ?? -1);
  const gids = (/^Groups:\s*(.*)$/m.exec(status)?.[1] ?? "").split(/\s+/).filter(Boolean).map(Number);
  const egid = Number(/^Gid:\s+\d+\s+(\d+)/m.exec(status)?.[1] ?? process.getgid?.() ?? -1);
  return {
    uid,
    gids: [egid, ...gids],
    memlockLimit: soft === undefined || soft === "unlimited" ? undefined : BigInt(soft),
    capIpcLock: capEff !== undefined && ((BigInt(`0x${capEff}`) >> 14n) & 1n) === 1n,
  };
}

/** Reads every host-wide fact under the root (default `/`). Never throws. */
export function readHostFacts(options?: HostOptions): HostFacts {
  const moduleLoaded = (name: string) => list(hostPath(options, "sys/module")).includes(name);
  const meminfo = read(hostPath(options, "proc/meminfo")) ?? "";
  const num = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(meminfo)?.[1] ?? NaN);
  const total = num("HugePages_Total");
  return {
    cmdline: read(hostPath(options, "proc/cmdline")) ?? "",
    iommuUnits: list(hostPath(options, "sys/class/iommu")),
    iommuGroups: list(hostPath(options, "sys/kernel/iommu_groups")).length,
    acpiTables: list(hostPath(options, "sys/firmware/acpi/tables")).filter((t) => t === "DMAR" || t === "IVRS" || t === "IORT"),
    isolation: detectIsolation({ root: options?.root ?? "/" }),
    modules: { vfio: moduleLoaded("vfio"), vfio_iommu_type1: moduleLoaded("vfio_iommu_type1"), vfio_pci: moduleLoaded("vfio_pci"), iommufd: moduleLoaded("iommufd") },
    vfioPciDriver: list(hostPath(options, "sys/bus/pci/drivers")).includes("vfio-pci"),
    allowUnsafeInterrupts: read(hostPath(options, "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts")),
    noiommuMode: read(hostPath(options, "sys/module/vfio/parameters/enable_unsafe_noiommu_mode")),
    iommufd: { node: hasIommufd(options), cdevs: hasVfioCdevs(options), allowUnsafeInterrupts: read(hostPath(options, "sys/module/iommufd/parameters/allow_unsafe_interrupts")) },
    container: nodeAccess("dev/vfio/vfio", options),
    hugePages: Number.isNaN(total) ? undefined : { total, free: num("HugePages_Free"), sizeKb: num("Hugepagesize") },
    caller: readCaller(options),
  };
}

/** Reads the facts about one device. Throws VfioError ENODEV/EINVAL for a bad address. */
export function readDeviceFacts(bdf: string, options?: HostOptions): DeviceFacts {
  const device = pciDeviceInfo(normalizeBdf(bdf), options);
  let group: GroupViability | undefined;
  if (device.iommuGroup !== undefined) {
    try {
      group = groupViability(device.iommuGroup, options);
    } catch {
      group = undefined;
    }
  }
  const groupNode = device.iommuGroup === undefined ? undefined
    : nodeAccess(`dev/vfio/${isNoiommuGroup(device.iommuGroup, options) ? "noiommu-" : ""}${device.iommuGroup}`, options);
  return { device, group, groupNode, usage: deviceUsage(device.bdf, device.iommuGroup, options) };
}

/** True when `caller` may open `node` read-write (root always may). */
export function mayReadWrite(node: NodeAccess, caller: Caller): boolean {
  if (caller.uid === 0) return true;
  const bits = node.uid === caller.uid ? (node.mode >> 6) & 7 : caller.gids.includes(node.gid) ? (node.mode >> 3) & 7 : node.mode & 7;
  return (bits & 6) === 6;
}

const octal = (n: number) => n.toString(8).padStart(4, "0");

function finding(id: string, status: FindingStatus, summary: string, evidence: string[], fix?: string): Finding {
  return { id, status, summary, evidence, fix };
}

function iommuFinding(f: HostFacts): Finding {
  const words = f.cmdline.split(/\s+/).filter((w) => /^(intel_iommu|amd_iommu|iommu|iommu\.passthrough|iommu\.strict|vfio\.|vfio_iommu_type1\.)/.test(w));
  const evidence = [
    `/sys/class/iommu: ${f.iommuUnits.length ? f.iommuUnits.join(", ") : "empty"}`,
    `/sys/kernel/iommu_groups: ${f.iommuGroups} groups`,
    `/proc/cmdline IOMMU words: ${words.length ? words.join(" ") : "none"}`,
    `ACPI tables: ${f.acpiTables.length ? f.acpiTables.join(", ") : "no DMAR, IVRS or IORT"}`,
  ];
  if (f.iommuGroups > 0) return finding("iommu", "ok", `IOMMU enabled: ${f.iommuGroups} groups`, evidence);
  const noiommu = /^(Y|1)$/.test(f.noiommuMode ?? "");
  if (noiommu) return finding("iommu", "warn", "no IOMMU; VFIO runs in unsafe noiommu mode (no DMA protection)", evidence, "Enable the IOMMU in firmware and on the kernel command line to get DMA isolation.");
  const fix = f.acpiTables.includes("DMAR")
    ? "The firmware has an Intel DMAR table: add intel_iommu=on to the kernel command line (e.g. GRUB_CMDLINE_LINUX in /etc/default/grub, update-grub, reboot)."
    : f.acpiTables.includes("IVRS")
      ? "The firmware has an AMD IVRS table: make sure amd_iommu is not off on the kernel command line (amd_iommu=on), then reboot."
      : "Enable VT-d / AMD-Vi / SMMU in the firmware setup, then add intel_iommu=on (Intel) to the kernel command line and reboot.";
  return finding("iommu", "fail", "no IOMMU groups: the IOMMU is absent or disabled", evidence, fix);
}

function isolationFinding(f: HostFacts): Finding {
  const v = f.isolation;
  const unsafe = /^(Y|1)$/i.test(f.allowUnsafeInterrupts ?? "");
  const evidence = [`detectIsolation: ${v.level}`, ...v.evidence];
  if (v.isolated) return finding("isolation", "ok", `MSI isolation ${v.level} (interrupt remapping or ITS)`, evidence);
  const enable = "Enable interrupt remapping: VT-d/AMD-Vi interrupt remapping in firmware (for QEMU: -device intel-iommu,intremap=on with -machine kernel-irqchip=split), and do not pass intremap=off or nointremap.";
  if (v.level === "none" && unsafe) {
    return finding("isolation", "warn", "no MSI isolation; vfio_iommu_type1 allow_unsafe_interrupts=Y lets VFIO work anyway (a device can then send any MSI)", evidence, `${enable} Then drop allow_unsafe_interrupts.`);
  }
  if (f.iommuGroups === 0) return finding("isolation", "info", "no IOMMU, so no interrupt remapping either", evidence);
  return finding(
    "isolation",
    "fail",
    `no MSI isolation (${v.level}): vfio_iommu_type1 refuses to attach groups (EPERM, "No interrupt remapping support")`,
    evidence,
    `${enable} Or, accepting that a device may forge interrupts: modprobe -r vfio_iommu_type1; modprobe vfio_iommu_type1 allow_unsafe_interrupts=1 (or vfio_iommu_type1.allow_unsafe_interrupts=1 on the kernel command line).`,
  );
}

function modulesFinding(f: HostFacts): Finding {
  const m = f.modules;
  const evidence = [
    `/sys/module: vfio ${m.vfio ? "loaded" : "absent"}, vfio_iommu_type1 ${m.vfio_iommu_type1 ? "loaded" : "absent"}, vfio_pci ${m.vfio_pci ? "loaded" : "absent"}, iommufd ${m.iommufd ? "loaded" : "absent"}`,
    `/sys/bus/pci/drivers/vfio-pci: ${f.vfioPciDriver ? "present" : "absent"}`,
    `vfio_iommu_type1 allow_unsafe_interrupts = ${f.allowUnsafeInterrupts ?? "(not readable)"}`,
    `vfio enable_unsafe_noiommu_mode = ${f.noiommuMode ?? "(not built in or not loaded)"}`,
  ];
  const missing = [...(f.vfioPciDriver ? [] : ["vfio-pci"]), ...(m.vfio_iommu_type1 || m.iommufd ? [] : ["vfio_iommu_type1"])];
  if (missing.length) return finding("modules", "fail", `not loaded: ${missing.join(", ")}`, evidence, `modprobe ${missing.join(" ")} (as root; add them to /etc/modules-load.d/vfio.conf to load at boot).`);
  return finding("modules", "ok", "vfio, vfio_iommu_type1 and vfio-pci loaded", evidence);
}

function containerFinding(f: HostFacts): Finding {
  const c = f.container;
  if (!c.exists) return finding("dev-vfio", "fail", "/dev/vfio/vfio does not exist", ["stat /dev/vfio/vfio: ENOENT"], "modprobe vfio (the container node appears with the vfio module).");
  const evidence = [`/dev/vfio/vfio mode ${octal(c.mode)} uid ${c.uid} gid ${c.gid}; caller uid ${f.caller.uid} gids ${f.caller.gids.join(",")}`];
  if (mayReadWrite(c, f.caller)) return finding("dev-vfio", "ok", "/dev/vfio/vfio is read-write for this user", evidence);
  return finding("dev-vfio", "fail", "/dev/vfio/vfio is not read-write for this user", evidence, "Run as root, or give the user access (it is normally 0666).");
}

function memlockFinding(f: HostFacts): Finding {
  const c = f.caller;
  const limit = c.memlockLimit;
  const evidence = [`RLIMIT_MEMLOCK (soft, /proc/self/limits): ${limit === undefined ? "unlimited" : `${limit} bytes`}`, `CAP_IPC_LOCK: ${c.capIpcLock ? "effective" : "not effective"}`];
  if (c.capIpcLock) return finding("memlock", "ok", "CAP_IPC_LOCK: DMA pins are not limited", evidence);
  if (limit === undefined) return finding("memlock", "ok", "RLIMIT_MEMLOCK unlimited", evidence);
  if (limit >= TYPICAL_DMA_BYTES) return finding("memlock", "ok", `RLIMIT_MEMLOCK ${limit >> 20n} MiB covers a typical device (${TYPICAL_DMA_BYTES >> 20n} MiB of DMA memory)`, evidence);
  return finding("memlock", "warn", `RLIMIT_MEMLOCK ${limit >> 10n} KiB is below the ${TYPICAL_DMA_BYTES >> 20n} MiB a typical device maps: VFIO_IOMMU_MAP_DMA fails with ENOMEM past it`, evidence,
    "Raise it: `ulimit -l unlimited` in the shell (as root), LimitMEMLOCK=infinity in a systemd unit, or a memlock line in /etc/security/limits.conf; or run with CAP_IPC_LOCK.");
}

function hugePagesFinding(f: HostFacts): Finding {
  const h = f.hugePages;
  if (!h) return finding("hugepages", "info", "huge page counters not readable", ["/proc/meminfo: no HugePages_Total"]);
  const evidence = [`/proc/meminfo: HugePages_Total ${h.total}, HugePages_Free ${h.free}, Hugepagesize ${h.sizeKb} kB`];
  if (h.free > 0) return finding("hugepages", "ok", `${h.free} free huge pages of ${h.sizeKb} kB`, evidence);
  return finding("hugepages", "info", "no free huge pages: DmaBuffer with hugePages fails (ordinary pages work)", evidence,
    `Reserve some if you want them: echo 64 > /sys/kernel/mm/hugepages/hugepages-${h.sizeKb}kB/nr_hugepages`);
}

/** Which IOMMU backend openVfio() takes here (the same rule as chooseBackend, from the same files). */
function backendFinding(f: HostFacts): Finding {
  const i = f.iommufd;
  const evidence = [
    `/dev/iommu: ${i.node ? "present" : "absent"}`,
    `/dev/vfio/devices: ${i.cdevs ? "VFIO device cdev nodes present" : "no cdev nodes"}`,
    `iommufd allow_unsafe_interrupts = ${i.allowUnsafeInterrupts ?? "(not readable)"}`,
  ];
  if (f.noiommuMode === "Y") {
    return finding("backend", "warn", "vfio's no-IOMMU mode is on: devices without an IOMMU are handed out with no isolation at all (openVfio({ backend: \"noiommu\" }))", evidence,
      "Only for a machine and device you trust entirely; otherwise unload vfio and load it without enable_unsafe_noiommu_mode.");
  }
  if (i.node && i.cdevs) return finding("backend", "ok", "iommufd with VFIO device cdevs: openVfio() uses iommufd", evidence);
  const why = i.node ? "/dev/iommu exists but no device has a cdev (CONFIG_VFIO_DEVICE_CDEV off, or nothing bound to vfio-pci yet)" : "no /dev/iommu (no iommufd)";
  return finding("backend", "info", `the type1 container: ${why}; openVfio() uses type1`, evidence);
}

/** The host-wide findings, in report order. Pure. */
export function evaluateHost(f: HostFacts): Finding[] {
  return [iommuFinding(f), isolationFinding(f), modulesFinding(f), containerFinding(f), backendFinding(f), memlockFinding(f), hugePagesFinding(f)];
}

/** The findings about one device. Pure. */
export function evaluateDevice(d: DeviceFacts, caller: Caller): Finding[] {
  const dev = d.device;
  const out: Finding[] = [];
  const bdf = dev.bdf;
  if (dev.iommuGroup === undefined || !d.group) {
    out.push(finding("group", "fail", `${bdf} has no IOMMU group`, [`/sys/bus/pci/devices/${bdf}/iommu_group: absent`], "Enable the IOMMU (see the iommu finding); in noiommu mode the group appears when vfio-pci binds the device."));
    return out;
  }
  const g = d.group;
  const members = g.members.map((m) => `${m.bdf} ${m.driver ?? "(no driver)"}`);
  const groupEvidence = [`/sys/kernel/iommu_groups/${g.group}/devices: ${members.join(", ")}`];
  const others = g.blockers.filter((b) => b.bdf !== bdf);
  if (others.length) {
    out.push(finding("group", "fail", `group ${g.group} is not viable: ${others.map((b) => `${b.bdf} is bound to ${b.driver}`).join(", ")}`, groupEvidence,
      `Every member must be unbound or on vfio-pci: bun-vfio bind ${others.map((b) => b.bdf).join(" ")} (or unbind them); devices behind a PCIe-to-PCI bridge always share a group.`));
  } else {
    out.push(finding("group", "ok", `group ${g.group}: ${g.members.length} member${g.members.length === 1 ? "" : "s"}, no other member blocks it`, groupEvidence));
  }
  const reasons = usageReasons(d.usage);
  const usageEvidence = [
    `network interfaces: ${d.usage.interfaces.join(", ") || "none"}; default route on: ${d.usage.defaultRoute.join(", ") || "none"}`,
    `block devices: ${d.usage.blockDevices.join(", ") || "none"}; mounted: ${d.usage.mounts.map((m) => `${m.source} on ${m.target}`).join(", ") || "none"}`,
    `holders of /dev/vfio/${g.group}: ${d.usage.vfioHolders.map((h) => `PID ${h.pid} (${h.comm})`).join(", ") || "none"}`,
  ];
  if (dev.driver === "vfio-pci" || (dev.driver !== undefined && isDmaNeutralDriver(dev.driver) && /vfio/.test(dev.driver))) {
    out.push(finding("driver", "ok", `${bdf} is bound to ${dev.driver}`, [`/sys/bus/pci/devices/${bdf}/driver -> ${dev.driver}`]));
  } else {
    const busy = d.usage.defaultRoute.length > 0 || d.usage.mounts.length > 0;
    out.push(finding("driver", "fail", `${bdf} is bound to ${dev.driver ?? "no driver"}, not vfio-pci${dev.driver ? ": it must be unbound first" : ""}`,
      [`/sys/bus/pci/devices/${bdf}/driver -> ${dev.driver ?? "(none)"}`, `driver_override: ${dev.driverOverride ?? "(none)"}`],
      busy ? `Stop using it first (${reasons.join("; ")}), then: bun-vfio bind ${bdf}` : `bun-vfio bind ${bdf} (as root)`));
  }
  if (reasons.length) {
    out.push(finding("in-use", "fail", `${bdf} is in use: ${reasons.join("; ")}`, usageEvidence,
      d.usage.vfioHolders.length ? `Stop the holders (kill ${d.usage.vfioHolders.map((h) => h.pid).join(" ")}) or wait for them to close the group.` : "Take the interface down / unmount the filesystems before handing the device to VFIO."));
  } else out.push(finding("in-use", "ok", `${bdf} is not in use (no default route, no mounts, no VFIO holders)`, usageEvidence));
  const node = d.groupNode ? `/${d.groupNode.path.replace(/^\//, "")}` : `/dev/vfio/${g.group}`;
  if (d.groupNode && d.groupNode.exists) {
    const ev = [`${node} mode ${octal(d.groupNode.mode)} uid ${d.groupNode.uid} gid ${d.groupNode.gid}`];
    if (mayReadWrite(d.groupNode, caller)) out.push(finding("group-node", "ok", `${node} is read-write for this user`, ev));
    else out.push(finding("group-node", "fail", `${node} is not read-write for this user`, ev, `Run as root, or: chown ${caller.uid} ${node} (a udev rule makes it stick).`));
  } else if (dev.driver === "vfio-pci") {
    out.push(finding("group-node", "fail", `${node} is missing although the device is on vfio-pci`, [`stat ${node}: ENOENT`], "Check `dmesg` for vfio errors; is /dev a devtmpfs?"));
  }
  return out;
}

/** Reads the host (and `bdf` when given) and evaluates every check. */
export function checkReadiness(options: HostOptions & { bdf?: string } = {}): Readiness {
  const host = readHostFacts(options);
  const findings = evaluateHost(host);
  if (options.bdf !== undefined) findings.push(...evaluateDevice(readDeviceFacts(options.bdf, options), host.caller));
  return { ready: findings.every((f) => f.status !== "fail"), findings };
}
