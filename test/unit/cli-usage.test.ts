/**
 * The `bun-vfio` command's contract that needs no VFIO: exit status 2 for
 * usage errors in every command, 1 for failures, --version, --help with
 * examples. Spawns the real command (exit statuses are the point).
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const MAIN = join(import.meta.dir, "../../src/cli/main.ts");
function cli(...args: string[]): { code: number; out: string; err: string } {
  const p = Bun.spawnSync([process.execPath, MAIN, ...args], { stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? -1, out: p.stdout.toString(), err: p.stderr.toString() };
}

const someBdf = "0000:00:00.0";
describe("usage, failures, version", () => {
  test("usage errors exit 2 in every command", { timeout: 60_000 }, () => {
    for (const args of [["list", "--bogus"], ["list", "extra"], ["info", "--policy", "sometimes"], ["info", "-s", "zz"], ["plan", someBdf, "--bar", "9"], ["plan", someBdf, "--bar", "x"], ["plan"], ["check", "a", "b"], ["check", "nonsense"], ["bind"], ["release"], ["release", someBdf, "--timeout", "soon"], ["sandbox", "--timeout", "-1"], ["sandbox", "--bogus"], ["frobnicate"], []]) {
      const r = cli(...args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      if (args.length) expect(r.err).not.toBe("");
    }
  });
  test("a device that does not exist is a failure (1) naming ENODEV", () => {
    const r = cli("info", "0000:7f:00.0");
    expect(r.code).toBe(1);
    expect(r.err).toContain("ENODEV");
  });
  test("--version prints package.json's version; --help has examples and the exit statuses for each command", { timeout: 60_000 }, () => {
    const pkg = JSON.parse(readFileSync(`${import.meta.dir}/../../package.json`, "utf8"));
    expect(cli("--version").out.trim()).toBe(`bun-vfio ${pkg.version}`);
    for (const c of ["list", "info", "plan", "check", "bind", "release"]) {
      const h = cli(c, "--help");
      expect(h.code).toBe(0);
      expect(h.out).toContain("Examples:");
      expect(h.out.replace(/\n/g, " ")).toMatch(/Exit status: 0 .*, 1 .*, 2 usage error\./);
    }
  });
});
