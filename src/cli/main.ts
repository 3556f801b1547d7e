#!/usr/bin/env bun
/**
 * Temporary `bun-vfio` entry point holding only the `sandbox` dispatch;
 * the full CLI replaces this file.
 */
import { sandboxCommand } from "../sandbox/cli.ts";

const [sub, ...rest] = process.argv.slice(2);
if (sub === "sandbox") {
  process.exit(await sandboxCommand(rest));
}
console.error("usage: bun-vfio sandbox [--profile NAME] [--timeout SECONDS] [--list-profiles] -- <command...>");
process.exit(2);
