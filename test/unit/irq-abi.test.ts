/**
 * VFIO_DEVICE_SET_IRQS encodings, byte for byte: a C program fills
 * `struct vfio_irq_set` from <linux/vfio.h> for every case the irq layer
 * sends, and the bytes must equal encodeIrqSet's.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeIrqSet, type IrqSetData } from "../../src/uapi/structs.ts";
import * as V from "../../src/uapi/vfio.ts";

const cc = Bun.which("cc") ?? Bun.which("gcc") ?? Bun.which("clang");
const header = "/usr/include/linux/vfio.h";
const haveToolchain = cc !== null && (await Bun.file(header).exists());
if (!haveToolchain && process.env.CI) throw new Error(`irq ABI test needs a C compiler and ${header}`);

interface Case {
  name: string;
  index: number;
  start: number;
  count: number;
  /** The C flags expression, spelled with the header's macro names. */
  cFlags: string;
  action: number;
  data: IrqSetData;
}

const { VFIO_IRQ_SET_ACTION_TRIGGER: TRIGGER, VFIO_IRQ_SET_ACTION_MASK: MASK, VFIO_IRQ_SET_ACTION_UNMASK: UNMASK } = V;

/** Every SET_IRQS shape src/irq sends (plus DATA_BOOL, which the codec also supports). */
const CASES: Case[] = [
  { name: "MSI-X enable 3 vectors", index: 2, start: 0, count: 3, cFlags: "VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER", action: TRIGGER, data: { kind: "eventfd", fds: [10, 11, 12] } },
  { name: "MSI-X dynamic grow: vectors 3-4", index: 2, start: 3, count: 2, cFlags: "VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER", action: TRIGGER, data: { kind: "eventfd", fds: [13, 14] } },
  { name: "MSI-X detach vector 1 (fd -1)", index: 2, start: 1, count: 1, cFlags: "VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER", action: TRIGGER, data: { kind: "eventfd", fds: [-1] } },
  { name: "MSI-X disable (count 0)", index: 2, start: 0, count: 0, cFlags: "VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER", action: TRIGGER, data: { kind: "none" } },
  { name: "MSI-X software trigger of vector 7", index: 2, start: 7, count: 1, cFlags: "VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER", action: TRIGGER, data: { kind: "none" } },
  { name: "MSI enable 1 vector", index: 1, start: 0, count: 1, cFlags: "VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER", action: TRIGGER, data: { kind: "eventfd", fds: [42] } },
  { name: "MSI mask vector 2", index: 1, start: 2, count: 1, cFlags: "VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK", action: MASK, data: { kind: "none" } },
  { name: "INTx mask", index: 0, start: 0, count: 1, cFlags: "VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK", action: MASK, data: { kind: "none" } },
  { name: "INTx unmask", index: 0, start: 0, count: 1, cFlags: "VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK", action: UNMASK, data: { kind: "none" } },
  { name: "INTx unmask eventfd (resample)", index: 0, start: 0, count: 1, cFlags: "VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK", action: UNMASK, data: { kind: "eventfd", fds: [15] } },
  { name: "ERR enable", index: 3, start: 0, count: 1, cFlags: "VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER", action: TRIGGER, data: { kind: "eventfd", fds: [16] } },
  { name: "REQ enable", index: 4, start: 0, count: 1, cFlags: "VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER", action: TRIGGER, data: { kind: "eventfd", fds: [17] } },
  { name: "REQ disable (count 0)", index: 4, start: 0, count: 0, cFlags: "VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER", action: TRIGGER, data: { kind: "none" } },
  { name: "MSI-X trigger by bools", index: 2, start: 0, count: 3, cFlags: "VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER", action: TRIGGER, data: { kind: "bool", values: [true, false, true] } },
];

/** C that fills the struct exactly as the case says and prints its bytes as hex, one case a line. */
function cProgram(): string {
  const lines = ["#include <stdio.h>", "#include <stdlib.h>", "#include <string.h>", "#include <stdint.h>", "#include <linux/vfio.h>",
    "static void dump(const struct vfio_irq_set *s) { const unsigned char *b = (const unsigned char *)s; for (unsigned i = 0; i < s->argsz; i++) printf(\"%02x\", b[i]); printf(\"\\n\"); }",
    "int main(void) {"];
  CASES.forEach((c, n) => {
    const bytes = c.data.kind === "none" ? 0 : c.data.kind === "bool" ? c.data.values.length : 4 * c.data.fds.length;
    lines.push(`{ size_t sz = sizeof(struct vfio_irq_set) + ${bytes}; struct vfio_irq_set *s = calloc(1, sz);`,
      `s->argsz = sz; s->flags = ${c.cFlags}; s->index = ${c.index}; s->start = ${c.start}; s->count = ${c.count};`);
    if (c.data.kind === "eventfd") lines.push(`{ int32_t fds[] = { ${c.data.fds.join(", ")} }; memcpy(s->data, fds, sizeof fds); }`);
    if (c.data.kind === "bool") lines.push(`{ uint8_t v[] = { ${c.data.values.map((v) => (v ? 1 : 0)).join(", ")} }; memcpy(s->data, v, sizeof v); }`);
    lines.push(`dump(s); free(s); } /* case ${n} */`);
  });
  lines.push("return 0; }");
  return lines.join("\n");
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe.skipIf(!haveToolchain)("struct vfio_irq_set against the C header", () => {
  const dir = mkdtempSync(join(tmpdir(), "bun-vfio-irq-abi-"));
  let cLines: string[] = [];
  try {
    writeFileSync(join(dir, "irqset.c"), cProgram());
    const build = Bun.spawnSync([cc!, "-Wall", "-o", join(dir, "irqset"), join(dir, "irqset.c")]);
    if (build.exitCode !== 0) throw new Error(`cc failed: ${build.stderr.toString()}`);
    cLines = Bun.spawnSync([join(dir, "irqset")]).stdout.toString().trim().split("\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  test("the C program printed one encoding per case", () => {
    expect(cLines).toHaveLength(CASES.length);
  });

  CASES.forEach((c, n) => {
    test(c.name, () => {
      expect(hex(encodeIrqSet(c.index, c.start, c.count, c.action, c.data))).toBe(cLines[n]!);
    });
  });
});
