/**
 * The `bun-vfio` command on real vfio-pci: what it prints must match sysfs
 * and what the kernel reports.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { find, groupOf, IDS } from "../ground-truth.ts";

const MAIN = join(import.meta.dir, "../../../src/cli/main.ts");
const nvme = find(IDS.nvme);

function cli(...args: string[]): { code: number; out: string; err: string } {
  const p = Bun.spawnSync(["bun", MAIN, ...args], { stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? -1, out: p.stdout.toString(), err: p.stderr.toString() };
}

test("list shows each device with ids, group and driver", () => {
  const { code, out } = cli("list");
  expect(code).toBe(0);
  const line = out.split("\n").find((l) => l.startsWith(nvme))!;
  expect(line).toContain("1b36:0010");
  expect(line).toContain(`group ${groupOf(nvme)} `);
  expect(line).toContain("vfio-pci");
});

test("info shows device flags, regions with caps, IRQ indexes and plans", () => {
  const { code, out } = cli("info", nvme);
  expect(code).toBe(0);
  expect(out).toContain("device flags RESET|PCI");
  expect(out).toContain("9 regions, 5 IRQ indexes");
  expect(out).toMatch(/0 BAR0\s+size 0x4000\s+READ\|WRITE\|MMAP\s+MSIX_MAPPABLE/);
  expect(out).toMatch(/2 MSI-X\s+count 65/);
  expect(out).toContain("MSI-X");
  expect(out).toContain("rule 2");
});

test("plan follows --policy and --bar", () => {
  const strict = cli("plan", nvme, "--bar", "0", "--policy", "strict");
  expect(strict.code).toBe(0);
  expect(strict.out).toContain("rule 4");
  expect(strict.out).toContain("policy strict");
});

test("bad input: a usage error, not a crash", () => {
  const bad = cli("plan", nvme, "--policy", "sometimes");
  expect(bad.code).toBe(1);
  expect(bad.err).toContain("unknown policy");
  const none = cli("info", "0000:7f:00.0");
  expect(none.code).toBe(1);
  expect(none.err).toContain("ENODEV");
  expect(cli("frobnicate").code).toBe(2);
});
