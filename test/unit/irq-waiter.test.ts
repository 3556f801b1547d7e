/**
 * The eventfd waiter on real eventfds on the host (no VFIO needed): the test
 * signals the eventfd itself, from this thread or from another process.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { VfioError } from "../../src/support/errors.ts";
import { CounterChunks } from "../../src/irq/counter-chunks.ts";
import { EventFd } from "../../src/irq/eventfd.ts";
import { EventWaiter } from "../../src/irq/waiter.ts";

const openFds = () => readdirSync("/proc/self/fd").length;
const tick = () => new Promise((r) => setTimeout(r, 5));
const closeReason = { op: "interrupt wait", detail: "the test closed it", hint: "none" };

/** The settled state of a promise after the event loop ran a little. */
async function settled<T>(p: Promise<T>): Promise<"pending" | { value: T } | { error: unknown }> {
  let state: "pending" | { value: T } | { error: unknown } = "pending";
  p.then((value) => (state = { value }), (error) => (state = { error }));
  await tick();
  return state;
}

function pair(label = "test") {
  const efd = new EventFd(label);
  return { efd, waiter: new EventWaiter(efd) };
}

describe("EventFd", () => {
  test("non-blocking reads: 0 when idle, the sum of signals otherwise, and the counter resets", () => {
    using efd = new EventFd("t");
    expect(efd.readNow()).toBe(0);
    efd.signal();
    efd.signal(4);
    expect(efd.readNow()).toBe(5);
    expect(efd.readNow()).toBe(0);
  });

  test("close is idempotent; use after close is a VfioError (ECLOSED)", () => {
    const efd = new EventFd("closed-one");
    efd.close();
    efd.close();
    const err = (() => { try { efd.readNow(); } catch (e) { return e; } })() as VfioError;
    expect(err).toBeInstanceOf(VfioError);
    expect(err.code).toBe("ECLOSED");
    expect(err.path).toBe("closed-one");
    expect(() => efd.signal()).toThrow(VfioError);
  });

  test("signal rejects counts that are not positive integers", () => {
    using efd = new EventFd("t");
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => efd.signal(bad)).toThrow(VfioError);
  });
});

describe("CounterChunks", () => {
  const u64s = (...values: number[]) => new Uint8Array(new BigUint64Array(values.map(BigInt)).buffer);

  test("sums every 8-byte counter in a chunk", () => {
    expect(new CounterChunks().push(u64s(1, 2, 3))).toBe(6);
  });

  test("carries a counter split across chunks", () => {
    const chunks = new CounterChunks();
    const bytes = u64s(7, 0x1_0000_0001);
    expect(chunks.push(bytes.subarray(0, 5))).toBe(0);
    expect(chunks.carried).toBe(5);
    expect(chunks.push(bytes.subarray(5, 11))).toBe(7);
    expect(chunks.push(bytes.subarray(11))).toBe(0x1_0000_0001);
    expect(chunks.carried).toBe(0);
  });
});

