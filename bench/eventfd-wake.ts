#!/usr/bin/env bun
/**
 * Eventfd wake latency: how long from another process's write(2) to an
 * eventfd until Bun code waiting on it runs, side by side with a C baseline
 * (a thread in poll(2) + read(2)) measured in the same run.
 *
 * A small C program (compiled here with cc) is the writer: it sleeps a
 * random 50-250 us, writes CLOCK_MONOTONIC in ns as the eventfd's value,
 * then waits for an acknowledgement on a second eventfd before the next
 * write. The waiting side reads the value and subtracts it from its own
 * CLOCK_MONOTONIC. Mechanisms measured:
 *   c-poll     C thread blocked in poll(2), then read(2)       (baseline)
 *   stream     the library's waiter: Bun.file(fd).stream()     (chosen)
 *   worker     a Worker blocked in poll(2) via FFI, postMessage to the main thread
 *   busy-poll  tryRead() in a loop on the main thread          (blocks the event loop)
 *
 *   bun bench/eventfd-wake.ts [samples=2000]
 */
import { dlopen, FFIType } from "bun:ffi";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventFd } from "../src/irq/eventfd.ts";
import { EventWaiter } from "../src/irq/waiter.ts";

const SAMPLES = Number((import.meta.main ? process.argv[2] : undefined) ?? 2000);
const WARMUP = 200;

const C_SOURCE = String.raw`
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return (uint64_t)t.tv_sec * 1000000000ull + t.tv_nsec; }
static void wait_readable(int fd) { struct pollfd p = { .fd = fd, .events = POLLIN }; while (poll(&p, 1, -1) < 0) {} }

/* Writes n timestamps to efd, each after a random pause and the previous acknowledgement. */
static void writer(int efd, int ack, int n) {
  unsigned seed = 12345;
  for (int i = 0; i < n; i++) {
    struct timespec pause = { 0, 50000 + rand_r(&seed) % 200000 };
    nanosleep(&pause, NULL);
    uint64_t t = now_ns();
    if (write(efd, &t, 8) != 8) { perror("write"); exit(1); }
    wait_readable(ack);
    uint64_t v; if (read(ack, &v, 8) != 8) { perror("read ack"); exit(1); }
  }
}

struct reader_args { int efd, ack, n; uint64_t *lat; };
static void *reader(void *p) {
  struct reader_args *a = p; uint64_t one = 1;
  for (int i = 0; i < a->n; i++) {
    wait_readable(a->efd);
    uint64_t v; if (read(a->efd, &v, 8) != 8) { perror("read"); exit(1); }
    a->lat[i] = now_ns() - v;
    if (write(a->ack, &one, 8) != 8) { perror("write ack"); exit(1); }
  }
  return NULL;
}

int main(int argc, char **argv) {
  int n = atoi(argv[2]);
  if (strcmp(argv[1], "writer") == 0) { writer(3, 4, n); return 0; }
  /* writer-pid N PID EFD ACK: the eventfds are fds EFD and ACK of process PID (taken with pidfd_getfd, Linux 5.6+),
     for runtimes that cannot hand a child extra fds (Deno) */
  if (strcmp(argv[1], "writer-pid") == 0) {
    int pidfd = syscall(SYS_pidfd_open, atoi(argv[3]), 0);
    int efd = pidfd < 0 ? -1 : syscall(SYS_pidfd_getfd, pidfd, atoi(argv[4]), 0);
    int ack = pidfd < 0 ? -1 : syscall(SYS_pidfd_getfd, pidfd, atoi(argv[5]), 0);
    if (efd < 0 || ack < 0) { perror("pidfd_getfd"); return 1; }
    writer(efd, ack, n);
    return 0;
  }
  /* baseline: both sides in C, reader in its own thread */
  struct reader_args a = { eventfd(0, EFD_NONBLOCK), eventfd(0, EFD_NONBLOCK), n, calloc(n, 8) };
  pthread_t t; pthread_create(&t, NULL, reader, &a);
  writer(a.efd, a.ack, n);
  pthread_join(t, NULL);
  for (int i = 0; i < n; i++) printf("%llu\n", (unsigned long long)a.lat[i]);
  return 0;
}
`;

const { symbols: clock } = dlopen("libc.so.6", { clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 } });
const ts = new BigInt64Array(2);
/** CLOCK_MONOTONIC in ns, the writer's clock. */
function nowNs(): number {
  clock.clock_gettime(1, ts);
  return Number(ts[0]!) * 1e9 + Number(ts[1]!);
}

export type Stats = { median: number; p90: number; p99: number; n: number };
export function stats(ns: number[]): Stats {
  const s = ns.slice(WARMUP).sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]! / 1000;
  return { median: at(0.5), p90: at(0.9), p99: at(0.99), n: s.length };
}

