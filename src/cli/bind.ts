/**
 * `bun-vfio bind` / `bun-vfio release`: move devices to vfio-pci and back,
 * guarding what the host still uses (the default-route NIC, mounted disks,
 * open VFIO groups) and never blocking silently on a device someone holds.
 */
import { deviceUsage, usageReasons, vfioHolders, type FileHolder } from "../host/in-use.ts";
import { bindToVfio } from "../host/bind.ts";
import { groupViability } from "../host/groups.ts";
import { pciDeviceInfo, type PciDeviceInfo } from "../host/pci.ts";
import { bdfArgument, JSON_SCHEMA_VERSION, parse, printJson, secondsOf, UsageError } from "./args.ts";

/** Help text of `bun-vfio bind`. */
export const BIND_HELP = `usage: bun-vfio bind <bdf>... [--dry-run] [--force] [--json]

Hands each device to vfio-pci: writes vfio-pci to its driver_override, its
address to its driver's unbind, then to /sys/bus/pci/drivers_probe, and
checks the driver link. Needs root and the vfio-pci module. Refuses (and
binds none of the devices) when one is in use: its network interface
carries the default route, a filesystem on it is mounted, or a process
holds its VFIO group; --force binds anyway. Devices already on vfio-pci are
left alone. Prints the driver each device had, to give it back later.

Options:
  --dry-run   print the checks and the sysfs writes, change nothing (exit
              status as the real run would have: 1 when it would refuse)
  --force     bind even devices in use (you may lose the network or a disk)
  --json      print the result as JSON

Exit status: 0 bound (or, with --dry-run, would bind), 1 refused or failed,
2 usage error.

Examples:
  sudo bun-vfio bind 0000:01:00.0
  sudo bun-vfio bind 0000:01:00.0 0000:01:00.1 --dry-run
  sudo bun-vfio bind $(bun-vfio list -d 8086:10d3 --json | jq -r '.devices[].bdf')`;

/** Help text of `bun-vfio release`. */
export const RELEASE_HELP = `usage: bun-vfio release <bdf>... [--driver NAME] [--timeout SECONDS] [--dry-run] [--json]

Gives each device back: unbinds it from vfio-pci, clears driver_override and
reprobes it so its own driver (or NAME) takes it. While a process holds the
device (its /dev/vfio/N group or a device fd) the kernel would block the
unbind until it lets go; release names those processes and waits for them,
printing progress, for at most --timeout seconds (default 10), then fails
without touching the device.

Options:
  --driver NAME     bind to this driver if the probe picks another (or none)
  --timeout SECONDS how long to wait for holders (default 10; 0: do not wait)
  --dry-run         print the holders and the sysfs writes, change nothing
  --json            print the result as JSON

Exit status: 0 released (or, with --dry-run, listed), 1 still held or
failed, 2 usage error.

Examples:
  sudo bun-vfio release 0000:01:00.0
  sudo bun-vfio release 0000:01:00.0 --driver nvme --timeout 30`;

interface Planned {
  info: PciDeviceInfo;
  writes: string[];
  refusals: string[];
  notes: string[];
}

function bindPlan(bdf: string): Planned {
  const info = pciDeviceInfo(bdf);
  const notes: string[] = [];
  if (info.driver === "vfio-pci") return { info, writes: [], refusals: [], notes: ["already bound to vfio-pci"] };
  const usage = deviceUsage(info.bdf, info.iommuGroup);
  const refusals = usageReasons(usage);
  const dir = `/sys/bus/pci/devices/${info.bdf}`;
  const writes = [`vfio-pci > ${dir}/driver_override`];
  if (info.driver) writes.push(`${info.bdf} > /sys/bus/pci/drivers/${info.driver}/unbind`);
  writes.push(`${info.bdf} > /sys/bus/pci/drivers_probe`);
  if (info.iommuGroup !== undefined) {
    try {
      const others = groupViability(info.iommuGroup).blockers.filter((b) => b.bdf !== info.bdf);
      if (others.length) notes.push(`group ${info.iommuGroup} stays not viable until ${others.map((b) => `${b.bdf} (${b.driver})`).join(", ")} ${others.length === 1 ? "is" : "are"} unbound too`);
    } catch {
      // a missing group directory is reported by bindToVfio itself
    }
  }
  return { info, writes, refusals, notes };
}

