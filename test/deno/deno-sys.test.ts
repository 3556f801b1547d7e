/**
 * The Deno Sys (src/sys/deno.ts) on real kernel objects: files, eventfds
 * and anonymous mmap. Expected values come from the kernel's own views
 * (/proc/self/maps, /proc/self/fd, errno numbers of the uapi headers), not
 * from the code under test. Runs under Deno only: `deno test -A test/deno`.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { sys } from "../../src/sys/runtime.ts";
import { denoErrnoSource, denoStubs } from "../../src/sys/deno.ts";

const ENOENT = 2, EBADF = 9, EAGAIN = 11, ENOTTY = 25;
const O_RDWR = 2, O_CLOEXEC = 0o2000000, EFD_NONBLOCK = 0o4000;
const TCGETS = 0x5401;
const PROT_RW = 3, MAP_PRIVATE_ANON = 0x22, MAP_SHARED = 1;

/** What fd `n` refers to, from /proc (readlink opens no fd that could reuse the number). */
const fdTarget = (n: number): string | undefined => {
  try {
    return Deno.readLinkSync(`/proc/self/fd/${n}`);
  } catch {
    return undefined;
  }
};
const mapped = (address: bigint) => readFileSync("/proc/self/maps", "utf8").split("\n").some((l) => l.startsWith(`${address.toString(16)}-`));
const u64 = (n: bigint) => new Uint8Array(new BigUint64Array([n]).buffer);

describe("deno sys: system calls", () => {
  test("is the Deno implementation, with errors from the kernel's return values", () => {
    expect(sys().name).toBe("deno");
    expect(sys().arch).toBe(Deno.build.arch === "x86_64" ? "x64" : "arm64");
    expect(denoErrnoSource()).toBe("kernel");
  });

  test("open/close: a new fd appears in /proc/self/fd and goes away; a missing path is -ENOENT", () => {
    const fd = sys().open("/dev/null", O_RDWR | O_CLOEXEC);
    expect(fd).toBeGreaterThan(2);
    expect(fdTarget(fd)).toBe("/dev/null");
    expect(sys().close(fd)).toBe(0);
    expect(fdTarget(fd)).toBeUndefined();
    expect(sys().open("/nonexistent/bun-vfio", O_RDWR)).toBe(-ENOENT);
    expect(sys().close(fd)).toBe(-EBADF);
  });

  test("ioctl with a buffer and with an integer: a terminal ioctl on /dev/null is -ENOTTY both ways, 1000 times", () => {
    const fd = sys().open("/dev/null", O_RDWR | O_CLOEXEC);
    const errors = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      errors.add(sys().ioctl(fd, TCGETS, new Uint8Array(64)));
      errors.add(sys().ioctl(fd, TCGETS, 0));
    }
    expect([...errors]).toEqual([-ENOTTY]);
    sys().close(fd);
  });

  test("pread/pwrite round-trip through a temp file at a 64-bit offset", () => {
    const path = Deno.makeTempFileSync();
    const fd = sys().open(path, O_RDWR | O_CLOEXEC);
    const data = new TextEncoder().encode("bun-vfio");
    expect(sys().pwrite(fd, data, data.length, 5_000_000_000n)).toBe(data.length);
    expect(Deno.statSync(path).size).toBe(5_000_000_000 + data.length);
    const back = new Uint8Array(8);
    expect(sys().pread(fd, back, 8, 5_000_000_000n)).toBe(8);
    expect(new TextDecoder().decode(back)).toBe("bun-vfio");
    sys().close(fd);
    Deno.removeSync(path);
  });

  test("strerror, sysconf and getrlimit agree with the kernel", () => {
    expect(sys().strerror(ENOTTY)).toBe("Inappropriate ioctl for device");
    const pageKb = readFileSync("/proc/self/smaps", "utf8").match(/^KernelPageSize:\s+(\d+) kB/m)![1];
    expect(sys().sysconf(30)).toBe(Number(pageKb) * 1024);
    const line = readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max locked memory"))!;
    const [soft, hard] = line.split(/\s{2,}/).slice(1, 3).map((v) => (v === "unlimited" ? 2n ** 64n - 1n : BigInt(v)));
    expect(sys().getrlimit(8)).toEqual({ soft, hard });
  });
});

