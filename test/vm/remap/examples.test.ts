/**
 * The examples users copy must run: each one as its own process in the
 * guest, its output checked against what QEMU was told (the sandbox gives
 * the nvme serial "bunvfio0"; model and firmware are QEMU's).
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { SCRIPT_RUNNER } from "../../script-runner.ts";

const ROOT = join(import.meta.dirname!, "../../..");

function run(script: string): { code: number; out: string } {
  const p = Bun.spawnSync([...SCRIPT_RUNNER, join(ROOT, "examples", script)], { cwd: ROOT, stderr: "pipe", stdout: "pipe" });
  return { code: p.exitCode ?? -1, out: p.stdout.toString() + p.stderr.toString() };
}

test("nvme-identify prints the controller's identity", () => {
  const { code, out } = run("nvme-identify.ts");
  expect(out).toContain("NVMe 1.4.0");
  expect(out).toMatch(/model\s+QEMU NVMe Ctrl/);
  expect(out).toMatch(/serial\s+bunvfio0/);
  expect(out).toMatch(/vendor\s+1b36/);
  expect(out).toContain("completion interrupt on MSI-X vector 0 (1)");
  expect(code).toBe(0);
});

test("nvme-identify from the installed npm package prints the controller's identity", () => {
  const project = process.env.BUN_VFIO_NPM_CONSUMER;
  if (!project) throw new Error("BUN_VFIO_NPM_CONSUMER is unset: run through bun test/run.ts, which packs and installs the package before booting (its output says why packing failed)");
  const p = Bun.spawnSync([...SCRIPT_RUNNER, join(project, "nvme-identify.ts")], { cwd: project, stderr: "pipe", stdout: "pipe" });
  const out = p.stdout.toString() + p.stderr.toString();
  expect(out).toContain("NVMe 1.4.0");
  expect(out).toMatch(/serial\s+bunvfio0/);
  expect(out).toContain("completion interrupt on MSI-X vector 0 (1)");
  expect(p.exitCode).toBe(0);
});

test("edu-dma round-trips a pattern through the device", () => {
  const { code, out } = run("edu-dma.ts");
  expect(out).toContain("unchanged");
  expect(code).toBe(0);
});

test("edu-interrupts receives three MSIs with the raised status bits, then a software trigger", () => {
  const { code, out } = run("edu-interrupts.ts");
  expect(out).toContain("status 0x1");
  expect(out).toContain("status 0x2");
  expect(out).toContain("status 0x4");
  expect(out).toContain("software trigger: 1");
  expect(out).toContain("nothing pending now: 0");
  expect(code).toBe(0);
});
