/**
 * Ordered MMIO stubs: the exact instructions per architecture (pinned
 * bytes, with the assembly they encode), and the host's stubs executed on an
 * anonymous mapping. In the arm64 guest this same file executes the arm64
 * stubs for real (every arm64 profile runs it from test/vm/arm64-all).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { FFIType } from "bun:ffi";
import { MappedMemory } from "../../src/index.ts";
import { MAP_ANONYMOUS, MAP_PRIVATE } from "../../src/sys/constants.ts";
import { createOrderedMmio, loadMachineCode } from "../../src/sys/bun-ordered-mmio.ts";
import { layoutStubs, stubCode } from "../../src/sys/machine-code.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("arm64 stubs (AAPCS64: x0 address, x1 offset, w2/x2 value)", () => {
  const a = stubCode("arm64");
  test("ordered store = dmb oshst; str; ret (Linux writel)", () => {
    expect(hex(a.store8)).toBe("bf3203d5" + "02682138" + "c0035fd6"); // dmb oshst; strb w2,[x0,x1]; ret
    expect(hex(a.store16)).toBe("bf3203d5" + "02682178" + "c0035fd6"); // strh w2,[x0,x1]
    expect(hex(a.store32)).toBe("bf3203d5" + "026821b8" + "c0035fd6"); // str w2,[x0,x1]
    expect(hex(a.store64)).toBe("bf3203d5" + "026821f8" + "c0035fd6"); // str x2,[x0,x1]
  });
  test("relaxed store = str; ret", () => {
    expect(hex(a.store32Relaxed)).toBe("026821b8" + "c0035fd6");
    expect(hex(a.store64Relaxed)).toBe("026821f8" + "c0035fd6");
  });
  test("ordered load = ldr; dmb oshld; ret (Linux readl)", () => {
    expect(hex(a.load8)).toBe("00686138" + "bf3103d5" + "c0035fd6"); // ldrb w0,[x0,x1]; dmb oshld
    expect(hex(a.load16)).toBe("00686178" + "bf3103d5" + "c0035fd6"); // ldrh w0,[x0,x1]
    expect(hex(a.load32)).toBe("006861b8" + "bf3103d5" + "c0035fd6"); // ldr w0,[x0,x1]
    expect(hex(a.load64)).toBe("006861f8" + "bf3103d5" + "c0035fd6"); // ldr x0,[x0,x1]
    expect(hex(a.load32Relaxed)).toBe("006861b8" + "c0035fd6");
  });
  test("barriers: wmb = dsb st, rmb = dsb ld, mb = dsb sy", () => {
    expect(hex(a.wmb)).toBe("9f3e03d5c0035fd6");
    expect(hex(a.rmb)).toBe("9f3d03d5c0035fd6");
    expect(hex(a.mb)).toBe("9f3f03d5c0035fd6");
  });
});

describe("x86-64 stubs (SysV: rdi address, rsi offset, edx/rdx value)", () => {
  const x = stubCode("x64");
  test("one mov of the exact width at [rdi+rsi]; ordered = relaxed under TSO", () => {
    expect(hex(x.store8)).toBe("881437c3"); // mov byte [rdi+rsi], dl; ret
    expect(hex(x.store16)).toBe("66891437c3"); // mov word [rdi+rsi], dx
    expect(hex(x.store32)).toBe("891437c3"); // mov dword [rdi+rsi], edx
    expect(hex(x.store64)).toBe("48891437c3"); // mov qword [rdi+rsi], rdx
    expect(hex(x.load8)).toBe("0fb60437c3"); // movzx eax, byte [rdi+rsi]
    expect(hex(x.load16)).toBe("0fb70437c3"); // movzx eax, word [rdi+rsi]
    expect(hex(x.load32)).toBe("8b0437c3"); // mov eax, [rdi+rsi]
    expect(hex(x.load64)).toBe("488b0437c3"); // mov rax, [rdi+rsi]
    expect(x.store32Relaxed).toEqual(x.store32);
  });
  test("barriers: sfence, lfence, mfence", () => {
    expect(hex(x.wmb)).toBe("0faef8c3");
    expect(hex(x.rmb)).toBe("0faee8c3");
    expect(hex(x.mb)).toBe("0faef0c3");
  });
  test("layout: 16-byte aligned entries padded with int3", () => {
    const { code, offsets } = layoutStubs("x64");
    expect(offsets.store16).toBe(16);
    expect(code[4]).toBe(0xcc);
    expect(() => stubCode("ppc64")).toThrow(/x64 and arm64 only/);
  });
});

describe(`the ${process.arch} stubs, executed`, () => {
  const o = createOrderedMmio();
  const mem = MappedMemory.mapAnonymous(65536, MAP_PRIVATE | MAP_ANONYMOUS);
  const a = Number(mem.address);
  afterAll(() => mem.close());

  test("the code page holds exactly this architecture's layout", () => {
    expect(o.arch).toBe(process.arch);
    expect(o.code).toEqual(layoutStubs(process.arch).code);
  });

  test("values round-trip at each width, ordered and relaxed, at the exact offset and width", () => {
    mem.bytes.fill(0);
    o.store8(a, 1, 0xab);
    o.store16(a, 2, 0xbeef);
    o.store32(a, 4, 0xdeadbeef);
    o.store64(a, 8, 0x0123456789abcdefn);
    expect(hex(mem.bytes.subarray(0, 16))).toBe("00abefbeefbeaddeefcdab8967452301");
    expect([o.load8(a, 1), o.load16(a, 2), o.load32(a, 4), o.load64(a, 8)]).toEqual([0xab, 0xbeef, 0xdeadbeef, 0x0123456789abcdefn]);
    o.store8Relaxed(a, 16, 0x5a);
    o.store16Relaxed(a, 18, 0x1234);
    o.store32Relaxed(a, 20, 0xffffffff);
    o.store64Relaxed(a, 24, 0xffffffffffffffffn);
    expect([o.load8Relaxed(a, 16), o.load16Relaxed(a, 18), o.load32Relaxed(a, 20), o.load64Relaxed(a, 24)]).toEqual([0x5a, 0x1234, 0xffffffff, 0xffffffffffffffffn]);
    expect(mem.bytes[17]).toBe(0); // the 8-bit store touched one byte
    o.wmb();
    o.rmb();
    o.mb();
  });

  test("two identical calls are two executions, even in a JIT-hot loop", () => {
    // A test-only stub that adds its value to [address+offset]: if the JIT merged or dropped an identical call, the sum would be short.
    const add = process.arch === "arm64"
      ? new Uint8Array([0x03, 0x68, 0x61, 0xb8, 0x63, 0x00, 0x02, 0x0b, 0x03, 0x68, 0x21, 0xb8, 0xc0, 0x03, 0x5f, 0xd6]) // ldr w3,[x0,x1]; add w3,w3,w2; str w3,[x0,x1]; ret
      : new Uint8Array([0x01, 0x14, 0x37, 0xc3]); // add [rdi+rsi], edx; ret
    const { fns } = loadMachineCode(add, { add: [0, { args: [FFIType.ptr, FFIType.u64, FFIType.u32], returns: FFIType.void }] });
    mem.bytes.fill(0, 32, 36);
    const n = 50_000;
    for (let i = 0; i < n; i++) {
      fns.add(a, 32, 1);
      fns.add(a, 32, 1);
    }
    expect(o.load32(a, 32)).toBe(2 * n);
  });
});
