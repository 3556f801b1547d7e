/**
 * `bun-vfio release` and `bind` on real vfio-pci: release names the process
 * holding the device and gives up after --timeout without touching it
 * (instead of blocking in the kernel's "blocked until released by user");
 * bind --dry-run changes nothing; several devices at once. Ground truth:
 * the sysfs driver links.
 */
import { afterAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cli, cliJson } from "../cli-run.ts";
import { driverOf, find, groupOf, IDS } from "../ground-truth.ts";

const edu = find(IDS.edu);
const nvme = find(IDS.nvme);
const override = (bdf: string) => readFileSync(`/sys/bus/pci/devices/${bdf}/driver_override`, "utf8").trim();

afterAll(() => {
  // Leave the edu on vfio-pci for the other suites, whatever happened above.
  if (driverOf(edu) !== "vfio-pci") {
    writeFileSync(`/sys/bus/pci/devices/${edu}/driver_override`, "vfio-pci");
    writeFileSync("/sys/bus/pci/drivers_probe", edu);
  }
});

test("release waits for the holder, names its PID, and fails after --timeout leaving the device bound", { timeout: 180_000 }, async () => {
  const holder = Bun.spawn(["bun", join(import.meta.dir, "hold-group.ts"), edu], { stdout: "pipe", stderr: "inherit" });
  try {
    const reader = holder.stdout.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("holding");
    const dry = cliJson("release", edu, "--dry-run");
    expect(dry.code).toBe(0);
    expect(dry.doc.devices[0].holders).toEqual([{ pid: holder.pid, comm: "bun" }]);
    const r = cli("release", edu, "--timeout", "2");
    expect(r.code).toBe(1);
    expect(r.err).toContain(`waiting for PID ${holder.pid} (bun) to close /dev/vfio/${groupOf(edu)}`);
    expect(r.err).toContain(`still held after 2 s by PID ${holder.pid} (bun)`);
    expect(driverOf(edu)).toBe("vfio-pci");
  } finally {
    holder.kill();
    await holder.exited;
  }
  const ok = cli("release", edu);
  expect(ok.err).toBe("");
  expect(ok.code).toBe(0);
  expect(driverOf(edu)).toBeUndefined();
  expect(override(edu)).toBe("(null)");
  expect(ok.out.trim()).toBe(`${edu} released; now bound to no driver`);
});

test("bind --dry-run lists the writes and changes nothing; then several devices at once", { timeout: 180_000 }, () => {
  expect(driverOf(edu)).toBeUndefined();
  const dry = cli("bind", edu, nvme, "--dry-run");
  expect(dry.code).toBe(0);
  expect(dry.out).toContain(`vfio-pci > /sys/bus/pci/devices/${edu}/driver_override`);
  expect(dry.out).toContain(`${nvme}: already bound to vfio-pci`);
  expect(driverOf(edu)).toBeUndefined();
  expect(override(edu)).toBe("(null)");
  const { code, doc } = cliJson("bind", edu, nvme);
  expect(code).toBe(0);
  expect(doc.devices.map((d: any) => [d.bdf, d.alreadyBound])).toEqual([[edu, false], [nvme, true]]);
  expect(driverOf(edu)).toBe("vfio-pci");
  expect(driverOf(nvme)).toBe("vfio-pci");
});
