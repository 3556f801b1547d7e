/**
 * `bun-vfio check` in the remap profile: intel-iommu with interrupt
 * remapping, every device on vfio-pci alone in its group: ready.
 */
import { isArm64 } from "../platform.ts";
import { expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { cli, cliJson } from "../cli-run.ts";
import { find, groupOf, IDS } from "../ground-truth.ts";

test("the host is ready: IOMMU groups, the platform's isolation (IR- chips, or the ITS on arm64) as evidence, modules, /dev/vfio", () => {
  const { code, doc } = cliJson("check");
  expect(doc.findings.filter((f: any) => f.status === "fail")).toEqual([]);
  expect(code).toBe(0);
  const byId = Object.fromEntries(doc.findings.map((f: any) => [f.id, f]));
  expect(byId.iommu.evidence).toContain(`/sys/kernel/iommu_groups: ${readdirSync("/sys/kernel/iommu_groups").length} groups`);
  expect(byId.isolation.status).toBe("ok");
  expect(byId.isolation.evidence.join("\n")).toContain(isArm64 ? "ITS" : "IR-");
  expect(byId.modules.status).toBe("ok");
  // The backend openVfio() takes, from the same files chooseBackend reads: iommufd on the sandbox's own x86 kernel, type1 on Debian's arm64 ones.
  const iommufd = existsSync("/dev/iommu") && existsSync("/dev/vfio/devices") && readdirSync("/dev/vfio/devices").length > 0;
  expect(byId.backend.summary).toContain(iommufd ? "openVfio() uses iommufd" : "openVfio() uses type1");
  expect(byId.backend.evidence).toContain(`/dev/iommu: ${existsSync("/dev/iommu") ? "present" : "absent"}`);
});

test("the nvme is ready: its group, vfio-pci, nobody holds it; text output says so", { timeout: 180_000 }, () => {
  const nvme = find(IDS.nvme);
  const { code, doc } = cliJson("check", nvme);
  expect(code).toBe(0);
  const group = doc.findings.find((f: any) => f.id === "group");
  expect(group.summary).toContain(`group ${groupOf(nvme)}`);
  const text = cli("check", nvme);
  expect(text.code).toBe(0);
  expect(text.out.split("\n")[0]).toBe(`${nvme} on this host: ready for VFIO`);
});
