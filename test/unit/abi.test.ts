/**
 * ABI pin: every ioctl number, constant, sizeof and offsetof the library uses
 * must equal what the system C compiler computes from <linux/vfio.h>.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as V from "../../src/uapi/vfio.ts";
import { OFFSETOF, SIZEOF } from "../../src/uapi/layout.ts";

const cc = Bun.which("cc") ?? Bun.which("gcc") ?? Bun.which("clang");
const header = "/usr/include/linux/vfio.h";
const haveToolchain = cc !== null && (await Bun.file(header).exists());
if (!haveToolchain && process.env.CI) throw new Error(`ABI test needs a C compiler and ${header} (apt-get install gcc linux-libc-dev)`);

/** Names that are enumerators in vfio.h, not macros (#ifdef cannot see them). */
const isEnumerator = (name: string) => /^VFIO_PCI_\w+_(INDEX|REGIONS|IRQS)$/.test(name);

function cProgram(): string {
  const lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/vfio.h>", "int main(void) {", 'printf("{\\n");'];
  const emit = (key: string, expr: string) => lines.push(`printf("\\"${key}\\": %llu,\\n", (unsigned long long)(${expr}));`);
  for (const [name, value] of Object.entries(V)) {
    if (typeof value !== "number" || !name.startsWith("VFIO_")) continue;
    if (isEnumerator(name)) emit(name, name);
    else lines.push(`#ifdef ${name}`, `printf("\\"${name}\\": %llu,\\n", (unsigned long long)(unsigned int)(${name}));`, "#endif");
  }
  for (const name of Object.keys(SIZEOF)) {
    // vfio_device_info grew a trailing pad in newer headers; we rely on the fields up to cap_offset.
    emit(`sizeof ${name}`, name === "vfio_device_info" ? "offsetof(struct vfio_device_info, cap_offset) + 4" : `sizeof(struct ${name})`);
  }
  for (const key of Object.keys(OFFSETOF)) {
    const [struct, field] = key.split(".");
    emit(`offsetof ${key}`, `offsetof(struct ${struct}, ${field})`);
  }
  lines.push('printf("\\"end\\": 0}\\n");', "return 0; }");
  return lines.join("\n");
}

describe.skipIf(!haveToolchain)("ABI against the system <linux/vfio.h>", async () => {
  if (!haveToolchain) return; // bun runs a skipped describe's body: do not compile without cc
  const dir = mkdtempSync(join(tmpdir(), "bun-vfio-abi-"));
  let c: Record<string, number> = {};
  try {
    writeFileSync(join(dir, "abi.c"), cProgram());
    const build = Bun.spawnSync([cc!, "-o", join(dir, "abi"), join(dir, "abi.c")]);
    if (build.exitCode !== 0) throw new Error(`cc failed: ${build.stderr.toString()}`);
    c = JSON.parse(Bun.spawnSync([join(dir, "abi")]).stdout.toString());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  test("every constant the header defines matches", () => {
    const known = Object.entries(V).filter(([n, v]) => typeof v === "number" && n.startsWith("VFIO_") && n in c);
    expect(known.length).toBeGreaterThan(60);
    for (const [name, value] of known) expect({ name, value: (value as number) >>> 0 }).toEqual({ name, value: c[name]! });
  });

  test("the ioctl request numbers are all present in the header", () => {
    for (const name of Object.keys(V).filter((n) => /^VFIO_(GET|CHECK|SET|GROUP|DEVICE|IOMMU)_[A-Z_]+$/.test(n) && !/FLAGS|INFO_(CAP|FLAG)/.test(n))) {
      if (typeof (V as Record<string, unknown>)[name] !== "number") continue;
      if (/^VFIO_(GROUP_FLAGS|DEVICE_FLAGS|IOMMU_INFO|IOMMU_TYPE1)/.test(name)) continue;
      expect({ name, present: name in c }).toEqual({ name, present: true });
    }
  });

  test("struct sizes", () => {
    for (const [name, size] of Object.entries(SIZEOF) as [string, number][]) expect({ name, size }).toEqual({ name, size: c[`sizeof ${name}`]! });
  });

  test("field offsets", () => {
    for (const [key, offset] of Object.entries(OFFSETOF) as [string, number][]) expect({ key, offset }).toEqual({ key, offset: c[`offsetof ${key}`]! });
  });
});
