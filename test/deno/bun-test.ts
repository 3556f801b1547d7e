/**
 * `bun:test` for Deno's test runner, so the same test files run on both
 * runtimes: deno.json maps the specifier `bun:test` here. Only what the
 * suites use: describe (nested, skipIf), test (a Bun timeout argument is
 * accepted; the guest's overall timeout bounds a run), beforeAll/afterAll/
 * beforeEach/afterEach, and the expect matchers the suites call. It also
 * installs, under Deno only, the few `Bun.*` helpers the suites call
 * (sleep, sleepSync, spawnSync, gc, Glob("*")); the library itself never
 * looks at a `Bun` global (test/unit/layers.test.ts).
 */
import { readdirSync } from "node:fs";

type Fn = () => unknown;

interface Block {
  name: string;
  parent: Block | undefined;
  skip: boolean;
  beforeAll: Fn[];
  afterAll: Fn[];
  beforeEach: Fn[];
  afterEach: Fn[];
  /** Tests in this block and nested blocks, to know when the last one ran. */
  remaining: number;
  started: boolean;
}

const newBlock = (name: string, parent: Block | undefined, skip = false): Block =>
  ({ name, parent, skip: skip || (parent?.skip ?? false), beforeAll: [], afterAll: [], beforeEach: [], afterEach: [], remaining: 0, started: false });

/** One root block per test file: Deno loads every file before running any, so file-level hooks must not mix. */
const fileRoots = new Map<string, Block>();
let current: Block | undefined;

/** The test file calling into the shim (first stack frame outside this module). */
function callerFile(): string {
  const here = import.meta.url;
  for (const line of (new Error().stack ?? "").split("\n").slice(1)) {
    const m = /(file:\/\/[^\s):]+)/.exec(line);
    if (m && m[1] !== here) return m[1]!;
  }
  return "";
}

/** The block new tests and hooks go to: the open describe, else the calling file's root. */
function scope(): Block {
  if (current) return current;
  const file = callerFile();
  let root = fileRoots.get(file);
  if (!root) fileRoots.set(file, (root = newBlock("", undefined)));
  return root;
}

function chain(block: Block): Block[] {
  const out: Block[] = [];
  for (let b: Block | undefined = block; b; b = b.parent) out.unshift(b);
  return out;
}

function fullName(block: Block, name: string): string {
  return [...chain(block).map((b) => b.name).filter(Boolean), name].join(" > ");
}

async function runAll(fns: Fn[]): Promise<void> {
  for (const fn of fns) await fn();
}

function register(name: string, fn: Fn, skip: boolean): void {
  const block = scope();
  const blocks = chain(block);
  const ignore = skip || block.skip;
  if (!ignore) for (const b of blocks) b.remaining++;
  Deno.test({
    name: fullName(block, name),
    ignore,
    sanitizeOps: false,
    sanitizeResources: false,
    sanitizeExit: false,
    async fn() {
      try {
        for (const b of blocks) {
          if (!b.started) {
            b.started = true;
            await runAll(b.beforeAll);
          }
        }
        for (const b of blocks) await runAll(b.beforeEach);
        try {
          await fn();
        } finally {
          for (const b of [...blocks].reverse()) await runAll(b.afterEach);
        }
      } finally {
        for (const b of [...blocks].reverse()) if (--b.remaining === 0) await runAll(b.afterAll);
      }
    },
  });
}

type TestFn = {
  (name: string, fn: Fn, timeoutMs?: number): void;
  skip(name: string, fn: Fn, timeoutMs?: number): void;
  skipIf(cond: unknown): (name: string, fn: Fn, timeoutMs?: number) => void;
  if(cond: unknown): (name: string, fn: Fn, timeoutMs?: number) => void;
};

/** bun:test `test`. */
export const test: TestFn = Object.assign((name: string, fn: Fn) => register(name, fn, false), {
  skip: (name: string, fn: Fn) => register(name, fn, true),
  skipIf: (cond: unknown) => (name: string, fn: Fn) => register(name, fn, Boolean(cond)),
  if: (cond: unknown) => (name: string, fn: Fn) => register(name, fn, !cond),
});
/** bun:test `it` (= test). */
export const it: TestFn = test;

function describeBlock(name: string, body: () => void, skip: boolean): void {
  const parent = current;
  current = newBlock(name, scope(), skip);
  try {
    body();
  } finally {
    current = parent;
  }
}

type DescribeFn = {
  (name: string, body: () => void): void;
  skip(name: string, body: () => void): void;
  skipIf(cond: unknown): (name: string, body: () => void) => void;
  if(cond: unknown): (name: string, body: () => void) => void;
};