function devicesOf(command: string, positionals: string[]): string[] {
  if (positionals.length === 0) throw new UsageError(command, "expected at least one PCI address", `Usage: bun-vfio ${command} <bdf>..., e.g. 0000:01:00.0 (see bun-vfio list)`);
  return [...new Set(positionals.map((p) => bdfArgument(command, p)))];
}

/** Binds devices to vfio-pci after the in-use checks. */
export function bindCommand(argv: string[]): number {
  const { values, positionals } = parse("bind", argv, { "dry-run": { type: "boolean" }, force: { type: "boolean" }, json: { type: "boolean" } });
  if (values.help) {
    console.log(BIND_HELP);
    return 0;
  }
  const plans = devicesOf("bind", positionals).map(bindPlan);
  const refused = plans.filter((p) => p.refusals.length > 0);
  const dry = values["dry-run"] === true;
  const blocked = refused.length > 0 && !values.force;
  const results: { bdf: string; previousDriver: string | null; alreadyBound: boolean; refused: string[]; writes: string[]; notes: string[] }[] = [];
  for (const p of plans) {
    let previousDriver = p.info.driver ?? null;
    let alreadyBound = p.info.driver === "vfio-pci";
    if (!blocked && !dry && !alreadyBound) {
      const r = bindToVfio(p.info.bdf);
      previousDriver = r.previousDriver ?? null;
      alreadyBound = r.alreadyBound;
    }
    results.push({ bdf: p.info.bdf, previousDriver, alreadyBound, refused: p.refusals, writes: p.writes, notes: p.notes });
  }
  if (values.json) printJson({ schema: JSON_SCHEMA_VERSION, command: "bind", dryRun: dry, bound: !blocked && !dry, devices: results });
  else {
    for (const r of results) {
      for (const why of r.refused) console.error(`${r.bdf}: in use: ${why}`);
      if (dry) {
        const would = blocked && r.refused.length ? "would refuse (in use); with --force it would write" : "would write";
        console.log(`${r.bdf}: ${r.alreadyBound ? "already bound to vfio-pci" : `${would}:\n  ${r.writes.join("\n  ")}`}`);
      } else if (!blocked) {
        console.log(r.alreadyBound ? `${r.bdf} is already bound to vfio-pci` : `${r.bdf} bound to vfio-pci (was ${r.previousDriver ?? "unbound"}; give it back with: bun-vfio release ${r.bdf}${r.previousDriver ? ` --driver ${r.previousDriver}` : ""})`);
      }
      for (const n of r.notes) console.log(`${r.bdf}: note: ${n}`);
    }
    if (blocked) console.error(`bun-vfio bind: ${dry ? "would be refused (dry run)" : "refused"}, nothing was changed: ${refused.map((p) => p.info.bdf).join(", ")} ${refused.length === 1 ? "is" : "are"} in use. Stop using ${refused.length === 1 ? "it" : "them"} first, or pass --force.`);
  }
  return blocked ? 1 : 0;
}

const POLL_MS = 250;

function holderText(holders: readonly FileHolder[]): string {
  return holders.map((h) => `PID ${h.pid} (${h.comm})`).join(", ");
}

/** Waits until nobody holds the device or `timeoutS` passes; prints a progress line each second. Returns the holders left. */
async function waitForHolders(bdf: string, group: number | undefined, timeoutS: number, quiet: boolean): Promise<FileHolder[]> {
  const deadline = Date.now() + timeoutS * 1000;
  let holders = vfioHolders(bdf, group);
  let lastReport = 0;
  while (holders.length && Date.now() < deadline) {
    if (!quiet && Date.now() - lastReport >= 1000) {
      lastReport = Date.now();
      const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      console.error(`${bdf}: waiting for ${holderText(holders)} to close ${group === undefined ? "the device" : `/dev/vfio/${group}`} (${left} s left)`);
    }
    await Bun.sleep(POLL_MS);
    holders = vfioHolders(bdf, group);
  }
  return holders;
}

