#!/usr/bin/env bun
/**
 * `prepack`: what the npm package ships besides its TypeScript sources.
 *
 *  - dist/types: declaration files for src/ and sandbox/ (tsconfig.build.json),
 *    relative `.ts` specifiers rewritten to `.js` (what NodeNext, bundler and
 *    Deno consumers resolve to the .d.ts next to it);
 *  - dist/js: src/ as JavaScript (tsconfig.build-js.json: types stripped, no
 *    downlevelling, `.ts` specifiers rewritten to `.js`), for Deno, which
 *    refuses TypeScript under node_modules. package.json's `deno` conditions
 *    (exports and `imports["#runtime-sys"]`) point there; Bun keeps loading src/.
 *
 * Then checks that every `types` and `deno` condition in package.json names
 * a file that now exists and mirrors its runtime entry (./src/x.ts ->
 * ./dist/types/src/x.d.ts and ./dist/js/src/x.js).
 *
 * `--clean` (`postpack`) removes dist/ again: in a checkout, tsc resolves
 * the package's own name through `exports` to dist/types when it exists,
 * so a leftover build would type-check the examples against stale
 * declarations.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { join, relative } from "node:path";

const ROOT = join(import.meta.dir, "..");
const TYPES = join(ROOT, "dist", "types");
const JS = join(ROOT, "dist", "js");

/** Where the `types` file of a runtime `.ts` entry lives. */
export function typesPathOf(entry: string): string {
  return entry.replace(/^\.\//, "./dist/types/").replace(/\.ts$/, ".d.ts");
}

/** Where the JavaScript (Deno) file of a runtime `.ts` entry lives. */
export function jsPathOf(entry: string): string {
  return entry.replace(/^\.\//, "./dist/js/").replace(/\.ts$/, ".js");
}

type Conditions = Record<string, string>;

/** The `exports`/`imports` entries whose `types` or `deno` file does not mirror their runtime file, as messages. */
export function exportMismatches(pkg: { exports: Record<string, unknown>; imports?: Record<string, unknown> }): string[] {
  const problems: string[] = [];
  const entries = [...Object.entries(pkg.exports).map(([k, v]) => [`exports["${k}"]`, v] as const), ...Object.entries(pkg.imports ?? {}).map(([k, v]) => [`imports["${k}"]`, v] as const)];
  for (const [key, value] of entries) {
    if (typeof value !== "object" || value === null) continue;
    const v = value as Conditions;
    const runtime = v.bun ?? v.default;
    if (!runtime?.endsWith(".ts")) continue;
    if (key.startsWith("exports") && v.types !== typesPathOf(runtime)) problems.push(`${key}.types is ${v.types}, expected ${typesPathOf(runtime)}`);
    if (v.deno !== undefined && key.startsWith("exports") && v.deno !== jsPathOf(runtime)) problems.push(`${key}.deno is ${v.deno}, expected ${jsPathOf(runtime)}`);
  }
  return problems;
}

/** Condition targets that the build should have produced but did not. */
function missingTargets(pkg: { exports: Record<string, unknown>; imports?: Record<string, unknown> }): string[] {
  const problems: string[] = [];
  for (const [where, map] of [["exports", pkg.exports], ["imports", pkg.imports ?? {}]] as const) {
    for (const [key, value] of Object.entries(map)) {
      if (typeof value !== "object" || value === null) continue;
      for (const condition of ["types", "deno"]) {
        const target = (value as Conditions)[condition];
        if (target && !existsSync(join(ROOT, target))) problems.push(`${where}["${key}"].${condition}: ${target} was not emitted`);
      }
    }
  }
  return problems;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

function tsc(project: string): void {
  const compiler = join(ROOT, "node_modules", "typescript", "bin", "tsc");
  const p = Bun.spawnSync([process.execPath, compiler, "-p", join(ROOT, project)], { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
  if (p.exitCode !== 0) throw new Error(`tsc -p ${project} failed with status ${p.exitCode}`);
}

if (import.meta.main && process.argv.includes("--clean")) {
  rmSync(join(ROOT, "dist"), { recursive: true, force: true });
} else if (import.meta.main) {
  rmSync(TYPES, { recursive: true, force: true });
  rmSync(JS, { recursive: true, force: true });
  tsc("tsconfig.build.json");
  let declarations = 0;
  for (const file of walk(TYPES).filter((f) => f.endsWith(".d.ts"))) {
    const text = readFileSync(file, "utf8");
    writeFileSync(file, text.replace(/((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']+)\.ts(["'])/g, "$1$2.js$3"));
    declarations++;
  }
  tsc("tsconfig.build-js.json");
  const scripts = walk(JS).filter((f) => f.endsWith(".js"));
  const leftover = scripts.filter((f) => /(?:from|import)\s*\(?\s*["']\.{1,2}\/[^"']+\.ts["']/.test(readFileSync(f, "utf8")));
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  const problems = [...exportMismatches(pkg), ...missingTargets(pkg), ...leftover.map((f) => `${relative(ROOT, f)} still imports a .ts file`)];
  if (problems.length) throw new Error(`package.json conditions do not match the build:\n  ${problems.join("\n  ")}`);
  console.log(`build-dist: ${declarations} declaration files in ${relative(ROOT, TYPES)}, ${scripts.length} JavaScript files in ${relative(ROOT, JS)}`);
}
