/** Runs the `bun-vfio` command (src/cli/main.ts) in the guest and captures everything. */
import { join } from "node:path";

const MAIN = join(import.meta.dir, "../../src/cli/main.ts");

/** Exit status, stdout and stderr of `bun-vfio ...args`. */
export function cli(...args: string[]): { code: number; out: string; err: string } {
  const p = Bun.spawnSync(["bun", MAIN, ...args], { stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? -1, out: p.stdout.toString(), err: p.stderr.toString() };
}

/** Parsed `--json` output; fails the test with stderr when the command failed to print JSON. */
export function cliJson<T = any>(...args: string[]): { code: number; doc: T } {
  const r = cli(...args, "--json");
  try {
    return { code: r.code, doc: JSON.parse(r.out) as T };
  } catch {
    throw new Error(`bun-vfio ${args.join(" ")} --json printed no JSON (status ${r.code}): ${r.err}${r.out}`);
  }
}
