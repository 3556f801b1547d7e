/**
 * The README's runnable code blocks (marked `<!-- run: remap DEVICE -->`)
 * run as written against real vfio-pci, with `bun-vfio` pointing at this
 * checkout and the device's BDF as argv[2].
 */
import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { blockModule, readmeBlocks } from "../../readme-blocks.ts";
import { find, IDS } from "../ground-truth.ts";

const ROOT = join(import.meta.dir, "../../..");
// Blocks are marked for `remap`; every profile that runs the remap suites (arm64 and arm64-16k too) runs them.
const runnable = readmeBlocks(ROOT).filter((b) => b.run?.profile === "remap");
const dir = mkdtempSync(join(tmpdir(), "readme-"));

test("the README marks runnable blocks for this profile", () => {
  expect(runnable.length).toBeGreaterThanOrEqual(3);
});

for (const block of runnable) {
  test(`README block at line ${block.line} runs on the ${block.run!.device}`, () => {
    const bdf = find(IDS[block.run!.device as keyof typeof IDS]);
    const file = join(dir, `block-${block.index}.ts`);
    writeFileSync(file, blockModule(block, join(ROOT, "src/index.ts")));
    const p = Bun.spawnSync(["bun", file, bdf], { stdout: "pipe", stderr: "pipe", timeout: 50_000 });
    expect({ status: p.exitCode, stderr: p.stderr.toString() }).toEqual({ status: 0, stderr: "" });
    // QEMU's NVMe controller reports version 1.4.0 (VS = 0x10400, DESIGN.md facts).
    if (block.run!.device === "nvme") expect(p.stdout.toString().trim()).toBe("NVMe 1.4.0");
  });
}
