/**
 * Linux's mandatory barriers, for code that batches relaxed device writes
 * (`bar.write32Relaxed`) or orders DMA memory by hand. Ordered accessors
 * (`bar.write32`, `bar.read32`, `buffer.read32`) already include what they
 * need. Each is one instruction in a machine-code stub (src/sys/machine-code.ts).
 */
import { sys } from "./runtime.ts";

/** Orders earlier stores before later ones, device memory included (arm64 `dsb st`, x86-64 `sfence`). */
export function wmb(): void {
  sys().barrier("wmb");
}

/** Orders earlier loads before later ones (arm64 `dsb ld`, x86-64 `lfence`). */
export function rmb(): void {
  sys().barrier("rmb");
}

/** A full barrier (arm64 `dsb sy`, x86-64 `mfence`). */
export function mb(): void {
  sys().barrier("mb");
}
