/**
 * ABI pin for the iommufd and VFIO-cdev ioctls against the headers of the
 * kernel the guests ran: the sandbox's own build keeps Debian's
 * linux-source-6.12 tree in the cache, so its `include/uapi/linux/iommufd.h`
 * and `vfio.h` (newer than the host's linux-libc-dev, which has no
 * iommufd.h) are compiled with the system C compiler and every number and
 * offset the library encodes is compared. Runs after the guest profiles,
 * which built (or found) that tree.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PINNED_SOURCE_VERSION, unpackedSource } from "../../sandbox/kernel-source.ts";
import * as F from "../../src/uapi/iommufd.ts";

const source = unpackedSource(PINNED_SOURCE_VERSION);
const cc = Bun.which("cc") ?? Bun.which("gcc");
const ready = source !== null && cc !== null;
if (!ready && process.env.CI) throw new Error(`kernel ABI test: no unpacked ${PINNED_SOURCE_VERSION} source in the sandbox cache (the x86 guest profiles build it) or no C compiler`);

/** offsetof/sizeof the library relies on, by struct. */
const FIELDS: Record<string, [string, number][]> = {
  iommu_ioas_alloc: [["size", 0], ["flags", 4], ["out_ioas_id", 8]],
  iommu_ioas_iova_ranges: [["ioas_id", 4], ["num_iovas", 8], ["allowed_iovas", 16], ["out_iova_alignment", 24]],
  iommu_iova_range: [["start", 0], ["last", 8]],
  iommu_ioas_map: [["flags", 4], ["ioas_id", 8], ["user_va", 16], ["length", 24], ["iova", 32]],
  iommu_ioas_unmap: [["ioas_id", 4], ["iova", 8], ["length", 16]],
  vfio_device_bind_iommufd: [["flags", 4], ["iommufd", 8], ["out_devid", 12]],
  vfio_device_attach_iommufd_pt: [["flags", 4], ["pt_id", 8]],
};
const SIZES: [string, number][] = [
  ["iommu_ioas_alloc", F.IOMMUFD_SIZEOF.iommu_ioas_alloc],
  ["iommu_ioas_iova_ranges", F.IOMMUFD_SIZEOF.iommu_ioas_iova_ranges],
  ["iommu_iova_range", F.IOMMUFD_SIZEOF.iommu_iova_range],
  ["iommu_ioas_map", F.IOMMUFD_SIZEOF.iommu_ioas_map],
  ["iommu_ioas_unmap", F.IOMMUFD_SIZEOF.iommu_ioas_unmap],
  // 6.12's struct ends at out_devid: the library's no-token size is the whole struct there
  ["vfio_device_bind_iommufd", F.IOMMUFD_SIZEOF.vfio_device_bind_iommufd],
  ["vfio_device_attach_iommufd_pt", F.IOMMUFD_SIZEOF.vfio_device_attach_iommufd_pt],
];
const NUMBERS = ["IOMMU_DESTROY", "IOMMU_IOAS_ALLOC", "IOMMU_IOAS_IOVA_RANGES", "IOMMU_IOAS_MAP", "IOMMU_IOAS_UNMAP", "IOMMU_IOAS_MAP_FIXED_IOVA",
  "IOMMU_IOAS_MAP_WRITEABLE", "IOMMU_IOAS_MAP_READABLE", "VFIO_DEVICE_BIND_IOMMUFD", "VFIO_DEVICE_ATTACH_IOMMUFD_PT", "VFIO_DEVICE_DETACH_IOMMUFD_PT"] as const;

function compileAndRun(): Record<string, number> {
  const dir = mkdtempSync(join(tmpdir(), "bun-vfio-kabi-"));
  try {
    const uapi = join(source!.tree, "include/uapi/linux");
    const out = [
      // The source tree's uapi headers still carry the kernel's annotations that headers_install strips.
      "#define __user", "#include <stdio.h>", "#include <stddef.h>", "#include <linux/types.h>", "#include <linux/ioctl.h>",
      `#include "${uapi}/iommufd.h"`, `#include "${uapi}/vfio.h"`, "int main(void) {",
      ...NUMBERS.map((n) => `printf("${n} %llu\\n", (unsigned long long)(${n}));`),
      ...SIZES.map(([s]) => `printf("sizeof ${s} %zu\\n", sizeof(struct ${s}));`),
      ...Object.entries(FIELDS).flatMap(([s, fs]) => fs.map(([f]) => `printf("${s}.${f} %zu\\n", offsetof(struct ${s}, ${f}));`)),
      "return 0; }",
    ];
    writeFileSync(join(dir, "abi.c"), out.join("\n"));
    const build = Bun.spawnSync([cc!, "-o", join(dir, "abi"), join(dir, "abi.c")], { stderr: "pipe" });
    if (build.exitCode !== 0) throw new Error(`cc failed: ${build.stderr.toString()}`);
    const run = Bun.spawnSync([join(dir, "abi")]);
    return Object.fromEntries(run.stdout.toString().trim().split("\n").map((l) => {
      const i = l.lastIndexOf(" ");
      return [l.slice(0, i), Number(l.slice(i + 1))];
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(!ready)(`iommufd ABI against linux-source-6.12 ${PINNED_SOURCE_VERSION}`, () => {
  const c = ready ? compileAndRun() : {};
  test("ioctl numbers and map flags", () => {
    for (const n of NUMBERS) expect({ n, v: F[n] }).toEqual({ n, v: c[n]! });
  });
  test("struct sizes", () => {
    for (const [s, size] of SIZES) expect({ s, size }).toEqual({ s, size: c[`sizeof ${s}`]! });
  });
  test("field offsets the encoders write", () => {
    for (const [s, fs] of Object.entries(FIELDS)) for (const [f, at] of fs) expect({ field: `${s}.${f}`, at }).toEqual({ field: `${s}.${f}`, at: c[`${s}.${f}`]! });
  });
  test("this kernel's cdev bind has no VF token field (what the library's EINVAL hint for tokens says)", () => {
    const vfio = readFileSync(join(source!.tree, "include/uapi/linux/vfio.h"), "utf8");
    expect(vfio).toContain("struct vfio_device_bind_iommufd {");
    expect(vfio).not.toContain("VFIO_DEVICE_BIND_FLAG_TOKEN");
  });
});
