/**
 * The package as a consumer gets it: `npm pack` (prepack emits the .d.ts
 * and the JavaScript for Deno), the tarball installed into a scratch project
 * (./consumer.ts) that type-checks with strict, exactOptionalPropertyTypes
 * and NodeNext every README code block plus the subpath exports, runs
 * `bunx bun-vfio --version` and `list`, and keeps the sandbox cache outside
 * node_modules; and on Deno (`nodeModulesDir: "manual"`), `deno check` of
 * the README blocks without Bun globals and `deno run -A` of a script using the package, which
 * must load JavaScript only from node_modules. TypeScript, @types/bun and
 * Deno come from this checkout's node_modules (no network).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { blockModule, readmeBlocks } from "../readme-blocks.ts";
import { packConsumer } from "./consumer.ts";

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
  project = packConsumer(work);
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
  expect(readdirSync(join(root, "dist", "js", "src", "sys"))).toEqual(expect.arrayContaining(["runtime-deno.js", "deno.js", "deno-raw-syscall.js", "deno-poller.js"]));
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

const DENO = join(ROOT, "node_modules", ".bin", "deno");
const DENO_ENV = { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" };

function deno(args: string[]): { code: number; out: string } {
  const p = Bun.spawnSync([DENO, ...args], { cwd: project, stdout: "pipe", stderr: "pipe", env: { ...process.env, ...DENO_ENV } });
  return { code: p.exitCode ?? -1, out: p.stdout.toString() + p.stderr.toString() };
}

const DENO_SCRIPT = `import { Container, parseBdf, useSys, VfioError } from "bun-vfio";
import { VFIO_API_VERSION } from "bun-vfio/uapi";
import { barCount } from "bun-vfio/pci";
const current = useSys(undefined as never);
useSys(current);
console.log(current.name, parseBdf("0000:01:1f.7").device, VFIO_API_VERSION, barCount(0));
for (const path of ["/dev/null", "/nonexistent/bun-vfio/vfio"]) {
  try {
    Container.open({ path });
  } catch (e) {
    if (!(e instanceof VfioError)) throw e;
    console.log(e.op, e.code, e.errno, e.path);
  }
}
`;

test("Deno: deno check of the README blocks that use no Bun global, and of a script, against the installed package", { timeout: 120_000 }, () => {
  const blocks = readmeBlocks(ROOT).filter((b) => !/\bBun\./.test(b.code));
  expect(blocks.length).toBeGreaterThan(3);
  for (const b of blocks) writeFileSync(join(project, `readme-${b.index}.ts`), blockModule(b));
  writeFileSync(join(project, "deno-main.ts"), DENO_SCRIPT);
  const r = deno(["check", "deno-main.ts", ...blocks.map((b) => `readme-${b.index}.ts`)]);
  expect(r.out).not.toContain("error");
  expect(r.code).toBe(0);
});

test("Deno: deno run -A loads the package's JavaScript (its deno conditions) and reports kernel errors as VfioErrors", () => {
  writeFileSync(join(project, "deno-main.ts"), DENO_SCRIPT);
  // Ground truth for the errors: an ioctl on /dev/null is ENOTTY (25); the missing path does not exist (ENOENT, 2).
  expect(existsSync("/nonexistent/bun-vfio/vfio")).toBe(false);
  const r = deno(["run", "-A", "deno-main.ts"]);
  expect(r).toEqual({ code: 0, out: "deno 31 0 6\nVFIO_GET_API_VERSION ENOTTY 25 /dev/null\nopen container ENOENT 2 /nonexistent/bun-vfio/vfio\n" });
  // The same through `npm:` specifiers (what `deno add npm:bun-vfio` writes), resolved from this node_modules.
  writeFileSync(join(project, "deno-npm.ts"), DENO_SCRIPT.replaceAll('from "bun-vfio', 'from "npm:bun-vfio'));
  expect(deno(["run", "-A", "deno-npm.ts"])).toEqual(r);
  // Deno's own module graph: the package resolved to dist/js, never to TypeScript under node_modules.
  const info = deno(["info", "deno-main.ts"]);
  expect(info.code).toBe(0);
  const loaded = info.out.split("\n").map((l) => /file:\/\/(\S+node_modules\/bun-vfio\/\S+)/.exec(l)?.[1]).filter((f): f is string => f !== undefined);
  expect(loaded.length).toBeGreaterThan(0);
  expect(loaded.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([]);
  expect(loaded).toContain(join(project, "node_modules/bun-vfio/dist/js/src/index.js"));
});
