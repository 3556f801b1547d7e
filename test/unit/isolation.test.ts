import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { VfioError } from "../../src/support/errors.ts";
import { detectIsolation, deviceTreeMsiControllers, dmarInterruptRemapCapable, parseInterruptChips } from "../../src/host/isolation.ts";
import { msiIsolationAdvice } from "../../src/host/isolation-advice.ts";

const FIXTURES = join(import.meta.dir, "fixtures/isolation");
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8");
const REMAP = fixture("interrupts-remap.txt");
const NOREMAP = fixture("interrupts-noremap-captured.txt");
const ARM64 = fixture("interrupts-its-arm64.txt");
/** Captured in the arm64-16k-gicv2m sandbox guest (QEMU virt gic-version=2, Debian 6.12). */
const GICV2M = fixture("interrupts-gicv2m-arm64-captured.txt");
const ALLOW_UNSAFE = "sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts";

/** Fake trees made by a test, removed after it. */
const trees: string[] = [];
afterEach(() => {
  for (const t of trees.splice(0)) rmSync(t, { recursive: true, force: true });
});

/** A fake `/` holding `files` (relative path → contents); a value of null makes an empty directory. */
function fakeRoot(files: Record<string, string | null>): string {
  const root = mkdtempSync(join(tmpdir(), "bun-vfio-isolation-"));
  trees.push(root);
  for (const [path, text] of Object.entries(files)) {
    const full = join(root, path);
    if (text === null) {
      mkdirSync(full, { recursive: true });
    } else {
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, text);
    }
  }
  return root;
}

describe("parseInterruptChips", () => {
  test("x86 with intel-iommu intremap=on: IR- chips are remapped, DMAR-MSI is not", () => {
    const chips = parseInterruptChips(REMAP);
    expect(chips.remapped).toEqual([
      "IR-IO-APIC",
      "IR-PCI-MSIX-0000:00:02.0",
      "IR-PCI-MSIX-0000:00:03.0",
      "IR-PCI-MSI-0000:00:1f.2",
      "IR-PCI-MSIX-0000:00:04.0",
    ]);
    expect(chips.msiDomains).toEqual([]);
    expect(chips.other).toEqual(["DMAR-MSI"]);
  });

  test("captured x86 without remapping: chip name right after the counts, one space apart", () => {
    const chips = parseInterruptChips(NOREMAP);
    expect(chips.remapped).toEqual([]);
    expect(chips.msiDomains).toEqual([]);
    expect(chips.other).toContain("IO-APIC");
    expect(chips.other).toContain("PCI-MSIX-0000:00:01.0");
    expect(chips.other).toContain("PCI-MSIX-0000:00:05.0");
    // NMI, LOC, ERR, ... are summary lines, not chips.
    expect(chips.other.some((c) => /interrupts|^\d+$/i.test(c))).toBe(false);
  });

  test("arm64 GICv3 ITS: ITS-MSI and ITS-pMSI are isolating MSI domains, GICv3 is not", () => {
    const chips = parseInterruptChips(ARM64);
    expect(chips.remapped).toEqual([]);
    expect(chips.msiDomains).toEqual(["ITS-MSI", "ITS-pMSI"]);
    expect(chips.other).toEqual(["GICv3"]);
  });

  test("per-device ITS domains and GICv3-ITS count as MSI domains", () => {
    const text = [
      "           CPU0",
      " 50:          3  ITS-PCI-MSIX-0000:01:00.0    0 Edge      nvme0q0",
      " 51:          0  GICv3-ITS  8 Edge      foo",
      " 52:          0  ITSY-thing  1 Edge      bar",
    ].join("\n");
    expect(parseInterruptChips(text)).toEqual({
      remapped: [],
      msiDomains: ["ITS-PCI-MSIX-0000:01:00.0", "GICv3-ITS"],
      other: ["ITSY-thing"],
    });
  });

  test("empty input and header-only input give no chips", () => {
    const none = { remapped: [], msiDomains: [], other: [] };
    expect(parseInterruptChips("")).toEqual(none);
    expect(parseInterruptChips("           CPU0       CPU1\nERR:          0\n")).toEqual(none);
  });
});

