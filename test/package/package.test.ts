/**
 * The package as a consumer gets it: `npm pack` (prepack emits the .d.ts),
 * the tarball installed into a scratch project that type-checks with strict,
 * exactOptionalPropertyTypes and NodeNext every README code block plus the
 * subpath exports, runs `bunx bun-vfio --version` and `list`, and keeps the
 * sandbox cache outside node_modules. TypeScript and @types/bun come from
 * this checkout's node_modules (no network).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { blockModule, readmeBlocks } from "../readme-blocks.ts";

const ROOT = join(import.meta.dir, "../..");
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
let work = "";
let project = "";

function run(argv: string[], cwd: string): { code: number; out: string } {
  const p = Bun.spawnSync(argv, { cwd, stdout: "pipe", stderr: "pipe", env: { ...process.env, npm_config_loglevel: "error" } });
  return { code: p.exitCode ?? -1, out: p.stdout.toString() + p.stderr.toString() };
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "bun-vfio-pack-"));
  const npm = Bun.which("npm");
  if (!npm) throw new Error("npm is needed to pack the package");
  const packed = run([npm, "pack", "--pack-destination", work], ROOT);
  if (packed.code !== 0) throw new Error(`npm pack failed:\n${packed.out}`);
  const tarball = readdirSync(work).find((f) => f.endsWith(".tgz"))!;
  project = join(work, "consumer");
  mkdirSync(join(project, "node_modules", "@types"), { recursive: true });
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  const installed = run([npm, "install", "--offline", "--no-audit", "--no-fund", "--no-save", join(work, tarball)], project);
  if (installed.code !== 0) throw new Error(`npm install of the tarball failed:\n${installed.out}`);
  // After the install: npm prunes what it did not put there itself.
  mkdirSync(join(project, "node_modules", "@types"), { recursive: true });
  for (const dep of ["typescript", "bun-types", "undici-types", "@types/bun", "@types/node"]) {
    if (existsSync(join(ROOT, "node_modules", dep))) {
      symlinkSync(join(ROOT, "node_modules", dep), join(project, "node_modules", dep));
    }
  }
}, 180_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test("the tarball holds LICENSE, the declarations and no test folder", () => {
  const root = join(project, "node_modules", "bun-vfio");
  const files = readdirSync(root);
  expect(files).toContain("LICENSE");
  expect(files).not.toContain("test");
  expect(readdirSync(join(root, "dist", "types", "src"))).toContain("index.d.ts");
});

test("a strict NodeNext consumer with exactOptionalPropertyTypes type-checks every README block and the subpaths", { timeout: 120_000 }, () => {
  const blocks = readmeBlocks(ROOT);
  expect(blocks.length).toBeGreaterThan(0);
  for (const b of blocks) writeFileSync(join(project, `readme-${b.index}.ts`), blockModule(b));
  writeFileSync(join(project, "subpaths.ts"), [
    'import { VFIO_API_VERSION } from "bun-vfio/uapi";',
    'import { PROFILES, runGuest } from "bun-vfio/sandbox";',
    'import { checkReadiness, type Readiness } from "bun-vfio";',
    "const v: number = VFIO_API_VERSION;",
    "const r: Readiness = checkReadiness();",
    "console.log(v, Object.keys(PROFILES), typeof runGuest, r.ready);",
    "export {};",
  ].join("\n"));
  writeFileSync(join(project, "tsconfig.json"), JSON.stringify({
    compilerOptions: { strict: true, exactOptionalPropertyTypes: true, module: "NodeNext", moduleResolution: "NodeNext", target: "ESNext", lib: ["ESNext"], types: ["bun"], noEmit: true, skipLibCheck: false },
    include: ["*.ts"],
  }));
  const tsc = run([process.execPath, join(project, "node_modules", "typescript", "bin", "tsc"), "-p", project], project);
  expect(tsc.out).toBe("");
  expect(tsc.code).toBe(0);
});

test("bunx bun-vfio --version and list run from the consumer", () => {
  const bunx = join(ROOT, "node_modules", ".bin", "bunx");
  const version = run([bunx, "bun-vfio", "--version"], project);
  expect(version).toEqual({ code: 0, out: `bun-vfio ${pkg.version}\n` });
  const list = run([bunx, "bun-vfio", "list"], project);
  expect(list.code).toBe(0);
  expect(list.out.split("\n")[0]).toMatch(/^ADDRESS\s+DRIVER\s+GROUP\s+DEVICE$/);
});

test("the sandbox cache of an installed package is outside node_modules", () => {
  writeFileSync(join(project, "cache.ts"), 'import { cacheDir } from "bun-vfio/sandbox";\nconsole.log(cacheDir());\n');
  const r = run([process.execPath, "cache.ts"], project);
  expect(r.code).toBe(0);
  expect(r.out).not.toContain("node_modules");
  expect(r.out.trim()).toMatch(/\/bun-vfio$/);
});
