/**
 * Input checks at the public boundary: every bad value becomes a VfioError
 * (EINVAL) naming the operation, the argument and what is accepted, before
 * any system call is made. Values are never coerced.
 */
import { invalidArgument } from "./errors.ts";
import { show } from "./format.ts";

/** 2^64: one past the largest u64. */
export const U64_LIMIT = 1n << 64n;

/** An integer in [min, max] (a JS number), else EINVAL. */
export function intArg(op: string, name: string, v: unknown, min: number, max: number, path?: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw invalidArgument(op, `${name} ${show(v)} is not an integer from ${min} to ${max}`, `Pass ${name} as a number in that range.`, path);
  }
  return v;
}

/** A C `u32`. */
export function u32Arg(op: string, name: string, v: unknown, path?: string): number {
  return intArg(op, name, v, 0, 0xffff_ffff, path);
}

/**
 * A C `u64` given as a bigint, or as a number when it is a safe integer.
 * Never wraps: `2n ** 64n + x` is refused, not taken as `x`.
 */
export function u64Arg(op: string, name: string, v: unknown, path?: string): bigint {
  if (typeof v === "bigint" && v >= 0n && v < U64_LIMIT) return v;
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  throw invalidArgument(op, `${name} ${show(v)} is not an unsigned 64-bit integer`, `Pass ${name} as a bigint from 0n to 2n ** 64n - 1n (or a safe integer number).`, path);
}

/**
 * A register value of `width` bytes (1, 2 or 4) as a number: unsigned, or
 * the signed form JS bit operations produce (`x | 0x80000000` is negative).
 */
export function registerValue(op: string, v: unknown, width: 1 | 2 | 4, path?: string): number {
  const bits = width * 8;
  const max = 2 ** bits - 1;
  const min = -(2 ** (bits - 1));
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw invalidArgument(op, `value ${show(v)} does not fit ${bits} bits`, `Write an integer from 0 to 0x${max.toString(16)} (or its signed ${bits}-bit form).`, path);
  }
  return v;
}

/** A 64-bit register value as a bigint (unsigned, or signed 64-bit form). */
export function registerValue64(op: string, v: unknown, path?: string): bigint {
  if (typeof v !== "bigint" || v < -(1n << 63n) || v >= U64_LIMIT) {
    throw invalidArgument(op, `value ${show(v)} is not a 64-bit bigint`, "Write a bigint from 0n to 2n ** 64n - 1n (write64 takes a bigint, like read64 returns).", path);
  }
  return v;
}

/** A function (a handler), else EINVAL now rather than a TypeError later. */
export function functionArg<F extends (...args: never[]) => unknown>(op: string, name: string, v: unknown, path?: string): F {
  if (typeof v !== "function") throw invalidArgument(op, `${name} is ${show(v)}, not a function`, `Pass a function as ${name}.`, path);
  return v as F;
}

/** An options object: `undefined` means `{}`; anything that is not a plain object is EINVAL. */
export function optionsArg<T extends object>(op: string, v: T | undefined, path?: string): Partial<T> {
  if (v === undefined) return {};
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw invalidArgument(op, `options ${show(v)} is not an object`, "Pass an options object, or nothing.", path);
  }
  return v;
}

/** One of `allowed`, else EINVAL listing them. */
export function oneOf<T extends string>(op: string, name: string, v: unknown, allowed: readonly T[], path?: string): T {
  if (typeof v === "string" && (allowed as readonly string[]).includes(v)) return v as T;
  throw invalidArgument(op, `${name} ${show(v)} is unknown`, `Use one of ${allowed.map((a) => `"${a}"`).join(", ")}.`, path);
}