describe("EventWaiter", () => {
  test("next() resolves when the eventfd is signalled later, with the count", async () => {
    const { efd, waiter } = pair();
    setTimeout(() => efd.signal(), 10);
    expect(await waiter.next()).toBe(1);
    waiter.close(closeReason);
    efd.close();
  });

  test("next() resolves at once with what is already pending", async () => {
    const { efd, waiter } = pair();
    efd.signal(3);
    expect(await waiter.next()).toBe(3);
    expect(waiter.streaming).toBe(false); // no stream needed
    waiter.close(closeReason);
    efd.close();
  });

  test("interrupts raised while nobody waits coalesce into one count", async () => {
    const { efd, waiter } = pair();
    setTimeout(() => efd.signal(), 5);
    expect(await waiter.next()).toBe(1); // the stream is running now
    for (let i = 0; i < 5; i++) efd.signal();
    await tick();
    expect(await waiter.next()).toBe(5);
    waiter.close(closeReason);
    efd.close();
  });

  test("a signal from another process wakes the waiter", async () => {
    const { efd, waiter } = pair();
    const wake = waiter.next();
    const child = Bun.spawn([process.execPath, "-e", "require('fs').writeSync(3, new Uint8Array(new BigUint64Array([2n]).buffer))"], {
      stdio: ["ignore", "inherit", "inherit", efd.fd],
    });
    expect(await child.exited).toBe(0);
    expect(await wake).toBe(2);
    waiter.close(closeReason);
    efd.close();
  });

  test("tryRead() never waits: 0, then the sum, and it sees counts the stream took but nobody consumed", async () => {
    const { efd, waiter } = pair();
    expect(waiter.tryRead()).toBe(0);
    efd.signal(2);
    expect(waiter.tryRead()).toBe(2);
    setTimeout(() => efd.signal(), 5);
    await waiter.next(); // starts the stream
    efd.signal(4);
    await tick(); // the stream reads it ahead
    expect(waiter.tryRead()).toBe(4);
    expect(waiter.tryRead()).toBe(0);
    waiter.close(closeReason);
    efd.close();
  });

  test("on() handlers see every wake until unsubscribed, and using-disposal unsubscribes", async () => {
    const { efd, waiter } = pair();
    const seen: number[] = [];
    const off = waiter.on((n) => seen.push(n));
    efd.signal(2);
    await tick();
    efd.signal();
    await tick();
    off();
    efd.signal();
    await tick();
    expect(seen).toEqual([2, 1]);
    {
      using _sub = waiter.on((n) => seen.push(n * 100));
      efd.signal();
      await tick();
    }
    efd.signal();
    await tick();
    expect(seen).toEqual([2, 1, 100]);
    waiter.close(closeReason);
    efd.close();
  });

  test("async iteration yields counts and ends when the waiter closes", async () => {
    const { efd, waiter } = pair();
    const got: number[] = [];
    const loop = (async () => {
      for await (const n of waiter) got.push(n);
      return "ended";
    })();
    efd.signal();
    await tick();
    efd.signal(3);
    await tick();
    waiter.close(closeReason);
    efd.close();
    expect(await loop).toBe("ended");
    expect(got).toEqual([1, 3]);
  });

  test("closing while next() is pending rejects it with a VfioError, and nothing hangs or crashes", async () => {
    const { efd, waiter } = pair("pending-one");
    const a = waiter.next();
    const b = waiter.next();
    expect(waiter.waiting).toBe(2);
    expect(await settled(a)).toBe("pending");
    waiter.close({ op: "interrupt wait", detail: "MSI-X was disabled", hint: "Enable it again." });
    efd.close();
    for (const p of [a, b]) {
      const err = await p.then(() => undefined, (e) => e) as VfioError;
      expect(err).toBeInstanceOf(VfioError);
      expect(err.code).toBe("ECLOSED");
      expect(err.path).toBe("pending-one");
      expect(err.message).toContain("MSI-X was disabled");
    }
    expect(waiter.waiting).toBe(0);
    await expect(waiter.next()).rejects.toThrow(VfioError);
    expect(() => waiter.tryRead()).toThrow(VfioError);
    expect(() => waiter.on(() => {})).toThrow(VfioError);
    await tick(); // a cancelled stream must not touch the closed fd (or its reused number) afterwards
  });

  test("a new eventfd that reuses a closed waiter's fd number is not read by the old stream", async () => {
    const { efd, waiter } = pair();
    const pending = waiter.next();
    await tick();
    const number = efd.fd;
    waiter.close(closeReason);
    efd.close();
    await pending.catch(() => {});
    using next = new EventFd("reuse");
    expect(next.fd).toBe(number);
    next.signal(9);
    await tick();
    expect(next.readNow()).toBe(9);
  });

  test("teardown leaks no fds", async () => {
    const before = openFds();
    for (let i = 0; i < 20; i++) {
      const { efd, waiter } = pair();
      const p = waiter.next().catch(() => {});
      if (i % 2) {
        efd.signal();
        await p; // woken, then closed
      }
      waiter.close(closeReason);
      efd.close();
      await p; // rejected by the close when it was still waiting
    }
    await tick();
    expect(openFds()).toBe(before);
  });
});
