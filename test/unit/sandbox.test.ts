/**
 * The sandbox's pure parts: apt source derivation, the cpio writer, module
 * dependency parsing, shell quoting, the QEMU command line, and the test
 * runner's count parsing. No QEMU, no network.
 */
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { backportsFromDeb822, backportsFromOneLine, deriveBackportsSource, parseDeb822 } from "../../sandbox/apt-sources.ts";
import { buildCpio, S_IFCHR, S_IFDIR, S_IFREG } from "../../sandbox/cpio.ts";
import { commandScript, jobScript } from "../../sandbox/job.ts";
import { bzImageVersion } from "../../sandbox/kernel.ts";
import { kernelHighlights } from "../../sandbox/kernel-log.ts";
import { moduleDepends, normalizeModuleName } from "../../sandbox/modules.ts";
import { getProfile, PROFILES, profileTestDirs } from "../../sandbox/profiles.ts";
import { kernelCmdline, qemuArgs } from "../../sandbox/qemu.ts";
import { shQuote } from "../../sandbox/shell.ts";
import { countsOf, parseJunit } from "../harness/counts.ts";

const MIRROR = "http://mirror.example/debian";

const DEB822 = `Types: deb
# a comment
URIs: ${MIRROR}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR}-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`;

describe("apt source derivation", () => {
  test("deb822: the main archive stanza, with backports suite, same URIs and keyring", () => {
    expect(backportsFromDeb822(parseDeb822(DEB822), "bookworm")).toBe(
      `Types: deb\nURIs: ${MIRROR}\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
    );
  });

  test("deb822: the security stanza alone is not the main archive", () => {
    const security = parseDeb822(DEB822).slice(1);
    expect(backportsFromDeb822(security, "bookworm")).toBeNull();
  });

  test("deb822: a multi-line inline Signed-By key is kept; deb-src and disabled stanzas are skipped", () => {
    const text = `Types: deb-src\nURIs: ${MIRROR}\nSuites: bookworm\n\nTypes: deb\nURIs: ${MIRROR}/off\nSuites: bookworm\nEnabled: no\n\n` +
      `Types: deb\nURIs: ${MIRROR}\nSuites: bookworm\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n`;
    const out = backportsFromDeb822(parseDeb822(text), "bookworm")!;
    expect(out).toContain(`URIs: ${MIRROR}\n`);
    expect(out).toContain("Signed-By: \n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n");
  });

  test("one-line sources.list: options kept, suite replaced", () => {
    const text = `# comment\ndeb-src ${MIRROR} bookworm main\ndeb [signed-by=/k.gpg arch=amd64] ${MIRROR} bookworm main contrib\n`;
    expect(backportsFromOneLine(text, "bookworm")).toBe(`deb [signed-by=/k.gpg arch=amd64] ${MIRROR} bookworm-backports main\n`);
    expect(backportsFromOneLine(`deb ${MIRROR} bookworm-security main\n`, "bookworm")).toBeNull();
  });

  test("the system folder: debian.sources first, then sources.list, then other parts", () => {
    const etc = mkdtempSync(join(tmpdir(), "bun-vfio-apt-"));
    try {
      mkdirSync(join(etc, "sources.list.d"));
      writeFileSync(join(etc, "sources.list.d", "other.sources"), `Types: deb\nURIs: http://thirdparty.example\nSuites: nodistro\n`);
      expect(deriveBackportsSource(etc, "bookworm")).toBeNull();
      writeFileSync(join(etc, "sources.list"), `deb ${MIRROR} bookworm main\n`);
      expect(deriveBackportsSource(etc, "bookworm")).toMatchObject({ fileName: "bun-vfio-backports.list", from: join(etc, "sources.list") });
      writeFileSync(join(etc, "sources.list.d", "debian.sources"), DEB822);
      expect(deriveBackportsSource(etc, "bookworm")).toMatchObject({ fileName: "bun-vfio-backports.sources" });
      // the arm64 guest's suite, from the same main-archive stanza
      const trixie = deriveBackportsSource(etc, "bookworm", "trixie")!;
      expect(trixie.fileName).toBe("bun-vfio-trixie.sources");
      expect(trixie.text).toContain("Suites: trixie\n");
    } finally {
      rmSync(etc, { recursive: true, force: true });
    }
  });
});

describe("newc cpio writer", () => {
  const archive = buildCpio([
    { path: "dev", mode: S_IFDIR | 0o755 },
    { path: "dev/console", mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 },
    { path: "init", mode: S_IFREG | 0o755, data: "#!/bin/sh\n" },
  ]);
  const text = new TextDecoder("latin1").decode(archive);

  test("records start with 070701 on 4-byte boundaries and end with the trailer", () => {
    const records: { name: string; mode: number; size: number; major: number; minor: number }[] = [];
    let off = 0;
    while (off < archive.length) {
      expect(off % 4).toBe(0);
      expect(text.slice(off, off + 6)).toBe("070701");
      const field = (i: number): number => parseInt(text.slice(off + 6 + i * 8, off + 14 + i * 8), 16);
      const nameSize = field(11);
      const size = field(6);
      const name = text.slice(off + 110, off + 110 + nameSize - 1);
      records.push({ name, mode: field(1), size, major: field(9), minor: field(10) });
      off += 110 + nameSize;
      off += (4 - (off % 4)) % 4;
      off += size;
      off += (4 - (off % 4)) % 4;
      if (name === "TRAILER!!!") break;
    }
    expect(off).toBe(archive.length);
    expect(records.map((r) => r.name)).toEqual(["dev", "dev/console", "init", "TRAILER!!!"]);
    expect(records[1]).toMatchObject({ mode: S_IFCHR | 0o600, major: 5, minor: 1 });
    expect(records[2]).toMatchObject({ mode: S_IFREG | 0o755, size: 10 });
    expect(text).toContain("#!/bin/sh\n");
  });
});

describe("kernel modules and images", () => {
  test("depends= is read from .modinfo, names normalized", () => {
    const ko = new TextEncoder().encode("\x7fELF....\0license=GPL\0depends=vfio,vfio-pci-core,irqbypass\0name=vfio_pci\0");
    expect(moduleDepends(ko)).toEqual(["vfio", "vfio_pci_core", "irqbypass"]);
    expect(moduleDepends(new TextEncoder().encode("\0depends=\0name=netfs\0"))).toEqual([]);
    expect(moduleDepends(new TextEncoder().encode("no modinfo"))).toEqual([]);
    expect(normalizeModuleName("vfio-pci")).toBe("vfio_pci");
  });

  test("bzImageVersion: null for anything that is not a bzImage", () => {
    expect(bzImageVersion(process.execPath)).toBeNull();
    expect(bzImageVersion("/nonexistent")).toBeNull();
  });
});

test("kernelHighlights keeps VFIO/IOMMU warnings and faults, drops boot chatter", () => {
  const dir = mkdtempSync(join(tmpdir(), "bun-vfio-klog-"));
  try {
    const log = join(dir, "k.log");
    writeFileSync(log, [
      "<6>[    1.0] DMAR: IOMMU enabled",
      "<6>[    1.1] pci 0000:00:03.0: Adding to iommu group 3",
      '<4>[    4.0] vfio_iommu_type1_attach_group: No interrupt remapping support.  Use the module param "allow_unsafe_interrupts"',
      "<3>[    5.0] DMAR: [DMA Read NO_PASID] Request device [00:05.0] fault addr 0x1000 [fault reason 0x06] PTE Read access is not set",
      "<4>[    6.0] some unrelated warning",
    ].join("\n"));
    expect(kernelHighlights(log)).toEqual([
      '[    4.0] vfio_iommu_type1_attach_group: No interrupt remapping support.  Use the module param "allow_unsafe_interrupts"',
      "[    5.0] DMAR: [DMA Read NO_PASID] Request device [00:05.0] fault addr 0x1000 [fault reason 0x06] PTE Read access is not set",
    ]);
    expect(kernelHighlights(join(dir, "missing"))).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("guest command and QEMU line", () => {
  test("shQuote survives sh", () => {
    const words = ["plain", "with space", "it's", "$HOME", "a\"b", "", "-t=x|y"];
    const r = Bun.spawnSync(["sh", "-c", `printf '%s\\n' ${words.map(shQuote).join(" ")}`]);
    expect(r.stdout.toString()).toBe(words.map((w) => `${w}\n`).join(""));
  });

  test("job.sh lists only the devices to bind; cmd.sh cds, exports and execs the host's bun", () => {
    const p = getProfile("shared-group");
    expect(jobScript(p, "/work/x y")).toContain("BIND=1234:11e8\nWORKDIR='/work/x y'\n");
    const cmd = commandScript({ profile: p, command: ["bun", "test", "-t", "it's"], cwd: "/work/p", env: { FOO: "1 2" } });
    expect(cmd.startsWith("cd /work/p || exit 126\n")).toBe(true);
    expect(cmd).toContain("export BUN_VFIO_PROFILE=shared-group\n");
    expect(cmd).toContain("export BUN_VFIO_SANDBOX=1\n");
    expect(cmd).toContain("export HOME=/tmp\n");
    expect(cmd).toContain("export FOO='1 2'\n");
    expect(cmd).toContain(`exec ${shQuote(process.execPath)} test -t 'it'\\''s'\n`);
  });

  test("intel-iommu comes before every other device; intremap follows the profile; {tmp} is filled in", () => {
    for (const p of Object.values(PROFILES).filter((p) => !p.arm64 && p.iommu !== "none")) {
      const argv = qemuArgs(p, { qemu: "qemu", vmlinuz: "/k", initramfs: "/i", shareDir: "/s", tmpDir: "/t", verbose: false });
      const devices = argv.flatMap((a, i) => (argv[i - 1] === "-device" || argv[i - 1] === "-virtfs" ? [a] : []));
      expect(devices[0]).toBe(`intel-iommu,intremap=${p.intremap ? "on" : "off"},caching-mode=on`);
      expect(argv.join(" ")).not.toContain("{tmp}");
      expect(argv).toContain("-no-reboot");
    }
    expect(qemuArgs(getProfile("remap"), { qemu: "q", vmlinuz: "/k", initramfs: "/i", shareDir: "/s", tmpDir: "/t", verbose: false }))
      .toContain("if=none,id=nvm0,format=raw,file=/t/nvme0.img");
    expect(kernelCmdline(getProfile("no-remap"), false)).toContain("vfio_iommu_type1.allow_unsafe_interrupts=0");
  });

  test("noiommu: no intel-iommu device, no intel_iommu=on; no-IOMMU mode, huge pages and the backend on the guest's side", () => {
    const p = getProfile("noiommu");
    const argv = qemuArgs(p, { qemu: "q", vmlinuz: "/k", initramfs: "/i", shareDir: "/s", tmpDir: "/t", verbose: false });
    expect(argv.join(" ")).not.toContain("intel-iommu");
    const cmdline = kernelCmdline(p, false).split(" ");
    expect(cmdline).not.toContain("intel_iommu=on");
    expect(cmdline).toContain("vfio.enable_unsafe_noiommu_mode=1");
    expect(cmdline).toContain("hugepages=16");
    expect(commandScript({ profile: p, command: ["true"], cwd: "/w" })).toContain("export BUN_VFIO_BACKEND=noiommu\n");
    expect(commandScript({ profile: getProfile("iommufd"), command: ["true"], cwd: "/w", env: { X: "1" } })).toContain("export BUN_VFIO_BACKEND=iommufd\n");
    expect(commandScript({ profile: getProfile("remap"), command: ["true"], cwd: "/w" })).toContain("export BUN_VFIO_BACKEND=type1\n");
  });

  test("arm64 profiles: virt with an SMMUv3, the GIC the profile names, ttyAMA0, no intel-iommu", () => {
    const args = (name: string) => qemuArgs(getProfile(name), { qemu: "q", vmlinuz: "/k", initramfs: "/i", shareDir: "/s", tmpDir: "/t", verbose: false });
    expect(args("arm64-16k")).toContain("virt,gic-version=3,iommu=smmuv3");
    expect(args("arm64-16k-gicv2m")).toContain("virt,gic-version=2,iommu=smmuv3");
    expect(args("arm64")).toContain("max,pauth-impdef=on");
    expect(args("arm64").join(" ")).not.toContain("intel-iommu");
    expect(kernelCmdline(getProfile("arm64"), false)).toStartWith("console=ttyAMA0 panic=-1");
    expect(kernelCmdline(getProfile("arm64-16k-gicv2m"), false)).toContain("vfio_iommu_type1.allow_unsafe_interrupts=1");
  });

  test("profile test folders: common, then the profile's own", () => {
    expect(profileTestDirs(getProfile("remap"))).toEqual(["test/vm/common", "test/vm/remap"]);
    expect(() => getProfile("nope")).toThrow(/known: remap/);
  });
});

describe("test/run.ts counting", () => {
  const junit = (tests: number, failures: number, skipped: number): string =>
    `<?xml version="1.0"?>\n<testsuites name="bun test" tests="${tests}" assertions="9" failures="${failures}" skipped="${skipped}" time="0.1">\n</testsuites>`;

  test("JUnit totals", () => {
    expect(parseJunit(junit(10, 2, 1))).toEqual({ tests: 10, failures: 2, errors: 0, skipped: 1 });
    expect(parseJunit("garbage")).toBeNull();
    expect(countsOf(junit(10, 2, 1), "", 1)).toEqual({ counts: { passed: 7, failed: 2, skipped: 1 } });
  });

  test("tests a name filter left out are not counted as skipped", () => {
    expect(countsOf(junit(145, 0, 140), " 5 pass\n 140 filtered out\n 0 fail\n", 0).counts).toEqual({ passed: 5, failed: 0, skipped: 0 });
  });

  test("console summary when there is no report", () => {
    expect(countsOf(null, "\x1b[32m 3 pass\x1b[0m\n 1 skip\n 1 fail\n", 1).counts).toEqual({ passed: 3, failed: 1, skipped: 1 });
  });

  test("a failure outside tests, or no result at all, is a failure; a filter matching nothing is not", () => {
    expect(countsOf(junit(3, 0, 0), " 3 pass\n 0 fail\n 1 error\n", 1)).toMatchObject({ counts: { passed: 3, failed: 1 } });
    expect(countsOf(null, "Segmentation fault", 139)).toMatchObject({ counts: { passed: 0, failed: 1 } });
    expect(countsOf(null, 'error: regex "x" matched 0 tests.', 1)).toMatchObject({ counts: { passed: 0, failed: 0 } });
    expect(countsOf(junit(203, 0, 203), 'error: regex "x" matched 0 tests.', 1)).toMatchObject({ counts: { passed: 0, failed: 0, skipped: 0 } });
  });
});