describe("deno sys: where errors come from", () => {
  const run = (env: Record<string, string>) => {
    const out = new Deno.Command(Deno.execPath(), { args: ["run", "-A", new URL("./fixtures/errno-source.ts", import.meta.url).pathname], env, stdout: "piped", stderr: "piped" }).outputSync();
    expect(new TextDecoder().decode(out.stderr)).toBe("");
    return JSON.parse(new TextDecoder().decode(out.stdout));
  };

  test("by default the kernel entries come from the stub library: a memfd mapped read+execute (and read+write for its dynamic section), exact errors", () => {
    const r = run({});
    expect(r).toMatchObject({ source: "kernel", stubs: "library", open: -ENOENT, mmap: { errno: EBADF } });
    // /proc/self/maps, the kernel's view: the library's text is r-xp, never writable and executable at once.
    expect(r.library).toContain("r-xp");
    expect(r.library.filter((perms: string) => perms.includes("w") && perms.includes("x"))).toEqual([]);
  });

  test("BUN_VFIO_DENO_STUBS=page uses the UnsafeFnPointer page instead: no memfd mapped, errors still exact", () => {
    expect(run({ BUN_VFIO_DENO_STUBS: "page" })).toEqual({ source: "kernel", stubs: "page", open: -ENOENT, mmap: { errno: EBADF }, library: [] });
  });

  test("BUN_VFIO_DENO_ERRNO=libc switches to libc + errno (the fallback), which still reports plain errors", () => {
    // The fallback reads __errno_location() after the call; on Deno that value can be overwritten by the runtime's own
    // failing system calls (reproduced in CI: this mmap of a closed fd reported ENOENT instead of EBADF; strace showed
    // the runtime's openat of /sys/devices/system/cpu/cpu0/tsc_freq_khz in between). So only the kernel paths are
    // asserted exact; the fallback still reports that each call failed.
    const fallback = run({ BUN_VFIO_DENO_ERRNO: "libc" });
    expect(fallback.source).toBe("errno");
    expect(fallback.stubs).toBe("none");
    expect(fallback.library).toEqual([]);
    expect(fallback.open).toBeLessThan(0);
    expect(fallback.mmap.errno).toBeGreaterThan(0);
  });
});