/** Runs the C writer against eventfds whose waits `wake` resolves; returns the latencies in ns. */
async function measure(binary: string, n: number, wake: (efd: EventFd, record: (value: number) => void) => Promise<void>): Promise<number[]> {
  const efd = new EventFd("bench");
  const ack = new EventFd("bench-ack");
  const lat: number[] = [];
  const writer = Bun.spawn([binary, "writer", String(n)], { stdio: ["ignore", "inherit", "inherit", efd.fd, ack.fd] });
  await wake(efd, (value) => {
    lat.push(nowNs() - value);
    ack.signal();
  });
  if ((await writer.exited) !== 0) throw new Error("writer failed");
  efd.close();
  ack.close();
  return lat;
}

export async function viaStream(binary: string): Promise<number[]> {
  return measure(binary, SAMPLES, async (efd, record) => {
    const waiter = new EventWaiter(efd);
    for (let i = 0; i < SAMPLES; i++) record(await waiter.next());
    waiter.close({ op: "bench", detail: "done", hint: "" });
  });
}

async function viaBusyPoll(binary: string): Promise<number[]> {
  return measure(binary, SAMPLES, async (efd, record) => {
    const waiter = new EventWaiter(efd);
    for (let i = 0; i < SAMPLES; i++) {
      let v = 0;
      while ((v = waiter.tryRead()) === 0) {}
      record(v);
    }
    waiter.close({ op: "bench", detail: "done", hint: "" });
  });
}

const WORKER_SOURCE = `
import { dlopen, FFIType } from "bun:ffi";
const { symbols: c } = dlopen("libc.so.6", {
  poll: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
  read: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64_fast },
});
self.onmessage = (e) => {
  const { fd, n } = e.data;
  const pfd = new Int32Array([fd, 1, 0]); // struct pollfd { int fd; short events = POLLIN; short revents; }
  const word = new BigUint64Array(1);
  for (let i = 0; i < n; i++) {
    pfd[1] = 1;
    c.poll(pfd, 1, -1);
    if (c.read(fd, word, 8) === 8) postMessage(Number(word[0]));
    else i--;
  }
};
`;

async function viaWorker(binary: string, dir: string): Promise<number[]> {
  const file = join(dir, "wake-worker.ts");
  writeFileSync(file, WORKER_SOURCE);
  return measure(binary, SAMPLES, async (efd, record) => {
    const worker = new Worker(file);
    let seen = 0;
    await new Promise<void>((done) => {
      worker.onmessage = (e: MessageEvent<number>) => {
        record(e.data);
        if (++seen === SAMPLES) done();
      };
      worker.postMessage({ fd: efd.fd, n: SAMPLES });
    });
    worker.terminate();
  });
}

export function baseline(binary: string): number[] {
  const run = Bun.spawnSync([binary, "baseline", String(SAMPLES)]);
  if (run.exitCode !== 0) throw new Error(`baseline failed: ${run.stderr.toString()}`);
  return run.stdout.toString().trim().split("\n").map(Number);
}

/** Compiles the writer + C baseline into `dir`; returns the binary. */
export function buildWakeBinary(dir: string): string {
  const cc = Bun.which("cc") ?? Bun.which("gcc") ?? Bun.which("clang");
  if (!cc) throw new Error("this benchmark needs a C compiler (cc) for the writer and the baseline");
  writeFileSync(join(dir, "wake.c"), C_SOURCE);
  const binary = join(dir, "wake");
  const build = Bun.spawnSync([cc, "-O2", "-pthread", "-o", binary, join(dir, "wake.c")]);
  if (build.exitCode !== 0) throw new Error(`cc failed: ${build.stderr.toString()}`);
  return binary;
}

if (import.meta.main) {
  const dir = mkdtempSync(join(tmpdir(), "bun-vfio-wake-"));
  try {
    const binary = buildWakeBinary(dir);

    const rows: [string, Stats][] = [];
    const c = stats(baseline(binary));
    rows.push(["c-poll (baseline)", c]);
    rows.push(["stream (library)", stats(await viaStream(binary))]);
    rows.push(["worker+postMessage", stats(await viaWorker(binary, dir))]);
    rows.push(["busy-poll tryRead", stats(await viaBusyPoll(binary))]);
    rows.push(["c-poll (again)", stats(baseline(binary))]);

    const fmt = (x: number) => x.toFixed(1).padStart(7);
    console.log(`eventfd wake latency, ${SAMPLES - WARMUP} samples each after ${WARMUP} warm-up; Bun ${Bun.version}, ${navigator.hardwareConcurrency} CPUs`);
    console.log(`${"mechanism".padEnd(22)} ${"median us".padStart(9)} ${"p90 us".padStart(7)} ${"p99 us".padStart(7)}   x C median  x C p99`);
    for (const [name, s] of rows) {
      console.log(`${name.padEnd(22)} ${fmt(s.median).padStart(9)} ${fmt(s.p90)} ${fmt(s.p99)}   ${(s.median / c.median).toFixed(2).padStart(10)} ${(s.p99 / c.p99).toFixed(2).padStart(8)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