/** Runs the sysfs writes in a child (the unbind may block in the kernel) and waits for it at most `timeoutS` once it has started writing. */
async function releaseInChild(bdf: string, driver: string | undefined, timeoutS: number, group: number | undefined): Promise<{ driver: string | null } | { error: string }> {
  const child = Bun.spawn([process.execPath, `${import.meta.dir}/release-worker.ts`, bdf, ...(driver ? [driver] : [])], { stdout: "pipe", stderr: "inherit", stdin: "ignore" });
  let output = "";
  let startedAt: number | undefined;
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      output += decoder.decode(chunk, { stream: true });
      if (startedAt === undefined && output.includes("start\n")) startedAt = Date.now();
    }
  })();
  let done = false;
  const finished = Promise.all([child.exited, reading]).then(() => (done = true));
  const waitS = Math.max(timeoutS, 5);
  let lastReport = Date.now();
  while (!done && (startedAt === undefined || Date.now() < startedAt + waitS * 1000)) {
    await Promise.race([finished, Bun.sleep(POLL_MS)]);
    if (!done && startedAt !== undefined && Date.now() - Math.max(lastReport, startedAt) >= 1000) {
      lastReport = Date.now();
      const holders = vfioHolders(bdf, group);
      console.error(`${bdf}: the kernel is waiting for the device to be released${holders.length ? ` by ${holderText(holders)}` : " (a process holds a VFIO device fd)"}`);
    }
  }
  if (!done) {
    child.unref();
    const holders = vfioHolders(bdf, group);
    return { error: `the unbind is still blocked in the kernel after ${waitS} s ("blocked until released by user" in dmesg)${holders.length ? `; held by ${holderText(holders)}` : ""}. It completes by itself once the device is closed.` };
  }
  const last = output.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(last) as { driver: string | null } | { error: string };
  } catch {
    return { error: `release worker ended with status ${child.exitCode} and no result` };
  }
}

/** Unbinds devices from vfio-pci once nobody holds them, and lets their drivers take them back. */
export async function releaseCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse("release", argv, { driver: { type: "string" }, timeout: { type: "string" }, "dry-run": { type: "boolean" }, json: { type: "boolean" } });
  if (values.help) {
    console.log(RELEASE_HELP);
    return 0;
  }
  const bdfs = devicesOf("release", positionals);
  const timeoutS = secondsOf("release", "--timeout", values.timeout, 10);
  const dry = values["dry-run"] === true;
  const results: { bdf: string; released: boolean; driver: string | null; holders: { pid: number; comm: string }[]; error: string | null; writes: string[] }[] = [];
  for (const bdf of bdfs) {
    const info = pciDeviceInfo(bdf);
    const writes = info.driver === "vfio-pci"
      ? [`${info.bdf} > /sys/bus/pci/drivers/vfio-pci/unbind`, `(newline) > /sys/bus/pci/devices/${info.bdf}/driver_override`, `${info.bdf} > /sys/bus/pci/drivers_probe`]
      : [`(newline) > /sys/bus/pci/devices/${info.bdf}/driver_override (if it holds vfio-pci)`];
    if (dry) {
      const holders = vfioHolders(info.bdf, info.iommuGroup);
      results.push({ bdf: info.bdf, released: false, driver: info.driver ?? null, holders: holders.map(({ pid, comm }) => ({ pid, comm })), error: null, writes });
      continue;
    }
    const holders = await waitForHolders(info.bdf, info.iommuGroup, timeoutS, values.json === true);
    if (holders.length) {
      results.push({
        bdf: info.bdf, released: false, driver: info.driver ?? null, holders: holders.map(({ pid, comm }) => ({ pid, comm })), writes,
        error: `still held after ${timeoutS} s by ${holderText(holders)}: close the device in ${holders.length === 1 ? "that process" : "those processes"} (or kill ${holders.map((h) => h.pid).join(" ")}), then retry. Nothing was changed.`,
      });
      continue;
    }
    const r = await releaseInChild(info.bdf, values.driver, timeoutS, info.iommuGroup);
    if ("error" in r) results.push({ bdf: info.bdf, released: false, driver: info.driver ?? null, holders: [], error: r.error, writes });
    else results.push({ bdf: info.bdf, released: true, driver: r.driver, holders: [], error: null, writes });
  }
  const failed = results.filter((r) => r.error !== null);
  if (values.json) printJson({ schema: JSON_SCHEMA_VERSION, command: "release", dryRun: dry, devices: results });
  else {
    for (const r of results) {
      if (dry) console.log(`${r.bdf}: ${r.holders.length ? `held by ${holderText(r.holders.map((h) => ({ ...h, path: "" })))}; ` : ""}would write:\n  ${r.writes.join("\n  ")}`);
      else if (r.error) console.error(`bun-vfio release: ${r.bdf}: ${r.error}`);
      else console.log(`${r.bdf} released; now bound to ${r.driver ?? "no driver"}`);
    }
  }
  return failed.length ? 1 : 0;
}

