/**
 * package.json's `engines.bun` is the truth: the unit suite passes under
 * the minimum Bun version it claims, installed from npm (`bun@<version>`)
 * into the cache folder (outside the work tree) on first use.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cacheDir } from "../../sandbox/paths.ts";

const ROOT = join(import.meta.dir, "../..");
const UNIT = join(ROOT, "test", "unit");

/** The minimum version in `>=X.Y.Z`. */
export function minimumOf(range: string): string {
  const m = /^>=\s*(\d+\.\d+\.\d+)$/.exec(range.trim());
  if (!m) throw new Error(`engines.bun "${range}" is not of the form >=X.Y.Z`);
  return m[1]!;
}

test("the unit suite passes under the minimum engines.bun", { timeout: 10 * 60_000 }, () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  const version = minimumOf(pkg.engines.bun);
  const prefix = join(cacheDir(), "bun-versions", version);
  const bun = join(prefix, "node_modules", ".bin", "bun");
  if (!existsSync(bun)) {
    mkdirSync(prefix, { recursive: true });
    const npm = Bun.which("npm");
    expect(npm).not.toBeNull();
    const install = Bun.spawnSync([npm!, "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", prefix, `bun@${version}`], { stdout: "pipe", stderr: "pipe" });
    expect({ status: install.exitCode, err: install.stderr.toString() }).toEqual({ status: 0, err: expect.any(String) });
  }
  const probe = Bun.spawnSync([bun, "--version"], { stdout: "pipe" });
  expect(probe.stdout.toString().trim()).toBe(version);
  const files = readdirSync(UNIT).filter((f) => f.endsWith(".test.ts")).map((f) => `./test/unit/${f}`);
  const run = Bun.spawnSync([bun, "test", "--timeout=60000", ...files], { cwd: ROOT, stdout: "pipe", stderr: "pipe", env: process.env });
  const output = run.stderr.toString() + run.stdout.toString();
  const summary = output.split("\n").filter((l) => /^\s*\d+ (pass|fail)$|^\(fail\)/.test(l)).join("\n");
  expect({ status: run.exitCode, summary }).toEqual({ status: 0, summary: expect.stringMatching(/^\s*\d+ pass\n\s*0 fail$/) });
});
