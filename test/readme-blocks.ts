/**
 * The README's ```ts code blocks, for the tests that type-check them and
 * run the runnable ones. A block preceded by `<!-- run: PROFILE DEVICE -->` runs in
 * that guest profile with the device BDF as argv[2] (test/vm/remap/readme.test.ts).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** One fenced block. */
export interface ReadmeBlock {
  /** 1-based position among the ts blocks. */
  index: number;
  /** Line of the opening fence. */
  line: number;
  code: string;
  /** From a `<!-- run: PROFILE DEVICE -->` comment right before the fence: the guest profile and the device (ground-truth name) whose BDF is argv[2]. */
  run: { profile: string; device: string } | undefined;
}

/** Extracts every ```ts block of the README at `root`. */
export function readmeBlocks(root: string): ReadmeBlock[] {
  const lines = readFileSync(join(root, "README.md"), "utf8").split("\n");
  const blocks: ReadmeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== "```ts") continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== "```"; i++) body.push(lines[i]!);
    const before = lines.slice(Math.max(0, start - 2), start).join("\n");
    const run = /<!-- run: ([\w-]+) ([\w-]+) -->/.exec(before);
    blocks.push({ index: blocks.length + 1, line: start + 1, code: body.join("\n") + "\n", run: run ? { profile: run[1]!, device: run[2]! } : undefined });
  }
  return blocks;
}

/** A block as a module file: `export {}` makes top-level await and `using` legal in every setting. */
export function blockModule(b: ReadmeBlock, importPath?: string): string {
  const code = importPath ? b.code.replaceAll('from "bun-vfio"', `from ${JSON.stringify(importPath)}`) : b.code;
  return `// README.md line ${b.line}\n${code}\nexport {};\n`;
}
