/**
 * A scratch project holding the package as a user installs it: `npm pack`
 * of this checkout (prepack builds dist/types and dist/js), then `npm install
 * --offline <tarball>` into `<work>/consumer`, which also carries a deno.json
 * (`nodeModulesDir: "manual"`: Deno uses that node_modules as npm left it;
 * no lock file, so a read-only guest can run it; its own compilerOptions, so
 * Deno ignores a tsconfig.json a test adds for tsc). Used by the package tests
 * on the host and by test/run.ts for the guests (the same project, at a path
 * the guest sees; examples/nvme-identify.ts copied to its root, as a user
 * would, runs there in test/vm/remap/examples.test.ts).
 */
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "../..");

function run(argv: string[], cwd: string): { code: number; out: string } {
  const p = Bun.spawnSync(argv, { cwd, stdout: "pipe", stderr: "pipe", env: { ...process.env, npm_config_loglevel: "error" } });
  return { code: p.exitCode ?? -1, out: p.stdout.toString() + p.stderr.toString() };
}

/** Packs this checkout into `work` and installs the tarball into `work/consumer`; returns that project's path. */
export function packConsumer(work: string): string {
  const npm = Bun.which("npm");
  if (!npm) throw new Error("npm is needed to pack the package");
  const packed = run([npm, "pack", "--pack-destination", work], ROOT);
  if (packed.code !== 0) throw new Error(`npm pack failed:\n${packed.out}`);
  const tarball = readdirSync(work).find((f) => f.endsWith(".tgz"));
  if (!tarball) throw new Error(`npm pack left no tarball in ${work}:\n${packed.out}`);
  const project = join(work, "consumer");
  mkdirSync(project, { recursive: true });
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  writeFileSync(join(project, "deno.json"), JSON.stringify({ nodeModulesDir: "manual", lock: false, compilerOptions: { lib: ["deno.window"], strict: true } }));
  const installed = run([npm, "install", "--offline", "--no-audit", "--no-fund", "--no-save", join(work, tarball)], project);
  if (installed.code !== 0) throw new Error(`npm install of the tarball failed:\n${installed.out}`);
  // What a user does with an example: copy it out of the package (Deno runs no TypeScript under node_modules).
  copyFileSync(join(project, "node_modules", "bun-vfio", "examples", "nvme-identify.ts"), join(project, "nvme-identify.ts"));
  return project;
}
