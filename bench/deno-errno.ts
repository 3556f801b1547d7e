/**
 * How often an error code is wrong, per path: N fresh processes per mode,
 * each making CALLS failing calls with known errno (bench/errno-child.ts).
 * Modes: Deno's default (kernel entries from the memfd stub library), Deno
 * with BUN_VFIO_DENO_STUBS=page (kernel entries through UnsafeFnPointer),
 * Deno with BUN_VFIO_DENO_ERRNO=libc (libc + `__errno_location()`), and Bun
 * (bun:ffi + `__errno_location()`). The modes alternate process by process,
 * so all see the same load.
 *
 *   deno run -A bench/deno-errno.ts [processes=60] [calls=300]
 */
const processes = Number(Deno.args[0] ?? 60);
const calls = Number(Deno.args[1] ?? 300);
const child = new URL("./errno-child.ts", import.meta.url).pathname;
const bun = new URL("../node_modules/.bin/bun", import.meta.url).pathname;
const MODES = {
  "deno, stub library": { argv: [Deno.execPath(), "run", "-A", child], env: {} },
  "deno, stub page": { argv: [Deno.execPath(), "run", "-A", child], env: { BUN_VFIO_DENO_STUBS: "page" } },
  "deno, libc errno": { argv: [Deno.execPath(), "run", "-A", child], env: { BUN_VFIO_DENO_ERRNO: "libc" } },
  "bun, libc errno": { argv: [bun, child], env: {} },
} as const;
type Mode = keyof typeof MODES;
const tally = Object.fromEntries(Object.keys(MODES).map((m) => [m, { badProcesses: 0, badCalls: 0, firstBad: [] as number[], byKind: {} as Record<string, number> }]));
const t0 = performance.now();

for (let p = 0; p < processes; p++) {
  for (const mode of Object.keys(MODES) as Mode[]) {
    const { argv, env } = MODES[mode];
    const out = new Deno.Command(argv[0], { args: [...argv.slice(1), String(calls)], env, stdout: "piped", stderr: "piped" }).outputSync();
    if (!out.success) throw new Error(`${mode}: child failed: ${new TextDecoder().decode(out.stderr)}`);
    const { wrong } = JSON.parse(new TextDecoder().decode(out.stdout)) as { wrong: { i: number; expected: number; got: number }[] };
    const t = tally[mode]!;
    if (!wrong.length) continue;
    t.badProcesses++;
    t.badCalls += wrong.length;
    t.firstBad.push(wrong[0]!.i);
    for (const w of wrong) t.byKind[`${w.expected}->${w.got}`] = (t.byKind[`${w.expected}->${w.got}`] ?? 0) + 1;
  }
}
for (const mode of Object.keys(MODES)) {
  const t = tally[mode]!;
  console.log(`${mode.padEnd(18)}: ${t.badProcesses}/${processes} processes with a wrong errno, ${t.badCalls} of ${processes * calls} calls${t.badCalls ? `; first wrong call index ${t.firstBad.join(",")}; expected->got ${JSON.stringify(t.byKind)}` : ""}`);
}
console.log(`${processes} processes x ${calls} calls per mode, ${((performance.now() - t0) / 1000).toFixed(0)} s, Deno ${Deno.version.deno}, ${Deno.build.arch}`);
