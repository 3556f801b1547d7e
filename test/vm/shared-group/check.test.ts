/**
 * `bun-vfio check <edu>` in the shared-group profile: the edu shares its
 * group with a virtio-rng on virtio-pci: not viable, naming the blocker.
 */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { cli, cliJson } from "../cli-run.ts";
import { driverOf, find, groupOf, IDS } from "../ground-truth.ts";

const edu = find(IDS.edu);
const rng = find("1af4:1005");

test("the edu is not ready: group not viable, the virtio-rng named with its driver and the fix", { timeout: 180_000 }, () => {
  if (driverOf(rng) === undefined) writeFileSync("/sys/bus/pci/drivers/virtio-pci/bind", rng);
  expect(driverOf(rng)).toBe("virtio-pci");
  expect(groupOf(rng)).toBe(groupOf(edu));
  const { code, doc } = cliJson("check", edu);
  expect(code).toBe(1);
  const group = doc.findings.find((f: any) => f.id === "group");
  expect(group.status).toBe("fail");
  expect(group.summary).toContain(`${rng} is bound to virtio-pci`);
  expect(group.fix).toContain(`bun-vfio bind ${rng}`);
  expect(group.evidence[0]).toContain(`${edu} vfio-pci`);
  const text = cli("check", edu);
  expect(text.code).toBe(1);
  expect(text.out).toContain("[FAIL] group");
});

test("list marks the group blocked", () => {
  const row = cli("list").out.split("\n").find((l) => l.startsWith(edu))!;
  expect(row).toContain(`${groupOf(edu)} blocked`);
});
