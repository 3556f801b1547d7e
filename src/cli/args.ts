/**
 * Tiny argument parsing for the CLI: positional arguments and `--name value` options.
 */
import { parseArgs } from "node:util";
import { invalidArgument } from "../support/errors.ts";
import type { MmapPolicy } from "../mmap-plan/index.ts";

/** Parses `argv` with `options` (node:util parseArgs), strict, with positionals. */
export function parse<T extends Record<string, { type: "string" | "boolean"; short?: string }>>(command: string, argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw invalidArgument(command, (err as Error).message, `See \`bun-vfio ${command} --help\`.`);
  }
}

/** The one required positional BDF. */
export function requireBdf(command: string, positionals: string[]): string {
  const bdf = positionals[0];
  if (bdf === undefined || positionals.length > 1) throw invalidArgument(command, "expected one PCI address", `Usage: bun-vfio ${command} <bdf>, e.g. 0000:01:00.0 (see bun-vfio list).`);
  return bdf;
}

/** Validates a --policy value. */
export function policyOf(command: string, value: string | undefined): MmapPolicy | undefined {
  if (value === undefined || value === "auto" || value === "strict" || value === "force") return value;
  throw invalidArgument(command, `unknown policy '${value}'`, "Use --policy auto, strict or force.");
}