describe("deno sys: memory", () => {
  test("anonymous mmap shows in /proc/self/maps; exact-width stores and loads agree with the byte view", () => {
    const got = sys().mmap(8192, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
    expect(got.errno).toBeUndefined();
    const address = sys().address(got.pointer!);
    expect(mapped(address)).toBe(true);
    const v = sys().view(got.pointer!, 8192);
    v.store8(1, 0xa5);
    v.store16(2, 0xbeef);
    v.store32(4, 0xdeadbeef);
    v.store64(8, 0x0102030405060708n);
    expect([...v.bytes.subarray(0, 16)]).toEqual([0, 0xa5, 0xef, 0xbe, 0xef, 0xbe, 0xad, 0xde, 8, 7, 6, 5, 4, 3, 2, 1]);
    v.bytes[8190] = 0x12;
    v.bytes[8191] = 0x34;
    expect(v.load8(1)).toBe(0xa5);
    expect(v.load16(8190)).toBe(0x3412);
    expect(v.load32(4)).toBe(0xdeadbeef);
    expect(v.load64(8)).toBe(0x0102030405060708n);
    const bytes = v.bytes, words = new Uint32Array(bytes.buffer);
    v.release();
    v.release();
    expect(bytes.byteLength).toBe(0);
    expect(words[1]).toBeUndefined();
    expect(() => v.load32(4)).toThrow(RangeError);
    expect(sys().munmap(got.pointer!, 8192)).toBe(0);
    expect(mapped(address)).toBe(false);
  });

  test("mmap of an fd that is not open is EBADF (MAP_FAILED detected)", () => {
    const fd = 900;
    expect(fdTarget(fd)).toBeUndefined();
    expect(sys().mmap(4096, PROT_RW, MAP_SHARED, fd, 0)).toEqual({ errno: EBADF });
  });

  test("mprotect and munmap of an unmapped range: munmap succeeds, mprotect is -ENOMEM", () => {
    const got = sys().mmap(4096, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
    expect(sys().munmap(got.pointer!, 4096)).toBe(0);
    expect(sys().mprotect(got.pointer!, 4096, PROT_RW)).toBe(-12);
  });
});

describe("deno sys: ordered accessors (the stub library's machine code)", () => {
  test("ordered and relaxed loads and stores hit the exact bytes at each width; barriers execute; a released view refuses", () => {
    expect(denoStubs()).toBe("library");
    const got = sys().mmap(4096, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
    const v = sys().view(got.pointer!, 4096);
    const o = v.ordered;
    o.store8(4001, 0xa5);
    o.store16(4002, 0xbeef);
    o.store32(4004, 0xdeadbeef);
    o.store64(4008, 0x0102030405060708n);
    o.store32Relaxed(16, 0x11223344);
    o.store64Relaxed(24, 0xfffffffffffffffen);
    expect([...v.bytes.subarray(4000, 4016)]).toEqual([0, 0xa5, 0xef, 0xbe, 0xef, 0xbe, 0xad, 0xde, 8, 7, 6, 5, 4, 3, 2, 1]);
    expect([...v.bytes.subarray(16, 20)]).toEqual([0x44, 0x33, 0x22, 0x11]);
    expect([...v.bytes.subarray(24, 32)]).toEqual([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    v.bytes.set([0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0], 4088);
    expect([o.load8(4088), o.load16(4088), o.load32(4088), o.load64(4088)]).toEqual([0x12, 0x3412, 0x78563412, 0xf0debc9a78563412n]);
    expect([v.load8(4089), v.load16(4090), v.load32(4092), v.load64(4088)]).toEqual([0x34, 0x7856, 0xf0debc9a, 0xf0debc9a78563412n]);
    for (const kind of ["wmb", "rmb", "mb"] as const) sys().barrier(kind);
    v.release();
    expect(() => o.load32(0)).toThrow(RangeError);
    expect(() => o.store32(0, 1)).toThrow(RangeError);
    expect(sys().munmap(got.pointer!, 4096)).toBe(0);
  });
});

describe("deno sys: eventfd streams", () => {
  test("eventfd: an empty non-blocking read is -EAGAIN; a written count reads back", () => {
    const fd = sys().eventfd(0, EFD_NONBLOCK | O_CLOEXEC);
    expect(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8")).toContain("eventfd-count:");
    const buf = new Uint8Array(8);
    expect(sys().read(fd, buf, 8)).toBe(-EAGAIN);
    expect(sys().write(fd, u64(7n), 8)).toBe(8);
    expect(sys().pollOne(fd, 1, 0)).toBe(1);
    expect(sys().read(fd, buf, 8)).toBe(8);
    expect(new BigUint64Array(buf.buffer)[0]).toBe(7n);
    sys().close(fd);
  });

  test("a pending stream read wakes on a write from a timer; two streams on two eventfds each get their own count", async () => {
    const a = sys().eventfd(0, EFD_NONBLOCK | O_CLOEXEC), b = sys().eventfd(0, EFD_NONBLOCK | O_CLOEXEC);
    const sa = sys().stream(a), sb = sys().stream(b);
    const ra = sa.read(), rb = sb.read();
    setTimeout(() => sys().write(b, u64(5n), 8), 5);
    setTimeout(() => sys().write(a, u64(3n), 8), 10);
    const [ga, gb] = await Promise.all([ra, rb]);
    expect(new BigUint64Array(ga!.slice().buffer)[0]).toBe(3n);
    expect(new BigUint64Array(gb!.slice().buffer)[0]).toBe(5n);
    sa.cancel();
    sb.cancel();
    sys().close(a);
    sys().close(b);
  });

  test("cancel() settles a pending read with undefined; later reads are undefined too", async () => {
    const fd = sys().eventfd(0, EFD_NONBLOCK | O_CLOEXEC);
    const s = sys().stream(fd);
    const pending = s.read();
    setTimeout(() => s.cancel(), 5);
    expect(await pending).toBeUndefined();
    expect(await s.read()).toBeUndefined();
    sys().close(fd);
  });

  test("a process whose only stream was cancelled exits by itself (no FFI call left pending)", () => {
    const out = new Deno.Command(Deno.execPath(), { args: ["run", "-A", new URL("./fixtures/cancel-then-exit.ts", import.meta.url).pathname], cwd: Deno.cwd(), stdout: "piped", stderr: "piped" }).outputSync();
    expect({ code: out.code, stdout: new TextDecoder().decode(out.stdout), stderr: new TextDecoder().decode(out.stderr) }).toEqual({ code: 0, stdout: "woken 1\ncancelled\n", stderr: "" });
  });
});
