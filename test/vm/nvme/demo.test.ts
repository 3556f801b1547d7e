/**
 * The example script users run first must work as its own process: it
 * writes 8 blocks at DEMO_LBA, reads them back through both kinds of queue,
 * and the host finds its bytes in the image afterwards (host.ts).
 */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { find, IDS } from "../ground-truth.ts";
import { BLOCKS, DEMO_DONE_MARKER, DEMO_LBA, MDTS_BYTES, SERIAL } from "./cases.ts";

const ROOT = join(import.meta.dir, "../../..");

test("examples/nvme/demo.ts identifies the controller and reads its write back through both queues", () => {
  const bdf = find(IDS.nvme);
  const p = Bun.spawnSync(["bun", join(ROOT, "examples/nvme/demo.ts"), bdf, String(DEMO_LBA)], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  writeFileSync(join(process.env.BUN_VFIO_RESULTS ?? "/tmp", DEMO_DONE_MARKER), "1");
  const out = p.stdout.toString() + p.stderr.toString();
  expect(out).toContain(`QEMU NVMe Ctrl (serial ${SERIAL}`);
  expect(out).toContain(`namespace 1: ${BLOCKS} blocks of 512 bytes`);
  expect(out).toContain(`MDTS ${MDTS_BYTES} bytes`);
  expect(out).toContain(`read back 4096 bytes at LBA ${DEMO_LBA} (interrupt): identical`);
  expect(out).toContain(`read back 4096 bytes at LBA ${DEMO_LBA} (polled): identical`);
  expect(p.exitCode).toBe(0);
});
