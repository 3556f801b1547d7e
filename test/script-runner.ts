/**
 * The command that runs a TypeScript file as its own process on the
 * runtime running the tests: `bun FILE` or `deno run -A FILE`, so a suite
 * that spawns scripts tests the same runtime on both.
 */
declare const Deno: { execPath(): string } | undefined;

/** argv prefix: append the script path and its arguments. */
export const SCRIPT_RUNNER: string[] = typeof Deno !== "undefined" ? [Deno.execPath(), "run", "-A"] : [process.execPath];
