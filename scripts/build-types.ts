#!/usr/bin/env bun
/**
 * `prepack`: emits declaration files for src/ and sandbox/ into dist/types
 * with the project's tsc (tsconfig.build.json), rewrites their relative
 * `.ts` import specifiers to `.js` (what NodeNext and bundler consumers
 * resolve to the .d.ts next to it), and checks that every `types`
 * condition in package.json's `exports` names a file that now exists and
 * mirrors its runtime entry (./src/x.ts -> ./dist/types/src/x.d.ts).
 */
import { readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { join, relative } from "node:path";

const ROOT = join(import.meta.dir, "..");
const OUT = join(ROOT, "dist", "types");

/** Where the `types` file of a runtime `.ts` entry lives. */
export function typesPathOf(entry: string): string {
  return entry.replace(/^\.\//, "./dist/types/").replace(/\.ts$/, ".d.ts");
}

/** The `exports` entries whose `types` does not mirror their runtime file, as messages. */
export function exportMismatches(pkg: { exports: Record<string, unknown> }): string[] {
  const problems: string[] = [];
  for (const [key, value] of Object.entries(pkg.exports)) {
    if (typeof value !== "object" || value === null) continue;
    const v = value as Record<string, string>;
    const runtime = v.bun ?? v.default;
    if (!runtime?.endsWith(".ts")) continue;
    if (v.types !== typesPathOf(runtime)) problems.push(`exports["${key}"].types is ${v.types}, expected ${typesPathOf(runtime)}`);
  }
  return problems;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

if (import.meta.main) {
  rmSync(OUT, { recursive: true, force: true });
  const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
  const p = Bun.spawnSync([process.execPath, tsc, "-p", join(ROOT, "tsconfig.build.json")], { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
  if (p.exitCode !== 0) throw new Error(`tsc -p tsconfig.build.json failed with status ${p.exitCode}`);
  let files = 0;
  for (const file of walk(OUT).filter((f) => f.endsWith(".d.ts"))) {
    const text = readFileSync(file, "utf8");
    writeFileSync(file, text.replace(/((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']+)\.ts(["'])/g, "$1$2.js$3"));
    files++;
  }
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  const problems = exportMismatches(pkg);
  for (const [key, value] of Object.entries(pkg.exports as Record<string, Record<string, string> | string>)) {
    const types = typeof value === "object" ? value.types : undefined;
    if (types && !existsSync(join(ROOT, types))) problems.push(`exports["${key}"].types: ${types} was not emitted`);
  }
  if (problems.length) throw new Error(`package.json exports do not match the declarations:\n  ${problems.join("\n  ")}`);
  console.log(`build-types: ${files} declaration files in ${relative(ROOT, OUT)}`);
}
