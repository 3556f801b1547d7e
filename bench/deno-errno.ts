/**
 * How often an error code is wrong on Deno: N fresh Deno processes each make
 * CALLS failing calls with known errno (bench/deno-errno-child.ts), once
 * with errors from the kernel's return values (raw entries, the default)
 * and once with libc + `__errno_location()` (BUN_VFIO_DENO_ERRNO=libc).
 * The modes alternate process by process, so both see the same load.
 *
 *   deno run -A bench/deno-errno.ts [processes=60] [calls=300]
 */
const processes = Number(Deno.args[0] ?? 60);
const calls = Number(Deno.args[1] ?? 300);
const child = new URL("./deno-errno-child.ts", import.meta.url).pathname;
const MODES = ["kernel", "libc"] as const;
const tally = Object.fromEntries(MODES.map((m) => [m, { badProcesses: 0, badCalls: 0, firstBad: [] as number[], samples: [] as string[], byKind: {} as Record<string, number> }]));
const t0 = performance.now();

for (let p = 0; p < processes; p++) {
  for (const mode of MODES) {
    const env: Record<string, string> = mode === "libc" ? { BUN_VFIO_DENO_ERRNO: "libc" } : {};
    const out = new Deno.Command(Deno.execPath(), { args: ["run", "-A", child, String(calls)], env, stdout: "piped", stderr: "piped" }).outputSync();
    if (!out.success) throw new Error(`child failed: ${new TextDecoder().decode(out.stderr)}`);
    const { wrong } = JSON.parse(new TextDecoder().decode(out.stdout)) as { wrong: { i: number; expected: number; got: number }[] };
    const t = tally[mode]!;
    if (!wrong.length) continue;
    t.badProcesses++;
    t.badCalls += wrong.length;
    t.firstBad.push(wrong[0]!.i);
    for (const w of wrong) t.byKind[`${w.expected}->${w.got}`] = (t.byKind[`${w.expected}->${w.got}`] ?? 0) + 1;
    if (t.samples.length < 3) t.samples.push(wrong.slice(0, 3).map((w) => `#${w.i} ${w.expected}->${w.got}`).join(", "));
  }
}
for (const mode of MODES) {
  const t = tally[mode]!;
  console.log(`${mode.padEnd(6)}: ${t.badProcesses}/${processes} processes with a wrong errno, ${t.badCalls} of ${processes * calls} calls; first wrong call index ${t.firstBad.join(",") || "-"}${t.samples.length ? `; by expected->got ${JSON.stringify(t.byKind)}; e.g. ${t.samples.join(" | ")}` : ""}`);
}
console.log(`${processes} processes x ${calls} calls per mode, ${((performance.now() - t0) / 1000).toFixed(0)} s, Deno ${Deno.version.deno}, ${Deno.build.arch}`);