describe("dmarInterruptRemapCapable", () => {
  const cases: [string, boolean][] = [
    ["f00f5a\n", true], // QEMU-shaped, intremap=on
    ["f00f42", false], // QEMU-shaped, intremap=off
    ["0x8", true],
    ["8", true],
    ["7", false],
    ["1e3ff0505e", true], // low byte 0x5e = 0101_1110: bit 3 set
    ["d2008c40660462", false], // low byte 0x62 = 0110_0010: bit 3 clear
    ["fffffffffffffff7", false], // all bits but 3, beyond 2^53
    ["FFFFFFFFFFFFFFFF", true],
  ];
  for (const [text, want] of cases) {
    test(`${JSON.stringify(text)} → ${want}`, () => expect(dmarInterruptRemapCapable(text)).toBe(want));
  }

  test("text that is not hex throws VfioError EINVAL", () => {
    for (const bad of ["", "zz", "0x", "12 34"]) {
      let error: unknown;
      try {
        dmarInterruptRemapCapable(bad);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(VfioError);
      expect((error as VfioError).code).toBe("EINVAL");
    }
  });
});

describe("detectIsolation", () => {
  const type1v2Attached = { iommuType: "type1v2", attached: true } as const;

  test("attested: group attached to a type1v2 container while allow_unsafe_interrupts = N", () => {
    const root = fakeRoot({ [ALLOW_UNSAFE]: "N\n", "proc/interrupts": NOREMAP, "sys/class/iommu": null });
    const v = detectIsolation({ root, container: type1v2Attached });
    expect(v.level).toBe("attested");
    expect(v.isolated).toBe(true);
    expect(v.evidence).toContain("/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts = N");
    expect(v.evidence[0]).toBe("group attached to a type1v2 container while allow_unsafe_interrupts = N: the kernel checked MSI isolation");
  });

  test("attested beats observed, and every source still leaves its line", () => {
    const root = fakeRoot({ [ALLOW_UNSAFE]: "N\n", "proc/interrupts": REMAP, "sys/class/iommu/dmar0/intel-iommu/ecap": "f00f5a\n" });
    const v = detectIsolation({ root, container: { iommuType: "type1", attached: true } });
    expect(v.level).toBe("attested");
    expect(v.evidence).toEqual([
      "group attached to a type1 container while allow_unsafe_interrupts = N: the kernel checked MSI isolation",
      "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts = N",
      "/proc/interrupts: 5 IR- chips (IR-IO-APIC, IR-PCI-MSIX-0000:00:02.0, IR-PCI-MSIX-0000:00:03.0, ...)",
      "/sys/class/iommu/dmar0/intel-iommu/ecap bit 3 (IR) set: capable, not proof it is enabled",
    ]);
  });

  test("not attested when the group is not attached yet, or allow_unsafe_interrupts is Y or unreadable", () => {
    const withN = fakeRoot({ [ALLOW_UNSAFE]: "N\n", "proc/interrupts": NOREMAP });
    expect(detectIsolation({ root: withN, container: { iommuType: "type1v2", attached: false } }).level).toBe("unknown");
    expect(detectIsolation({ root: withN, container: { iommuType: undefined, attached: true } }).level).toBe("unknown");
    expect(detectIsolation({ root: withN }).level).toBe("unknown");

    const withY = fakeRoot({ [ALLOW_UNSAFE]: "Y\n", "proc/interrupts": NOREMAP });
    const y = detectIsolation({ root: withY, container: type1v2Attached });
    expect(y.level).toBe("none");
    expect(y.evidence[0]).toBe("group attached to a type1v2 container, but allow_unsafe_interrupts is not N: the kernel may have skipped its isolation check");

    const unreadable = fakeRoot({ "proc/interrupts": NOREMAP });
    expect(detectIsolation({ root: unreadable, container: type1v2Attached }).level).toBe("unknown");
  });

  test("observed: IR- chips in /proc/interrupts, no container", () => {
    const root = fakeRoot({ "proc/interrupts": REMAP });
    const v = detectIsolation({ root });
    expect(v.level).toBe("observed");
    expect(v.isolated).toBe(true);
    expect(v.evidence).toContain("/proc/interrupts: 5 IR- chips (IR-IO-APIC, IR-PCI-MSIX-0000:00:02.0, IR-PCI-MSIX-0000:00:03.0, ...)");
  });

  test("observed: arm64 ITS MSI domains", () => {
    const root = fakeRoot({ "proc/interrupts": ARM64, [ALLOW_UNSAFE]: "N\n" });
    const v = detectIsolation({ root });
    expect(v.level).toBe("observed");
    expect(v.evidence).toContain("/proc/interrupts: 2 ITS MSI domains (ITS-MSI, ITS-pMSI)");
  });

  test("observed beats allow_unsafe_interrupts = Y", () => {
    const root = fakeRoot({ "proc/interrupts": REMAP, [ALLOW_UNSAFE]: "Y\n" });
    expect(detectIsolation({ root }).level).toBe("observed");
  });

  test("none: noiommu container, whatever /proc/interrupts shows", () => {
    const root = fakeRoot({ "proc/interrupts": REMAP, [ALLOW_UNSAFE]: "N\n" });
    const v = detectIsolation({ root, container: { iommuType: "noiommu", attached: true } });
    expect(v.level).toBe("none");
    expect(v.isolated).toBe(false);
    expect(v.evidence[0]).toBe("container uses VFIO_NOIOMMU_IOMMU: no DMA or MSI isolation at all: the device can write any physical memory and send any interrupt, and the kernel taints itself (TAINT_USER)");
  });

  test("none: allow_unsafe_interrupts = Y and nothing observed, even with the DMAR IR bit", () => {
    const root = fakeRoot({
      "proc/interrupts": NOREMAP,
      [ALLOW_UNSAFE]: "Y\n",
      "sys/class/iommu/dmar0/intel-iommu/ecap": "f00f5a\n",
    });
    const v = detectIsolation({ root });
    expect(v.level).toBe("none");
    expect(v.evidence).toContain("/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts = Y");
    expect(v.evidence.some((e) => e.startsWith("/proc/interrupts: no IR- or ITS chips; chips seen: IO-APIC, PCI-MSIX-0000:00:01.0"))).toBe(true);
  });

  test("capable: only the DMAR ecap IR bit, on any unit", () => {
    const root = fakeRoot({
      "proc/interrupts": NOREMAP,
      "sys/class/iommu/dmar0/intel-iommu/ecap": "f00f42\n",
      "sys/class/iommu/dmar1/intel-iommu/ecap": "f00f5a\n",
    });
    const v = detectIsolation({ root });
    expect(v.level).toBe("capable");
    expect(v.isolated).toBe(false);
    expect(v.evidence).toContain("/sys/class/iommu/dmar0/intel-iommu/ecap bit 3 (IR) clear: no interrupt remapping");
    expect(v.evidence).toContain("/sys/class/iommu/dmar1/intel-iommu/ecap bit 3 (IR) set: capable, not proof it is enabled");
  });

  test("unknown: an empty tree, every missing source named as not readable", () => {
    const v = detectIsolation({ root: fakeRoot({}) });
    expect(v).toEqual({
      level: "unknown",
      isolated: false,
      evidence: [
        "no VFIO container given: the kernel's isolation check was not observed",
        "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts: not readable (vfio_iommu_type1 not loaded?)",
        "/proc/interrupts: not readable",
        "/sys/class/iommu: not readable",
      ],
    });
  });

  test("unknown: IOMMU class without DMAR units, ecap missing or garbled, odd parameter text", () => {
    const noDmar = fakeRoot({ "sys/class/iommu/ivhd0": null, "proc/interrupts": NOREMAP });
    expect(detectIsolation({ root: noDmar }).evidence).toContain("/sys/class/iommu: no Intel DMAR units");

    const broken = fakeRoot({
      "sys/class/iommu/dmar0/intel-iommu": null,
      "sys/class/iommu/dmar1/intel-iommu/ecap": "garbage\n",
      [ALLOW_UNSAFE]: "maybe\n",
    });
    const v = detectIsolation({ root: broken });
    expect(v.level).toBe("unknown");
    expect(v.evidence).toContain("/sys/class/iommu/dmar0/intel-iommu/ecap: not readable");
    expect(v.evidence).toContain('/sys/class/iommu/dmar1/intel-iommu/ecap: "garbage" is not hex');
    expect(v.evidence).toContain("/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts = maybe (not understood)");
  });

  test("the real host never makes detectIsolation throw", () => {
    const v = detectIsolation();
    expect(["attested", "observed", "capable", "none", "unknown"]).toContain(v.level);
    expect(v.evidence.length).toBeGreaterThanOrEqual(4);
  });
});

// Captures from the guest rig, when a colleague has added them.
describe("captured guest-rig fixtures (test/fixtures/host)", () => {
  const dir = join(import.meta.dir, "../fixtures/host");
  const remap = join(dir, "interrupts-remap.txt");
  const noremap = join(dir, "interrupts-noremap.txt");
  test.skipIf(!existsSync(remap))("interrupts-remap.txt shows IR- chips", () => {
    expect(parseInterruptChips(readFileSync(remap, "utf8")).remapped.length).toBeGreaterThan(0);
  });
  test.skipIf(!existsSync(noremap))("interrupts-noremap.txt shows none", () => {
    const chips = parseInterruptChips(readFileSync(noremap, "utf8"));
    expect(chips.remapped).toEqual([]);
    expect(chips.msiDomains).toEqual([]);
  });
});

describe("arm64 MSI controllers: device tree and GICv2m chips", () => {
  const DT = "sys/firmware/devicetree/base";
  test("device tree: ITS and GICv2m frames found under the GIC node by compatible; none without a device tree", () => {
    const its = fakeRoot({ [`${DT}/intc@8000000/its@8080000/compatible`]: "arm,gic-v3-its\0", [`${DT}/intc@8000000/compatible`]: "arm,gic-v3\0", [`${DT}/model`]: "x" });
    expect(deviceTreeMsiControllers(its)).toEqual({ its: ["intc@8000000/its@8080000"], gicv2m: [] });
    const v2m = fakeRoot({ [`${DT}/intc@8000000/v2m@8020000/compatible`]: "arm,gic-v2m-frame\0" });
    expect(deviceTreeMsiControllers(v2m)).toEqual({ its: [], gicv2m: ["intc@8000000/v2m@8020000"] });
    expect(deviceTreeMsiControllers(fakeRoot({}))).toEqual({ its: [], gicv2m: [] });
  });

  test("captured GICv2m /proc/interrupts: GICv2m-PCI-MSIX chips are neither remapped nor isolating", () => {
    const chips = parseInterruptChips(GICV2M);
    expect(chips.remapped).toEqual([]);
    expect(chips.msiDomains).toEqual([]);
    expect(chips.other).toContain("GICv2m-PCI-MSIX-0000:00:01.0");
  });

  test("GICv2m: none even with allow_unsafe_interrupts = N and nothing attached; evidence names the frame and the chips; no DMAR lines", () => {
    const root = fakeRoot({
      [ALLOW_UNSAFE]: "N\n",
      "proc/interrupts": GICV2M,
      [`${DT}/intc@8000000/v2m@8020000/compatible`]: "arm,gic-v2m-frame\0",
      "sys/class/iommu/smmu3.0x0000000009050000": null,
    });
    const v = detectIsolation({ root });
    expect(v.level).toBe("none");
    expect(v.evidence.join("\n")).toContain("GICv2m MSI frame (arm,gic-v2m-frame at intc@8000000/v2m@8020000): no MSI isolation");
    expect(v.evidence.join("\n")).toContain("GICv2m MSI domains (GICv2m-PCI-MSIX-0000:00:01.0");
    expect(v.evidence.join("\n")).not.toContain("DMAR");
  });

  test("ITS in the device tree alone is observed isolation", () => {
    const root = fakeRoot({ [ALLOW_UNSAFE]: "N\n", "proc/interrupts": "           CPU0\n 11:  5  GICv3  27 Level  arch_timer\n", [`${DT}/intc@8000000/its@8080000/compatible`]: "arm,gic-v3-its\0" });
    const v = detectIsolation({ root });
    expect(v.level).toBe("observed");
    expect(v.evidence.join("\n")).toContain("GICv3 ITS (arm,gic-v3-its at intc@8000000/its@8080000)");
  });

  test("the EPERM hint fits the platform: ITS/GICv2m on arm64, interrupt remapping on x86", () => {
    const nothing = "/nonexistent-root";
    expect(msiIsolationAdvice(nothing, "arm64")).toContain("GICv3 ITS");
    expect(msiIsolationAdvice(nothing, "arm64")).toContain("GICv2m");
    expect(msiIsolationAdvice(nothing, "arm64")).not.toContain("intel_iommu");
    expect(msiIsolationAdvice(nothing, "x64")).toContain("intel_iommu=on");
    for (const a of ["arm64", "x64"]) expect(msiIsolationAdvice("/nonexistent-root", a)).toContain("allow_unsafe_interrupts");
  });
});
