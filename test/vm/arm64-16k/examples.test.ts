/** The NVMe example on 16 KiB pages with the ITS (BAR0 mapped whole). */
import { expect, test } from "bun:test";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "../../..");

test("nvme-identify prints the controller's identity", () => {
  const p = Bun.spawnSync(["bun", join(ROOT, "examples", "nvme-identify.ts")], { cwd: ROOT, stderr: "pipe", stdout: "pipe" });
  const out = p.stdout.toString() + p.stderr.toString();
  expect(out).toContain("NVMe 1.4.0");
  expect(out).toMatch(/serial\s+bunvfio0/);
  expect(out).toContain("completion interrupt on MSI-X vector 0 (1)");
  expect(p.exitCode).toBe(0);
}, 60_000);
