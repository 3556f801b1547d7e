/**
 * `bun-vfio list`: one line per PCI function, lspci -nn's text plus driver,
 * IOMMU group and viability.
 */
import { JSON_SCHEMA_VERSION, parse, printJson, UsageError } from "./args.ts";
import { deviceReport, reportJson, type DeviceReport } from "./device-report.ts";
import { FILTER_OPTIONS, filtersOf, selectDevices } from "./select.ts";

/** Help text of `bun-vfio list`. */
export const LIST_HELP = `usage: bun-vfio list [-s [[domain:]bus:][dev][.fn]] [-d [vendor]:[device][:class]] [--json]

PCI functions like \`lspci -nn\` (class and names from the system's pci.ids,
numeric ids in brackets), with the bound driver and the IOMMU group: "viable"
when VFIO may take the group, "blocked" when a member is bound to a driver
that uses the kernel's DMA API. Reads sysfs only; needs no root.

Options:
  -s SLOT     only devices at this address (lspci syntax; fields may be empty or *)
  -d IDS      only devices with these ids (vendor:device[:class[:prog-if]], hex)
  --json      the documented JSON document instead of the table

Exit status: 0 ok, 1 failure, 2 usage error.

Examples:
  bun-vfio list
  bun-vfio list -d 1b36:          every QEMU/Red Hat device
  bun-vfio list -s 00:04          slot 4 of bus 0, every function
  bun-vfio list -d ::0108 --json  NVMe controllers, machine-readable`;

function groupColumn(r: DeviceReport): string {
  if (r.info.iommuGroup === undefined) return "none";
  if (!r.group) return String(r.info.iommuGroup);
  return `${r.info.iommuGroup} ${r.group.viable ? "viable" : "blocked"}`;
}

/** Prints the table (header first) or `--json`. */
export function listCommand(argv: string[]): number {
  const { values, positionals } = parse("list", argv, { ...FILTER_OPTIONS, json: { type: "boolean" } });
  if (values.help) {
    console.log(LIST_HELP);
    return 0;
  }
  if (positionals.length) throw new UsageError("list", `unexpected argument '${positionals[0]}'`, "Select devices with -s or -d (see bun-vfio list --help)");
  const reports = selectDevices("list", [], filtersOf("list", values)).map((d) => deviceReport(d.bdf));
  if (values.json) {
    printJson({ schema: JSON_SCHEMA_VERSION, command: "list", devices: reports.map(reportJson) });
    return 0;
  }
  const driverWidth = Math.max(6, ...reports.map((r) => (r.info.driver ?? "-").length));
  const groupWidth = Math.max(5, ...reports.map((r) => groupColumn(r).length));
  console.log(`${"ADDRESS".padEnd(12)}  ${"DRIVER".padEnd(driverWidth)}  ${"GROUP".padEnd(groupWidth)}  DEVICE`);
  for (const r of reports) console.log(`${r.info.bdf}  ${(r.info.driver ?? "-").padEnd(driverWidth)}  ${groupColumn(r).padEnd(groupWidth)}  ${r.title}`);
  return 0;
}
