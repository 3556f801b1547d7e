/**
 * Argument parsing shared by every command: node:util parseArgs (strict),
 * usage errors (exit status 2) kept apart from failures (exit status 1).
 */
import { parseArgs } from "node:util";
import { VfioError } from "../support/errors.ts";
import { parseBdf } from "../host/bdf.ts";
import type { MmapPolicy } from "../mmap-plan/index.ts";

/** A command line the command cannot act on: main prints it with the command's usage and exits 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
  constructor(readonly command: string, detail: string, readonly hint: string) {
    super(`${detail}. ${hint}`);
  }
}

/** Option descriptors as node:util parseArgs takes them. */
export type OptionSpec = Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>;

/** Parses `argv` with `options` plus `-h/--help` (node:util parseArgs, strict, positionals allowed). Throws {@link UsageError}. */
export function parse<T extends OptionSpec>(command: string, argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(command, (err as Error).message, `See \`bun-vfio ${command} --help\``);
  }
}

/** A PCI address argument in canonical form; a malformed one is a usage error. */
export function bdfArgument(command: string, text: string): string {
  try {
    return parseBdf(text).text;
  } catch (err) {
    if (err instanceof VfioError) throw new UsageError(command, `"${text}" is not a PCI address`, "Write it as 0000:01:00.0 or 01:00.0 (see bun-vfio list)");
    throw err;
  }
}

/** The one required positional BDF. */
export function requireBdf(command: string, positionals: string[]): string {
  const bdf = positionals[0];
  if (bdf === undefined || positionals.length > 1) throw new UsageError(command, "expected one PCI address", `Usage: bun-vfio ${command} <bdf>, e.g. 0000:01:00.0 (see bun-vfio list)`);
  return bdfArgument(command, bdf);
}

/** Validates a --policy value. */
export function policyOf(command: string, value: string | undefined): MmapPolicy | undefined {
  if (value === undefined || value === "auto" || value === "strict" || value === "force") return value;
  throw new UsageError(command, `unknown policy '${value}'`, "Use --policy auto, strict or force");
}

/** Validates a positive number of seconds (e.g. --timeout). */
export function secondsOf(command: string, option: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(command, `${option} needs a number of seconds, not '${value}'`, `e.g. ${option} 10`);
  return n;
}

/** Prints a JSON document: bigint as `0x` hex strings, two-space indent, one trailing newline. */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v), 2));
}

/** Version of the JSON documents the CLI prints; bumped only for incompatible changes. */
export const JSON_SCHEMA_VERSION = 1;
