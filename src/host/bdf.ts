import { invalidArgument } from "../support/errors.ts";

/** A PCI address split into its fields. */
export interface PciAddress {
  /** PCI segment (domain); 0 on most machines, 0x10000 and up behind Intel VMD. */
  readonly domain: number;
  readonly bus: number;
  readonly device: number;
  readonly function: number;
  /** The canonical form the kernel uses in sysfs: `"0000:01:00.0"`, lowercase hex. */
  readonly text: string;
}

// Domain is optional (0000 implied). sysfs prints it with %04x, so VMD
// domains (>= 0x10000) have five or more digits.
const BDF_PATTERN = /^(?:([0-9a-f]{4,8}):)?([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/i;

const BDF_HINT =
  'Write the address as "0000:01:00.0" or "01:00.0" (domain:bus:device.function, hex); list devices with `bunx bun-vfio list` or `lspci -D`.';

/**
 * Parses a PCI address such as `"0000:01:00.0"` or `"01:00.0"` (domain 0000
 * implied); hex digits may be upper or lower case, surrounding whitespace is
 * ignored. Throws a `VfioError` with code `EINVAL` for anything else,
 * including a device number above 0x1f.
 */
export function parseBdf(input: string): PciAddress {
  const match = BDF_PATTERN.exec(String(input).trim());
  const device = match ? parseInt(match[3]!, 16) : NaN;
  if (!match || device > 0x1f) {
    throw invalidArgument("parseBdf", `${JSON.stringify(input)} is not a PCI address`, BDF_HINT);
  }
  const domain = match[1] === undefined ? 0 : parseInt(match[1], 16);
  const bus = parseInt(match[2]!, 16);
  const fn = parseInt(match[4]!, 10);
  return { domain, bus, device, function: fn, text: formatBdf(domain, bus, device, fn) };
}

/** Returns the canonical sysfs form of a PCI address (`"01:00.0"` becomes `"0000:01:00.0"`). Throws like {@link parseBdf}. */
export function normalizeBdf(input: string): string {
  return parseBdf(input).text;
}

/** Formats PCI address fields the way the kernel names devices in sysfs. */
export function formatBdf(domain: number, bus: number, device: number, fn: number): string {
  const hex = (n: number, width: number) => n.toString(16).padStart(width, "0");
  return `${hex(domain, 4)}:${hex(bus, 2)}:${hex(device, 2)}.${fn}`;
}
