/**
 * The edu device's DMA engine (QEMU docs/specs/edu.rst, hw/misc/edu.c), for
 * guest tests. The engine copies between a bus address and the device's own
 * 4 KiB buffer at device address 0x40000, 100 ms (virtual clock) after the
 * command register is written; bit 0 of the command clears when it is done.
 * Bus addresses are masked to 28 bits (`dma_mask`): higher bits are dropped,
 * not refused. A transfer outside the internal buffer stops QEMU (7.2 calls
 * hw_error; newer versions log it and overrun the buffer), and QEMU before
 * 8.0 also stops on one that ends exactly at the buffer's end (an off-by-one
 * fixed for QEMU issue #1254), so this helper keeps transfers strictly inside:
 * at most 4095 bytes.
 */
import type { Bar } from "../../src/index.ts";

/** BAR0 register offsets and constants. */
export const EDU = {
  IRQ_STATUS: 0x24,
  IRQ_ACK: 0x64,
  DMA_SRC: 0x80,
  DMA_DST: 0x88,
  DMA_COUNT: 0x90,
  DMA_CMD: 0x98,
  CMD_START: 1,
  CMD_TO_RAM: 2,
  CMD_IRQ: 4,
  /** irq_status bit set when a DMA with CMD_IRQ completes. */
  IRQ_DMA: 0x100,
  /** Device address of the internal buffer. */
  BUFFER: 0x40000n,
  BUFFER_SIZE: 4096,
  /** The largest transfer every QEMU version accepts (deviceOffset + count < 4096). */
  MAX_TRANSFER: 4095,
  /** The default dma_mask is 2^28 - 1: bus addresses must stay below this. */
  DMA_LIMIT: 1n << 28n,
} as const;

/** Starts one transfer; `toRam` copies the device buffer out to `busAddress`, else in from it. */
export function eduStartDma(bar: Bar, dir: { toRam: boolean }, busAddress: bigint, deviceOffset: number, count: number, irq = false): void {
  if (deviceOffset < 0 || count <= 0 || deviceOffset + count > EDU.MAX_TRANSFER) {
    throw new Error(`edu: ${count} bytes at device offset ${deviceOffset} do not fit strictly inside its ${EDU.BUFFER_SIZE}-byte buffer`);
  }
  const device = EDU.BUFFER + BigInt(deviceOffset);
  bar.write64(EDU.DMA_SRC, dir.toRam ? device : busAddress);
  bar.write64(EDU.DMA_DST, dir.toRam ? busAddress : device);
  bar.write64(EDU.DMA_COUNT, BigInt(count));
  bar.write64(EDU.DMA_CMD, BigInt(EDU.CMD_START | (dir.toRam ? EDU.CMD_TO_RAM : 0) | (irq ? EDU.CMD_IRQ : 0)));
}

/** Polls the command register until bit 0 clears; returns the milliseconds waited. */
export function eduWaitIdle(bar: Bar, timeoutMs = 5000): number {
  const start = performance.now();
  while ((bar.read32(EDU.DMA_CMD) & EDU.CMD_START) !== 0) {
    if (performance.now() - start > timeoutMs) throw new Error(`edu: DMA still running after ${timeoutMs} ms`);
    Bun.sleepSync(1);
  }
  return performance.now() - start;
}

/** One complete transfer, completion by polling. */
export function eduDma(bar: Bar, dir: { toRam: boolean }, busAddress: bigint, deviceOffset: number, count: number): void {
  eduStartDma(bar, dir, busAddress, deviceOffset, count);
  eduWaitIdle(bar);
}
