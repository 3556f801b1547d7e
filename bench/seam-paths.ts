/**
 * Child of bench/deno-seam.ts, the same file on Bun and on Deno: the
 * library's native paths (./native-paths.ts) and the eventfd wake through
 * the library's waiter (`EventWaiter.next()` on an `EventFd`), with the C
 * writer of ./eventfd-wake.ts in another process taking both eventfds with
 * pidfd_getfd (Deno cannot give a child extra fds). Prints one JSON line:
 * ns per operation and the raw wake latencies in ns.
 *
 *   bun bench/seam-paths.ts WAKE_BINARY [iterations] [samples]
 *   deno run -A bench/seam-paths.ts WAKE_BINARY [iterations] [samples]
 */
import { spawn } from "node:child_process";
import process from "node:process";
import { EventFd } from "../src/irq/eventfd.ts";
import { EventWaiter } from "../src/irq/waiter.ts";
import { libraryNativePaths } from "./native-paths.ts";

declare const Deno: { dlopen(lib: string, symbols: Record<string, unknown>): { symbols: { clock_gettime(id: number, ts: BigInt64Array): number } } } | undefined;

const [binary, iterations = "2000000", samples = "2000"] = process.argv.slice(2);
if (!binary) throw new Error("usage: seam-paths.ts WAKE_BINARY [iterations] [samples]");

/** CLOCK_MONOTONIC in ns (the C writer's clock), through this runtime's FFI. */
async function monotonicClock(): Promise<() => number> {
  const ts = new BigInt64Array(2);
  let clockGettime: (id: number, ts: BigInt64Array) => number;
  if (typeof Deno !== "undefined") {
    clockGettime = Deno.dlopen("libc.so.6", { clock_gettime: { parameters: ["i32", "buffer"], result: "i32" } }).symbols.clock_gettime;
  } else {
    const ffi = "bun:ffi"; // a computed specifier: Deno never resolves it
    const { dlopen, FFIType } = await import(ffi);
    clockGettime = dlopen("libc.so.6", { clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 } }).symbols.clock_gettime;
  }
  return () => {
    clockGettime(1, ts);
    return Number(ts[0]!) * 1e9 + Number(ts[1]!);
  };
}

async function wakeLatencies(n: number): Promise<number[]> {
  const now = await monotonicClock();
  const efd = new EventFd("bench");
  const ack = new EventFd("bench-ack");
  const writer = spawn(binary!, ["writer-pid", String(n), String(process.pid), String(efd.fd), String(ack.fd)], { stdio: ["ignore", "inherit", "inherit"] });
  const exited = new Promise<number | null>((done) => writer.on("exit", done));
  const waiter = new EventWaiter(efd);
  const lat: number[] = [];
  for (let i = 0; i < n; i++) {
    const stamp = await waiter.next();
    lat.push(now() - stamp);
    ack.signal();
  }
  if ((await exited) !== 0) throw new Error("the C writer failed");
  waiter.close({ op: "bench", detail: "done", hint: "" });
  efd.close();
  ack.close();
  return lat;
}

const paths = libraryNativePaths(Number(iterations));
const wakeNs = await wakeLatencies(Number(samples));
console.log(JSON.stringify({ paths, wakeNs }));
