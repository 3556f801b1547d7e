/**
 * `bun-vfio info` and `bun-vfio plan`: what sysfs and config space say about
 * a device (lspci -vv style), and for a device on vfio-pci what the kernel
 * reports through VFIO and the mmap plan of each BAR.
 */
import { VfioError } from "../support/errors.ts";
import { pciDeviceInfo } from "../host/pci.ts";
import { JSON_SCHEMA_VERSION, parse, policyOf, printJson, requireBdf, UsageError } from "./args.ts";
import { deviceReport, reportJson, reportLines } from "./device-report.ts";
import { hex as hexString } from "../support/format.ts";
import type { MmapPlan } from "../mmap-plan/index.ts";
import { FILTER_OPTIONS, filtersOf, selectDevices } from "./select.ts";
import { presentBars, vfioLines, vfioReport, withDevice, type VfioReport } from "./vfio-report.ts";

/** Help text of `bun-vfio info`. */
export const INFO_HELP = `usage: bun-vfio info [<bdf>...] [-s SLOT] [-d IDS] [--policy auto|strict|force] [--json]

For each device (all of them when no address or filter is given): what
\`lspci -vv\` shows from sysfs and config space (class, names, subsystem,
regions, capabilities with MSI/MSI-X/PCIe/PM/virtio decoded), driver and
IOMMU group. For a device bound to vfio-pci in a viable group, also what
VFIO reports (device flags, regions with their capabilities, IRQ indexes)
and the mmap plan of each BAR. Capabilities need root (config space past 64
bytes); opening through VFIO needs access to /dev/vfio/N.

Options:
  -s SLOT, -d IDS   lspci's filters (see bun-vfio list --help)
  --policy P        mmap policy for the plans (default auto)
  --json            the documented JSON document

Exit status: 0 ok (a device VFIO could not open is shown, not a failure),
1 failure, 2 usage error.

Examples:
  bun-vfio info 0000:00:04.0
  bun-vfio info -d 1b36:0010 --policy strict
  bun-vfio info --json | jq '.devices[].capabilities[].text'`;

/** Help text of `bun-vfio plan`. */
export const PLAN_HELP = `usage: bun-vfio plan <bdf> [--bar N] [--policy auto|strict|force] [--json]

Explains which pages of each BAR (or only BAR N, 0-5) would be mmapped and
which trapped through pread/pwrite, and why. The device must be bound to
vfio-pci in a viable group.

Exit status: 0 ok, 1 failure (e.g. BAR N not implemented, device not
usable through VFIO), 2 usage error.

Examples:
  bun-vfio plan 0000:00:04.0
  bun-vfio plan 0000:00:04.0 --bar 0 --policy strict
  bun-vfio plan 0000:00:04.0 --json`;

type VfioPart = { report: VfioReport } | { error: { op: string; code: string; path: string | null; message: string; hint: string } } | { skipped: string };

function vfioPart(bdf: string, driver: string | undefined, policy: ReturnType<typeof policyOf>): VfioPart {
  if (driver !== "vfio-pci") return { skipped: `not bound to vfio-pci (${driver ?? "no driver"}): bind it with \`bun-vfio bind ${bdf}\` to see what VFIO reports` };
  try {
    return { report: withDevice(bdf, (dev) => vfioReport(dev, policy)) };
  } catch (err) {
    if (!(err instanceof VfioError)) throw err;
    return { error: { op: err.op, code: err.code, path: err.path ?? null, message: err.message, hint: err.hint } };
  }
}

/** Prints every selected device; exit 0 when each could be read from sysfs (a VFIO part that could not be opened is shown, not fatal). */
export function infoCommand(argv: string[]): number {
  const { values, positionals } = parse("info", argv, { ...FILTER_OPTIONS, policy: { type: "string" }, json: { type: "boolean" } });
  if (values.help) {
    console.log(INFO_HELP);
    return 0;
  }
  const policy = policyOf("info", values.policy);
  const devices = selectDevices("info", positionals, filtersOf("info", values));
  const out: Record<string, unknown>[] = [];
  for (const d of devices) {
    const report = deviceReport(d.bdf);
    const vfio = vfioPart(d.bdf, d.driver, policy);
    if (values.json) {
      out.push({
        ...reportJson(report),
        vfio: "report" in vfio ? vfio.report : null,
        vfioError: "error" in vfio ? vfio.error : null,
        vfioSkipped: "skipped" in vfio ? vfio.skipped : null,
      });
      continue;
    }
    const lines = reportLines(report);
    if ("report" in vfio) lines.push(...vfioLines(vfio.report));
    else if ("error" in vfio) lines.push(`\tVFIO: could not open the device: ${vfio.error.message}`);
    else lines.push(`\tVFIO: ${vfio.skipped}`);
    console.log(lines.join("\n") + "\n");
  }
  if (values.json) printJson({ schema: JSON_SCHEMA_VERSION, command: "info", devices: out });
  return 0;
}

/** Prints `explain()` of the mmap plan of one BAR or of every present BAR. */
export function planCommand(argv: string[]): number {
  const { values, positionals } = parse("plan", argv, { bar: { type: "string" }, policy: { type: "string" }, json: { type: "boolean" } });
  if (values.help) {
    console.log(PLAN_HELP);
    return 0;
  }
  const bdf = requireBdf("plan", positionals);
  const policy = policyOf("plan", values.policy);
  let bar: number | undefined;
  if (values.bar !== undefined) {
    if (!/^[0-5]$/.test(values.bar)) throw new UsageError("plan", `--bar ${values.bar} is not a BAR index`, "Use --bar 0 to 5");
    bar = Number(values.bar);
  }
  pciDeviceInfo(bdf);
  const plans = withDevice(bdf, (dev) => {
    const present = presentBars(dev);
    if (bar !== undefined && !present.includes(bar)) {
      throw new VfioError({ op: "plan", errno: 22, code: "EINVAL", path: bdf, detail: `BAR ${bar} is not implemented (size 0)`, hint: `This device has BARs ${present.join(", ") || "none"}` });
    }
    return (bar === undefined ? present : [bar]).map((b) => ({ bar: b, plan: dev.mmapPlan(b, { policy }) }));
  });
  if (values.json) {
    printJson({ schema: JSON_SCHEMA_VERSION, command: "plan", bdf, plans: plans.map(({ plan }) => planJson(plan)) });
    return 0;
  }
  for (const p of plans) console.log(p.plan.explain() + "\n");
  return 0;
}

/** A plan as JSON: offsets and sizes as hex strings. */
export function planJson(plan: MmapPlan): Record<string, unknown> {
  return {
    bar: plan.bar,
    size: hexString(plan.size),
    pageSize: hexString(plan.pageSize),
    policy: plan.policy,
    rule: plan.rule,
    isolation: { level: plan.isolation.level, evidence: [...plan.isolation.evidence] },
    ranges: plan.ranges.map((r) => ({ start: hexString(r.start), end: hexString(r.end), access: r.access, reason: r.reason })),
    guarded: plan.guarded.map((g) => ({ start: hexString(g.start), end: hexString(g.end), what: g.what })),
    mappedBytes: hexString(plan.mappedBytes),
    trappedBytes: hexString(plan.trappedBytes),
    explain: plan.explain(),
  };
}
