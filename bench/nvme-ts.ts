#!/usr/bin/env bun
/**
 * The TypeScript side of the NVMe benchmark: 4 KiB random reads or writes
 * through examples/nvme at a fixed queue depth on one I/O queue pair,
 * polled or interrupt-driven; the same workload, random sequence and JSON
 * line as bench/nvme-driver.c (the C baseline). Uses QueuePair.submit/poll
 * directly (one callback, no promise per I/O), as a fast driver would.
 *
 *   bun bench/nvme-ts.ts <bdf> <read|write> <qd> <polled|interrupt> <ios> <entries> [warmup=1000]
 */
import { readdirSync, readFileSync } from "node:fs";
import { NvmeController } from "../examples/nvme/controller.ts";
import { NVM } from "../examples/nvme/spec.ts";

const [bdf, rw, qdText, mode, iosText, entriesText, warmupText] = process.argv.slice(2);
if (!bdf || (rw !== "read" && rw !== "write") || (mode !== "polled" && mode !== "interrupt")) {
  console.error("usage: bun bench/nvme-ts.ts <bdf> <read|write> <qd> <polled|interrupt> <ios> <entries>");
  process.exit(2);
}
const qd = Number(qdText);
const ios = Number(iosText);

await using nvme = await NvmeController.open(bdf, { queues: [mode], queueEntries: Number(entriesText) });
const q = nvme.queues[0]!;
const lbasPer4k = 4096 / nvme.namespace.blockSize;
const blocks4k = Number(nvme.namespace.blocks) / lbasPer4k;
using data = nvme.allocate(4096);
data.bytes.fill(0x5a);
const iova = Number(data.iova);
const opcode = rw === "write" ? NVM.WRITE : NVM.READ;
const nsid = nvme.namespace.nsid;

let rng = 12345; // the C baseline's xorshift32, same seed
const warmup = Math.min(ios, Number(warmupText ?? 1000));
const lat = new Float64Array(Math.max(ios, warmup));
const started = new Float64Array(q.depth);
let left = 0;
let done = 0;
let failed = 0;

function issue(): void {
  rng = (rng ^ (rng << 13)) >>> 0;
  rng = (rng ^ (rng >>> 17)) >>> 0;
  rng = (rng ^ (rng << 5)) >>> 0;
  const lba = (rng % blocks4k) * lbasPer4k;
  const t = performance.now();
  const cid = q.submit(opcode, nsid, lba % 2 ** 32, Math.floor(lba / 2 ** 32), lbasPer4k - 1, 0, iova, 4096, onDone);
  if (cid < 0) throw new Error("I/O queue full");
  started[cid] = t;
  left--;
}

function onDone(status: number, _dw0: number, cid: number): void {
  if (status !== 0) failed = status;
  lat[done++] = performance.now() - started[cid]!;
  if (left > 0) issue();
}

/** Runs `n` I/Os at depth `qd`; returns elapsed ms. */
async function run(n: number): Promise<number> {
  left = n;
  done = 0;
  const t0 = performance.now();
  for (let i = 0; i < qd && left > 0; i++) issue();
  const deadline = t0 + 120_000;
  if (mode === "polled") {
    while (done < n) {
      q.poll();
      if ((done & 255) === 0 && performance.now() > deadline) throw new Error("workload timed out");
    }
  } else {
    const vector = q.vector!;
    while (done < n) {
      await vector.next();
      q.poll();
      if (performance.now() > deadline) throw new Error("workload timed out");
    }
  }
  return performance.now() - t0;
}

/**
 * CPU time per thread name (ms) from /proc/self/task/<tid>/stat (utime + stime,
 * 100 Hz ticks): shows how much of the process's CPU goes to JIT compiler and
 * GC threads rather than the thread running the driver.
 */
function threadCpu(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")).replace(/[0-9]+$/, "").trim() || "?";
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const key = tid === String(process.pid) ? "main" : name;
      out[key] = (out[key] ?? 0) + (Number(f[11]) + Number(f[12])) * 10;
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

await run(warmup); // JIT warm-up, not measured (the C side does the same I/Os)
const threads0 = threadCpu();
const cpu0 = process.cpuUsage();
const elapsed = await run(ios);
const cpu = process.cpuUsage(cpu0);
const threads1 = threadCpu();
const threads = Object.fromEntries(Object.entries(threads1).map(([k, v]) => [k, v - (threads0[k] ?? 0)]).filter(([, v]) => (v as number) > 0));
if (failed) throw new Error(`an I/O failed with status 0x${failed.toString(16)}`);
const sorted = lat.subarray(0, ios).sort();
console.log(JSON.stringify({
  iops: ios / (elapsed / 1000),
  p50_us: sorted[Math.floor(ios / 2)]! * 1000,
  p99_us: sorted[Math.floor(ios * 0.99)]! * 1000,
  cpu_us_per_io: (cpu.user + cpu.system) / ios,
  ios,
  thread_cpu_ms: threads,
}));
