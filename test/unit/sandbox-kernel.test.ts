/**
 * The sandbox's kernel build, the pure parts: the fragment check after
 * olddefconfig, the source version choice, the cache key.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kernelFromEnv } from "../../sandbox/kernel.ts";
import { buildKey } from "../../sandbox/kernel-build.ts";
import { describeDropped, droppedOptions, FRAGMENT_PATH, parseKconfig } from "../../sandbox/kernel-config.ts";
import { chooseSourceVersion, madisonVersions, PINNED_SOURCE_VERSION, SOURCE_PACKAGE, versionDirName } from "../../sandbox/kernel-source.ts";

describe("kernel configuration fragment", () => {
  test("parseKconfig: values, 'is not set' as n, comments ignored, the last line wins", () => {
    const m = parseKconfig("# a comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\nCONFIG_A=n\n  \n");
    expect([...m]).toEqual([["CONFIG_A", "n"], ["CONFIG_B", "n"], ["CONFIG_C", "\"x y\""]]);
  });

  test("droppedOptions names every option olddefconfig did not keep, absent ones as n", () => {
    const fragment = "CONFIG_IOMMUFD=y\nCONFIG_VFIO_NOIOMMU=y\n# CONFIG_E1000E is not set\nCONFIG_NR_CPUS=8\n";
    const dotConfig = "CONFIG_IOMMUFD=y\n# CONFIG_VFIO_NOIOMMU is not set\nCONFIG_E1000E=y\nCONFIG_NR_CPUS=8\n";
    const dropped = droppedOptions(fragment, dotConfig);
    expect(dropped).toEqual([
      { option: "CONFIG_VFIO_NOIOMMU", wanted: "y", got: "n" },
      { option: "CONFIG_E1000E", wanted: "n", got: "y" },
    ]);
    expect(describeDropped(dropped)).toBe("CONFIG_VFIO_NOIOMMU: wanted y, got n\nCONFIG_E1000E: wanted n, got y");
    expect(droppedOptions("CONFIG_X=y\n", "")).toEqual([{ option: "CONFIG_X", wanted: "y", got: "n" }]);
    expect(droppedOptions(fragment, fragment)).toEqual([]);
  });

  test("the repository's fragment asks for iommufd, the cdev, no-IOMMU and pagemap, and keeps e1000e and modules out", () => {
    const f = parseKconfig(readFileSync(FRAGMENT_PATH, "utf8"));
    for (const o of ["IOMMUFD", "VFIO_DEVICE_CDEV", "VFIO_NOIOMMU", "VFIO_CONTAINER", "VFIO_IOMMU_TYPE1", "VFIO_PCI", "INTEL_IOMMU",
      "IRQ_REMAP", "VIRTIO_IOMMU", "PROC_PAGE_MONITOR", "HUGETLBFS", "9P_FS", "NET_9P_VIRTIO"]) {
      expect(`${o}=${f.get(`CONFIG_${o}`)}`).toBe(`${o}=y`);
    }
    expect(f.get("CONFIG_E1000E")).toBe("n");
    expect(f.get("CONFIG_MODULES")).toBe("n");
  });
});

describe("kernel source and cache key", () => {
  const madison = ` ${SOURCE_PACKAGE} | 6.12.99-1~bpo12+1 | http://deb.debian.org/debian bookworm-backports/main amd64 Packages\n` +
    ` ${SOURCE_PACKAGE} | ${PINNED_SOURCE_VERSION} | http://deb.debian.org/debian bookworm-backports/main amd64 Packages\n` +
    " linux-source-6.1 | 6.1.1-1 | http://deb.debian.org/debian bookworm/main amd64 Packages\n";

  test("madison lines give the package's versions in order, other packages ignored", () => {
    expect(madisonVersions(madison)).toEqual(["6.12.99-1~bpo12+1", PINNED_SOURCE_VERSION]);
  });

  test("the pinned version when offered, else the archive's candidate, else an error", () => {
    expect(chooseSourceVersion(madisonVersions(madison))).toEqual({ version: PINNED_SOURCE_VERSION });
    const gone = chooseSourceVersion(["6.12.99-1~bpo12+1"]);
    expect(gone.version).toBe("6.12.99-1~bpo12+1");
    expect(gone.note).toContain(`pinned kernel source ${SOURCE_PACKAGE} ${PINNED_SOURCE_VERSION} is gone`);
    expect(gone.note).toContain("candidate 6.12.99-1~bpo12+1");
    expect(() => chooseSourceVersion([])).toThrow(/offers no linux-source-6.12/);
  });

  test("version folders have no ~ or +; the key changes with source, fragment and compiler", () => {
    expect(versionDirName("6.12.95-1~bpo12+1")).toBe("6.12.95-1-bpo12-1");
    const k = buildKey("6.12.95-1~bpo12+1", "CONFIG_A=y\n", "gcc (Debian 12.2.0-14) 12.2.0");
    expect(k).toMatch(/^[0-9a-f]{16}$/);
    expect(buildKey("6.12.95-1~bpo12+1", "CONFIG_A=y\n", "gcc (Debian 12.2.0-14) 12.2.0")).toBe(k);
    expect(buildKey("6.12.96-1~bpo12+1", "CONFIG_A=y\n", "gcc (Debian 12.2.0-14) 12.2.0")).not.toBe(k);
    expect(buildKey("6.12.95-1~bpo12+1", "CONFIG_A=n\n", "gcc (Debian 12.2.0-14) 12.2.0")).not.toBe(k);
    expect(buildKey("6.12.95-1~bpo12+1", "CONFIG_A=y\n", "gcc (Debian 13.1.0-1) 13.1.0")).not.toBe(k);
  });
});

describe("BUN_VFIO_KERNEL", () => {
  const saved = { k: process.env.BUN_VFIO_KERNEL, m: process.env.BUN_VFIO_MODULES };
  const restore = (): void => {
    for (const [name, v] of [["BUN_VFIO_KERNEL", saved.k], ["BUN_VFIO_MODULES", saved.m]] as const) {
      if (v === undefined) delete process.env[name];
      else process.env[name] = v;
    }
  };

  test("unset, 'debian' or 'built': no kernel file (ensureKernel picks Debian's download or the build)", () => {
    try {
      delete process.env.BUN_VFIO_KERNEL;
      delete process.env.BUN_VFIO_MODULES;
      expect(kernelFromEnv()).toBeNull();
      process.env.BUN_VFIO_KERNEL = "debian";
      expect(kernelFromEnv()).toBeNull();
      process.env.BUN_VFIO_KERNEL = "built";
      expect(kernelFromEnv()).toBeNull();
    } finally {
      restore();
    }
  });

  test("a bzImage without BUN_VFIO_MODULES is taken as having everything built in; with it, its modules are used", () => {
    const dir = mkdtempSync(join(tmpdir(), "bun-vfio-kenv-"));
    try {
      writeFileSync(join(dir, "bzImage"), "not a real image");
      process.env.BUN_VFIO_KERNEL = join(dir, "bzImage");
      delete process.env.BUN_VFIO_MODULES;
      expect(kernelFromEnv()).toEqual({ version: "bzImage", vmlinuz: join(dir, "bzImage"), modulesDir: "", builtIn: true });
      process.env.BUN_VFIO_MODULES = dir;
      expect(kernelFromEnv()).toEqual({ version: expect.any(String), vmlinuz: join(dir, "bzImage"), modulesDir: dir });
      process.env.BUN_VFIO_MODULES = join(dir, "missing");
      expect(() => kernelFromEnv()).toThrow(/does not exist/);
    } finally {
      restore();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
