/**
 * Run host tools (apt-get, dpkg-deb, xz) with a time bound.
 */
import { SandboxError } from "./log.ts";

/** Result of {@link runTool}. */
export interface ToolResult {
  /** Exit status (or 128 + signal when killed). */
  code: number;
  /** Captured stdout (empty when `inherit` was requested). */
  stdout: string;
  /** Captured stderr (empty when `inherit` was requested). */
  stderr: string;
}

/** Options of {@link runTool}. */
export interface ToolOptions {
  /** Kill the tool after this many milliseconds (default 10 minutes). */
  timeoutMs?: number;
  /** Working directory. */
  cwd?: string;
  /** Let the tool write to our stdout/stderr instead of capturing. */
  inherit?: boolean;
  /** Fail (throw) when the exit status is not 0 (default true). */
  check?: boolean;
}

/**
 * Run `argv`, wait at most `timeoutMs`, and return its status and output.
 * Throws {@link SandboxError} when it cannot start, times out, or (with
 * `check`, the default) exits non-zero.
 * @param argv program and arguments; the program is looked up in PATH
 * @param opts time bound, working directory, output handling
 */
export async function runTool(argv: string[], opts: ToolOptions = {}): Promise<ToolResult> {
  const timeoutMs = opts.timeoutMs ?? 10 * 60_000;
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    proc = Bun.spawn(argv, {
      cwd: opts.cwd,
      stdin: "ignore",
      stdout: opts.inherit ? "inherit" : "pipe",
      stderr: opts.inherit ? "inherit" : "pipe",
    });
  } catch (e) {
    throw new SandboxError(`cannot run ${argv[0]}: ${(e as Error).message}`);
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  const [stdout, stderr, code] = await Promise.all([
    proc.stdout instanceof ReadableStream ? new Response(proc.stdout).text() : "",
    proc.stderr instanceof ReadableStream ? new Response(proc.stderr).text() : "",
    proc.exited,
  ]);
  clearTimeout(timer);
  if (timedOut) {
    throw new SandboxError(`${argv.join(" ")} did not finish within ${Math.round(timeoutMs / 1000)} s and was killed`);
  }
  if ((opts.check ?? true) && code !== 0) {
    const detail = (stderr || stdout).trim().split("\n").slice(-8).join("\n");
    throw new SandboxError(`${argv.join(" ")} failed with status ${code}${detail ? `:\n${detail}` : ""}`);
  }
  return { code, stdout, stderr };
}
