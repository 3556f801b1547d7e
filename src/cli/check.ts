/**
 * `bun-vfio check [<bdf>]`: is this host (and this device) ready for VFIO?
 * Each finding with its evidence and the fix; exit 0 ready, 1 not ready.
 */
import { checkReadiness, type Finding } from "../host/readiness.ts";
import { JSON_SCHEMA_VERSION, parse, printJson, requireBdf } from "./args.ts";

/** Help text of `bun-vfio check`. */
export const CHECK_HELP = `usage: bun-vfio check [<bdf>] [--json]

Checks the host for VFIO: IOMMU present and enabled (groups, DMAR/IVRS/IORT,
kernel command line), MSI isolation (interrupt remapping or ITS), vfio
modules and their parameters, /dev/vfio/vfio permissions, RLIMIT_MEMLOCK,
huge pages. With a device: its IOMMU group and every member's driver,
viability, its driver (what must be unbound), whether it is in use (default
route, mounted filesystems, processes holding /dev/vfio/N). Each finding
comes with its evidence and, when something is wrong, the fix. Reads sysfs
and procfs only; changes nothing.

Exit status: 0 ready, 1 not ready (some finding is FAIL), 2 usage error.

Examples:
  bun-vfio check
  bun-vfio check 0000:01:00.0
  bun-vfio check 0000:01:00.0 --json | jq '.findings[] | select(.status == "fail")'`;

const MARK: Record<Finding["status"], string> = { ok: "ok  ", warn: "WARN", fail: "FAIL", info: "info" };

/** Runs the checks and prints them. */
export function checkCommand(argv: string[]): number {
  const { values, positionals } = parse("check", argv, { json: { type: "boolean" } });
  if (values.help) {
    console.log(CHECK_HELP);
    return 0;
  }
  const bdf = positionals.length ? requireBdf("check", positionals) : undefined;
  const report = checkReadiness(bdf === undefined ? {} : { bdf });
  if (values.json) {
    printJson({
      schema: JSON_SCHEMA_VERSION,
      command: "check",
      bdf: bdf ?? null,
      ready: report.ready,
      findings: report.findings.map((f) => ({ id: f.id, status: f.status, summary: f.summary, evidence: [...f.evidence], fix: f.fix ?? null })),
    });
    return report.ready ? 0 : 1;
  }
  const failed = report.findings.filter((f) => f.status === "fail").length;
  const subject = bdf ? `${bdf} on this host` : "this host";
  console.log(report.ready ? `${subject}: ready for VFIO` : `${subject}: NOT READY for VFIO (${failed} failed check${failed === 1 ? "" : "s"})`);
  for (const f of report.findings) {
    console.log(`\n[${MARK[f.status]}] ${f.id}: ${f.summary}`);
    for (const e of f.evidence) console.log(`       ${e}`);
    if (f.fix && f.status !== "ok") console.log(`  fix: ${f.fix}`);
  }
  return report.ready ? 0 : 1;
}
