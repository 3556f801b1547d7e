/**
 * The layering rule, checked on the source: one folder a layer, imports
 * point down only, no import cycles between files, and nothing outside
 * src/sys touches the runtime (bun:ffi, Deno, Bun globals).
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const SRC = resolve(import.meta.dir, "../../src");

/** Bottom first: a layer may import its own folder and any layer before it. */
const LAYERS = ["support", "sys", "uapi", "pci", "mmap-plan", "host", "irq", "device", "iommu", "api", "cli"] as const;

function layerOf(file: string): string {
  const rel = relative(SRC, file);
  const top = rel.split("/")[0]!;
  if (!rel.includes("/")) return "api"; // src/index.ts and friends: the public API
  return top;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith(".ts") ? [path] : [];
  });
}

/** Static imports and re-exports (type-only ones included: a cycle of types is still a tangle). */
function importsOf(file: string): { spec: string; target: string | undefined }[] {
  const text = readFileSync(file, "utf8");
  const found: { spec: string; target: string | undefined }[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s+"([^"]+)"/gms)) {
    const spec = m[1]!;
    found.push({ spec, target: spec.startsWith(".") ? resolve(dirname(file), spec) : undefined });
  }
  return found;
}

const files = sourceFiles(SRC);
const graph = new Map(files.map((f) => [f, importsOf(f)]));

describe("layers", () => {
  test("the parser sees the imports (a known downward edge is there)", () => {
    const edges = graph.get(join(SRC, "device/pci-device.ts"))!.map((i) => i.target && relative(SRC, i.target));
    expect(edges).toContain("irq/interrupts.ts");
    expect(edges).toContain("sys/memory.ts");
  });

  test("every source file is in a known layer", () => {
    const unknown = files.map(layerOf).filter((l) => !(LAYERS as readonly string[]).includes(l));
    expect(unknown).toEqual([]);
  });

  test("imports point down only", () => {
    const upward: string[] = [];
    for (const [file, imports] of graph) {
      const from = LAYERS.indexOf(layerOf(file) as (typeof LAYERS)[number]);
      for (const { target } of imports) {
        if (!target || !target.startsWith(SRC)) continue;
        const to = LAYERS.indexOf(layerOf(target) as (typeof LAYERS)[number]);
        if (to > from) upward.push(`${relative(SRC, file)} -> ${relative(SRC, target)}`);
      }
    }
    expect(upward).toEqual([]);
  });

  test("no import cycles between files", () => {
    const cycles: string[] = [];
    const state = new Map<string, "open" | "done">();
    const stack: string[] = [];
    const visit = (file: string) => {
      state.set(file, "open");
      stack.push(file);
      for (const { target } of graph.get(file) ?? []) {
        if (!target || !graph.has(target)) continue;
        if (state.get(target) === "open") cycles.push([...stack.slice(stack.indexOf(target)), target].map((f) => relative(SRC, f)).join(" -> "));
        else if (!state.has(target)) visit(target);
      }
      stack.pop();
      state.set(file, "done");
    };
    for (const f of files) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });

  test("only src/sys touches the runtime (bun:ffi, Bun and Deno globals)", () => {
    const leaks: string[] = [];
    for (const file of files) {
      const layer = layerOf(file);
      if (layer === "sys" || layer === "cli") continue; // the CLI is an application, not the library
      const code = readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
      if (/from\s+"bun:|\bBun\.|\bDeno\./.test(code)) leaks.push(relative(SRC, file));
    }
    expect(leaks).toEqual([]);
  });

  test("the library core never imports the sandbox or the CLI", () => {
    const bad: string[] = [];
    for (const [file, imports] of graph) {
      if (layerOf(file) === "cli") continue;
      for (const { spec } of imports) if (/sandbox|\/cli\//.test(spec)) bad.push(`${relative(SRC, file)} -> ${spec}`);
    }
    expect(bad).toEqual([]);
  });
});
