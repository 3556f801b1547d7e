/**
 * The generated bad-input campaign (test/harness/bad-inputs.ts) against
 * real vfio-pci: nvme's BAR0 and MSI-X, a DMA buffer, the container's
 * allocator. Every case must be a VfioError with a hint; the counts are
 * printed for the record.
 */
import { expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { Container, DmaBuffer } from "../../../src/index.ts";
import { find, IDS } from "../ground-truth.ts";
import { runCampaign } from "../../harness/bad-inputs.ts";

test("every generated bad input is a VfioError with a hint, on real vfio-pci; nothing leaks", () => {
  const bdf = find(IDS.nvme);
  const fds = readdirSync("/proc/self/fd").length;
  const container = Container.open();
  const group = container.addGroup(bdf);
  const dev = group.openPciDevice(bdf);
  dev.enableMemory();
  const buffer = DmaBuffer.allocate(container, 4096);
  const vectors = dev.msix.enable(1);
  const result = runCampaign({ container, group, dev, bar: dev.bar(0), region: dev.region(0), buffer, allocator: container.iovaAllocator, vector: vectors[0]! });
  console.log(`bad-input campaign on ${bdf}: ${result.cases} cases, ${result.vfioErrors} VfioErrors, ${result.findings.length} other outcomes`);
  expect(dev.bar(0).read32(0x08)).toBe(0x10400); // the device is still fine
  container.close();
  expect(result.findings).toEqual([]);
  expect(result.vfioErrors).toBe(result.cases);
  expect(readdirSync("/proc/self/fd").length).toBe(fds);
});
