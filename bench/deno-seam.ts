/**
 * The runtime seam's costs on whichever runtime runs it (`bun bench/deno-seam.ts`,
 * `deno run -A bench/deno-seam.ts`): a failing ioctl (TCGETS on /dev/null),
 * an 8-byte pread of /dev/zero, 32-bit loads and stores on anonymous memory
 * through a MemoryView, and the wake of a stream read when another thread
 * writes the eventfd (median of 300). Prints one JSON line.
 */
import { sys } from "../src/sys/runtime.ts";

const s = sys();
const ns = (fn: () => void, n: number): number => {
  for (let i = 0; i < 1000; i++) fn();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn();
  return ((performance.now() - t0) * 1e6) / n;
};

const devnull = s.open("/dev/null", 2);
const zero = s.open("/dev/zero", 0);
const buf = new Uint8Array(64);
const ioctl = ns(() => void s.ioctl(devnull, 0x5401, buf), 200_000);
const pread = ns(() => void s.pread(zero, buf, 8, 0), 200_000);
const m = s.mmap(4096, 3, 0x22, -1, 0);
const v = s.view(m.pointer!, 4096);
let sink = 0;
const load32 = ns(() => void (sink ^= v.load32(64)), 1_000_000);
const store32 = ns(() => v.store32(64, 7), 1_000_000);

const rounds = 300;
const efd = s.eventfd(0, 0o4000 | 0o2000000);
const stamps = new Float64Array(new SharedArrayBuffer(rounds * 8 + 8));
const flag = new Int32Array(stamps.buffer as SharedArrayBuffer, rounds * 8, 1);
const worker = new Worker(new URL("./seam-wake-writer.ts", import.meta.url).href, { type: "module" });
worker.postMessage({ fd: efd, stamps, rounds });
const stream = s.stream(efd);
const wakes: number[] = [];
for (let i = 0; i < rounds; i++) {
  const pending = stream.read();
  Atomics.store(flag, 0, i + 1);
  Atomics.notify(flag, 0);
  await pending;
  wakes.push((performance.timeOrigin + performance.now() - stamps[i]!) * 1000);
}
stream.cancel();
worker.terminate();
wakes.sort((a, b) => a - b);
const r = (x: number) => Math.round(x * 10) / 10;
console.log(JSON.stringify({ runtime: s.name, ioctlNs: r(ioctl), preadNs: r(pread), load32Ns: r(load32), store32Ns: r(store32), wakeMedianUs: r(wakes[rounds >> 1]!), wakeP90Us: r(wakes[Math.floor(rounds * 0.9)]!), sink: sink & 0 }));