/** bun:test `describe`. */
export const describe: DescribeFn = Object.assign((name: string, body: () => void) => describeBlock(name, body, false), {
  skip: (name: string, body: () => void) => describeBlock(name, body, true),
  skipIf: (cond: unknown) => (name: string, body: () => void) => describeBlock(name, body, Boolean(cond)),
  if: (cond: unknown) => (name: string, body: () => void) => describeBlock(name, body, !cond),
});

/** bun:test hooks: scoped to the enclosing describe (or the file). */
export const beforeAll = (fn: Fn): void => void scope().beforeAll.push(fn);
export const afterAll = (fn: Fn): void => void scope().afterAll.push(fn);
export const beforeEach = (fn: Fn): void => void scope().beforeEach.push(fn);
export const afterEach = (fn: Fn): void => void scope().afterEach.push(fn);

// ---- expect ----

function show(v: unknown): string {
  try {
    return Deno.inspect(v, { depth: 4 });
  } catch {
    return String(v);
  }
}

/** expect.any(Ctor) / expect.anything(): matches inside toEqual and toMatchObject. */
class Asymmetric {
  constructor(readonly test: (v: unknown) => boolean, readonly label: string) {}
}

/** Bun's toEqual: recursive equality; object properties whose value is undefined are ignored. */
function equals(a: unknown, b: unknown): boolean {
  if (b instanceof Asymmetric) return b.test(a);
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (a instanceof Date) return a.getTime() === (b as Date).getTime();
  if (a instanceof RegExp) return String(a) === String(b);
  if (ArrayBuffer.isView(a)) {
    const x = a as unknown as ArrayLike<unknown>, y = b as unknown as ArrayLike<unknown>;
    return x.length === y.length && Array.from(x).every((v, i) => Object.is(v, y[i]));
  }
  if (a instanceof Map) {
    const m = b as Map<unknown, unknown>;
    return a.size === m.size && [...a].every(([k, v]) => m.has(k) && equals(v, m.get(k)));
  }
  if (a instanceof Set) {
    const s = b as Set<unknown>;
    return a.size === s.size && [...a].every((v) => s.has(v));
  }
  if (Array.isArray(a)) {
    const y = b as unknown[];
    return a.length === y.length && a.every((v, i) => equals(v, y[i]));
  }
  const keys = (o: object) => Object.keys(o).filter((k) => (o as Record<string, unknown>)[k] !== undefined);
  const ka = keys(a), kb = keys(b);
  return ka.length === kb.length && ka.every((k) => equals((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** toMatchObject: every property of `expected` is in `actual` and matches, recursively. */
function matchesObject(actual: unknown, expected: unknown): boolean {
  if (expected instanceof Asymmetric) return expected.test(actual);
  if (typeof expected !== "object" || expected === null) return equals(actual, expected);
  if (typeof actual !== "object" || actual === null) return false;
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && actual.length === expected.length && expected.every((v, i) => matchesObject(actual[i], v));
  }
  return Object.entries(expected).every(([k, v]) => k in (actual as object) && matchesObject((actual as Record<string, unknown>)[k], v));
}

function thrownBy(fn: unknown): { threw: boolean; error?: unknown } {
  if (typeof fn !== "function") throw new TypeError("toThrow: expect() was not given a function");
  try {
    fn();
  } catch (error) {
    return { threw: true, error };
  }
  return { threw: false };
}

function throwMatches(error: unknown, expected: unknown): boolean {
  if (expected === undefined) return true;
  const message = error instanceof Error ? error.message : String(error);
  if (typeof expected === "string") return message.includes(expected);
  if (expected instanceof RegExp) return expected.test(message);
  if (typeof expected === "function") return error instanceof expected;
  if (typeof expected === "object" && expected) return matchesObject(error, expected);
  return false;
}

class Matchers {
  constructor(private readonly actual: unknown, private readonly negated: boolean) {}

  get not(): Matchers {
    return new Matchers(this.actual, !this.negated);
  }

  #assert(pass: boolean, what: string, expected?: unknown): void {
    if (pass !== this.negated) return;
    const tail = arguments.length > 2 ? ` ${show(expected)}` : "";
    throw new Error(`expect(${show(this.actual)}).${this.negated ? "not." : ""}${what}${tail} failed`);
  }

  toBe(expected: unknown): void {
    this.#assert(Object.is(this.actual, expected), "toBe", expected);
  }
  toEqual(expected: unknown): void {
    this.#assert(equals(this.actual, expected), "toEqual", expected);
  }
  toStrictEqual(expected: unknown): void {
    this.#assert(equals(this.actual, expected), "toStrictEqual", expected);
  }
  toBeDefined(): void {
    this.#assert(this.actual !== undefined, "toBeDefined");
  }
  toBeUndefined(): void {
    this.#assert(this.actual === undefined, "toBeUndefined");
  }
  toBeNull(): void {
    this.#assert(this.actual === null, "toBeNull");
  }
  toBeTruthy(): void {
    this.#assert(Boolean(this.actual), "toBeTruthy");
  }
  toBeFalsy(): void {
    this.#assert(!this.actual, "toBeFalsy");
  }
  toBeGreaterThan(n: number | bigint): void {
    this.#assert((this.actual as number) > n, "toBeGreaterThan", n);
  }
  toBeGreaterThanOrEqual(n: number | bigint): void {
    this.#assert((this.actual as number) >= n, "toBeGreaterThanOrEqual", n);
  }
  toBeLessThan(n: number | bigint): void {
    this.#assert((this.actual as number) < n, "toBeLessThan", n);
  }
  toBeLessThanOrEqual(n: number | bigint): void {
    this.#assert((this.actual as number) <= n, "toBeLessThanOrEqual", n);
  }
  toBeInstanceOf(cls: abstract new (...args: never[]) => unknown): void {
    this.#assert(this.actual instanceof cls, "toBeInstanceOf", cls.name);
  }
  toContain(item: unknown): void {
    const a = this.actual;
    const pass = typeof a === "string" ? a.includes(String(item)) : Array.isArray(a) || ArrayBuffer.isView(a) ? Array.from(a as ArrayLike<unknown>).some((v) => Object.is(v, item)) : a instanceof Set ? a.has(item) : false;
    this.#assert(pass, "toContain", item);
  }
  toHaveLength(n: number): void {
    this.#assert((this.actual as { length?: number })?.length === n, "toHaveLength", n);
  }
  toMatch(pattern: RegExp | string): void {
    const s = String(this.actual);
    this.#assert(typeof pattern === "string" ? s.includes(pattern) : pattern.test(s), "toMatch", pattern);
  }
  toMatchObject(expected: object): void {
    this.#assert(matchesObject(this.actual, expected), "toMatchObject", expected);
  }
  toThrow(expected?: unknown): void {
    const { threw, error } = thrownBy(this.actual);
    this.#assert(threw && throwMatches(error, expected), "toThrow", expected);
  }
}

/** bun:test `expect`, with `expect.any(Ctor)` and `expect.anything()`. */
export const expect = Object.assign((actual: unknown): Matchers => new Matchers(actual, false), {
  any: (ctor: unknown) => {
    const primitive = new Map<unknown, string>([[String, "string"], [Number, "number"], [BigInt, "bigint"], [Boolean, "boolean"]]).get(ctor);
    return new Asymmetric((v) => (primitive ? typeof v === primitive : v instanceof (ctor as new () => unknown)), "any");
  },
  anything: () => new Asymmetric((v) => v !== undefined && v !== null, "anything()"),
});

// ---- the Bun helpers the suites call, for Deno ----

const decoder = new TextDecoder();

/** A Bun-like `spawnSync` result: stdout/stderr with toString(). */
function spawnSync(argv: string[], options: { cwd?: string; env?: Record<string, string | undefined> } = {}) {
  const [cmd, ...args] = argv;
  const env = options.env ? Object.fromEntries(Object.entries(options.env).filter((e): e is [string, string] => e[1] !== undefined)) : undefined;
  const out = new Deno.Command(cmd!, { args, cwd: options.cwd, env, clearEnv: env !== undefined, stdin: "null", stdout: "piped", stderr: "piped" }).outputSync();
  const text = (b: Uint8Array) => Object.assign(b, { toString: () => decoder.decode(b) });
  return { exitCode: out.code, success: out.success, stdout: text(out.stdout), stderr: text(out.stderr) };
}

class Glob {
  constructor(pattern: string) {
    if (pattern !== "*") throw new Error(`bun:test shim: Bun.Glob supports only "*", not ${pattern}`);
  }
  *scanSync(options: { cwd: string; onlyFiles?: boolean }): Generator<string> {
    for (const entry of readdirSync(options.cwd, { withFileTypes: true })) if (!options.onlyFiles || entry.isFile()) yield entry.name;
  }
}

const g = globalThis as { Bun?: unknown; gc?: () => void };
if (typeof Deno !== "undefined" && g.Bun === undefined) {
  g.Bun = {
    sleep: (ms: number) => new Promise((resolve) => setTimeout(resolve, ms)),
    sleepSync: (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms),
    spawnSync: (argv: string[], options?: { cwd?: string; env?: Record<string, string | undefined> }) => spawnSync(argv, options),
    gc: () => {
      if (!g.gc) throw new Error("bun:test shim: Bun.gc needs deno test --v8-flags=--expose-gc");
      g.gc();
    },
    Glob,
  };
}
