/**
 * Device selection shared by list/info/check: positional addresses plus
 * lspci's -s/-d filters.
 */
import { listPciDevices, pciDeviceInfo, type PciDeviceInfo } from "../host/pci.ts";
import { bdfArgument } from "./args.ts";
import { matchesFilters, parseIdFilter, parseSlotFilter, type PciFilter } from "./filters.ts";

/** The -s/-d option descriptors. */
export const FILTER_OPTIONS = {
  slot: { type: "string", short: "s" },
  ids: { type: "string", short: "d" },
} as const;

/** Parsed filters from `-s` / `-d` values. */
export function filtersOf(command: string, values: { slot?: string | undefined; ids?: string | undefined }): PciFilter[] {
  const filters: PciFilter[] = [];
  if (values.slot !== undefined) filters.push(parseSlotFilter(command, values.slot));
  if (values.ids !== undefined) filters.push(parseIdFilter(command, values.ids));
  return filters;
}

/** The devices named by `positionals` (each must exist: ENODEV otherwise), or every device, narrowed by `filters`. */
export function selectDevices(command: string, positionals: string[], filters: PciFilter[]): PciDeviceInfo[] {
  const devices = positionals.length ? positionals.map((p) => pciDeviceInfo(bdfArgument(command, p))) : listPciDevices();
  return devices.filter((d) => matchesFilters(d, filters));
}
