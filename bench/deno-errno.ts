/**
 * How often an error code is wrong on Deno: N fresh Deno processes each make
 * 300 failing calls with known errno (bench/deno-errno-child.ts), once with
 * errors from the kernel's return values (raw entries, the default) and once
 * with libc + `__errno_location()` (BUN_VFIO_DENO_ERRNO=libc).
 *
 *   deno run -A bench/deno-errno.ts [processes=60]
 */
const processes = Number(Deno.args[0] ?? 60);
const child = new URL("./deno-errno-child.ts", import.meta.url).pathname;

for (const mode of ["kernel", "libc"] as const) {
  let badProcesses = 0, badCalls = 0;
  const firstBad: number[] = [];
  const samples: string[] = [];
  for (let p = 0; p < processes; p++) {
    const env: Record<string, string> = mode === "libc" ? { BUN_VFIO_DENO_ERRNO: "libc" } : {};
    const out = new Deno.Command(Deno.execPath(), { args: ["run", "-A", child], env, stdout: "piped", stderr: "piped" }).outputSync();
    if (!out.success) throw new Error(`child failed: ${new TextDecoder().decode(out.stderr)}`);
    const { wrong } = JSON.parse(new TextDecoder().decode(out.stdout)) as { wrong: { i: number; expected: number; got: number }[] };
    if (wrong.length) {
      badProcesses++;
      badCalls += wrong.length;
      firstBad.push(wrong[0]!.i);
      if (samples.length < 3) samples.push(wrong.slice(0, 3).map((w) => `#${w.i} ${w.expected}->${w.got}`).join(", "));
    }
  }
  console.log(`${mode.padEnd(6)}: ${badProcesses}/${processes} processes with a wrong errno, ${badCalls} of ${processes * 300} calls; first wrong call index ${firstBad.join(",") || "-"}${samples.length ? `; e.g. ${samples.join(" | ")}` : ""}`);
}
