/** Worker of bench/deno-seam.ts: on each request, stamps the time and writes 1 to the eventfd. */
import { sys } from "../src/sys/runtime.ts";

declare const self: { onmessage: ((e: { data: { fd: number; stamps: Float64Array; rounds: number } }) => void) | null; postMessage(v: unknown): void };

self.onmessage = ({ data: { fd, stamps, rounds } }) => {
  const one = new Uint8Array(new BigUint64Array([1n]).buffer);
  const flag = new Int32Array(stamps.buffer as SharedArrayBuffer, rounds * 8, 1);
  for (let i = 0; i < rounds; i++) {
    Atomics.wait(flag, 0, i); // the reader bumps flag once it is waiting again
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1); // let it block
    stamps[i] = performance.timeOrigin + performance.now();
    sys().write(fd, one, 8);
  }
  self.postMessage("done");
};
