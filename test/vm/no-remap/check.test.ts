/**
 * `bun-vfio check` in the no-remap profile: intel-iommu with intremap=off
 * and allow_unsafe_interrupts=0, so type1 refuses groups: not ready, and the
 * isolation finding says why and how to fix it.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { cli, cliJson } from "../cli-run.ts";

test("not ready: no MSI isolation, with the fix", { timeout: 180_000 }, () => {
  expect(readFileSync("/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "utf8").trim()).toBe("N");
  const { code, doc } = cliJson("check");
  expect(code).toBe(1);
  expect(doc.ready).toBe(false);
  const iso = doc.findings.find((f: any) => f.id === "isolation");
  expect(iso.status).toBe("fail");
  expect(iso.evidence.join("\n")).toContain("no IR- or ITS chips");
  expect(iso.fix).toContain("allow_unsafe_interrupts=1");
  expect(iso.fix).toContain("intremap=on");
  const text = cli("check");
  expect(text.code).toBe(1);
  expect(text.out).toContain("[FAIL] isolation");
});
