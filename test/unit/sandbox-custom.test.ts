/** The sandbox's own-device-model options, profile files and /tmp visibility rules (no guest needed). */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { splitCommand } from "../../sandbox/cli.ts";
import { bindId, composeProfile, loadProfileFile, profileJson, resolveProfile } from "../../sandbox/custom-profile.ts";
import { checkVisible, commandPaths, tmpBinds } from "../../sandbox/guest-paths.ts";
import { jobScript } from "../../sandbox/job.ts";
import { SandboxError } from "../../sandbox/log.ts";
import { isStaticElf } from "../../sandbox/tools.ts";
import { PROFILES } from "../../sandbox/profiles.ts";

const dir = mkdtempSync(join(tmpdir(), "bun-vfio-custom-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const none = { devices: [], drives: [], objects: [], bind: [], bare: false };

describe("composeProfile", () => {
  test("nothing added: the base profile itself", () => {
    expect(composeProfile(PROFILES.remap!, none)).toBe(PROFILES.remap!);
  });
  test("--bare --device --object --bind: only the user's devices, objects before devices, binds by id", () => {
    const p = composeProfile(PROFILES.remap!, { devices: ["pci-testdev"], drives: ["if=none,id=d0,file=/x.img"], objects: ["memory-backend-ram,id=m,size=1M"], bind: ["1B36:0005"], bare: true });
    expect(p.name).toBe("custom");
    expect(p.intremap).toBe(true);
    expect(p.devices.flatMap((d) => d.qemu)).toEqual(["-device", "pci-testdev"]);
    expect(p.devices.filter((d) => d.vfio).map((d) => `${d.vendor}:${d.device}`)).toEqual(["1b36:0005"]);
    expect(p.qemuExtra).toEqual(["-object", "memory-backend-ram,id=m,size=1M", "-drive", "if=none,id=d0,file=/x.img"]);
    expect(jobScript(p, "/work")).toContain("BIND=1b36:0005\n");
  });
  test("without --bare the profile's devices stay and are still bound", () => {
    const p = composeProfile(PROFILES.remap!, { ...none, devices: ["pci-testdev"], bind: ["1b36:0005"] });
    expect(jobScript(p, "/work")).toContain("BIND='1b36:0010 8086:10d3 1234:11e8 1b36:0005'\n");
  });
  test("bad --bind ids are refused", () => {
    expect(() => bindId("1b36")).toThrow(SandboxError);
    expect(() => bindId("1b36:00005")).toThrow(SandboxError);
  });
});

describe("profile files", () => {
  test("--write-profile output loads back to the same profile", () => {
    const p = composeProfile(PROFILES["no-remap"]!, { ...none, devices: ["ivshmem-plain,memdev=m"], objects: ["memory-backend-ram,id=m,size=1M"], bind: ["1af4:1110"], bare: true });
    const file = join(dir, "p.json");
    writeFileSync(file, profileJson(p));
    const back = loadProfileFile(file);
    expect(back).toEqual({ ...p, description: p.description });
    expect(resolveProfile(file).intremap).toBe(false);
  });
  test("a file with a base fills in what it leaves out", () => {
    const file = join(dir, "based.json");
    writeFileSync(file, JSON.stringify({ base: "shared-group", name: "mine" }));
    const p = loadProfileFile(file);
    expect(p.name).toBe("mine");
    expect(p.devices).toEqual(PROFILES["shared-group"]!.devices);
    expect(p.qemuExtra).toEqual(PROFILES["shared-group"]!.qemuExtra!);
  });
  test("errors name the file and the field", () => {
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ devices: [{ vfio: true, vendor: "xyz", device: "1" }] }));
    expect(() => loadProfileFile(bad)).toThrow(`profile file ${bad}: devices[0]`);
    writeFileSync(bad, "{ not json");
    expect(() => loadProfileFile(bad)).toThrow(`profile file ${bad}`);
    expect(() => resolveProfile("nope")).toThrow('unknown profile "nope"');
  });
});

describe("what the guest can see", () => {
  test("/tmp folders the command needs are bound; the rest of / is visible anyway", () => {
    expect(tmpBinds("/work/p", ["/usr/bin/bun", "/work/p/x.ts"])).toEqual([]);
    expect(tmpBinds("/work/p", ["/tmp/bun-1.3/bin/bun", "/tmp/data/in.bin", "/tmp/data/other"])).toEqual(["/tmp/data", "/tmp/bun-1.3"]);
    expect(tmpBinds("/tmp/proj/sub", ["/tmp/proj/sub/a.ts", "/tmp/proj/pkg/index.ts"])).toEqual(["/tmp/proj", "/tmp/proj/sub"]);
    expect(tmpBinds("/work", ["/tmp/bun-vfio-results/junit.xml"])).toEqual([]);
  });
  test("command words that are existing paths count; options and missing files do not", () => {
    const file = join(dir, "s.ts");
    writeFileSync(file, "");
    expect(commandPaths(["bun", file, "--flag", "--in=" + file, "missing/x.ts"], "/")).toEqual([file, file]);
  });
  test("/proc, /sys, /dev paths are refused by name", () => {
    expect(() => checkVisible(["/usr/bin/bun", "/dev/shm/pkg"])).toThrow("/dev/shm/pkg is not visible in the guest");
  });
  test("the job script carries the /tmp binds", () => {
    const script = join(dir, "job.ts");
    writeFileSync(script, "");
    const top = `/tmp/${dir.slice(5).split("/")[0]}`;
    const line = jobScript(PROFILES.remap!, "/work", ["bun", script]).split("\n").find((l) => l.startsWith("TMPBINDS="))!;
    // Bun itself may live under /tmp too (a bun@x from npm in a temp folder): then it is bound as well.
    expect(line.slice("TMPBINDS=".length).replace(/'/g, "").split(" ")).toContain(top);
  });
});

test("splitCommand: the command starts after -- or at the first non-option", () => {
  expect(splitCommand(["--profile", "remap", "bun", "x.ts", "--flag"])).toEqual({ options: ["--profile", "remap"], command: ["bun", "x.ts", "--flag"] });
  expect(splitCommand(["--device=edu", "--", "ls"])).toEqual({ options: ["--device=edu"], command: ["ls"] });
  expect(splitCommand(["--verbose"])).toEqual({ options: ["--verbose"], command: [] });
});

describe("--qemu: your own QEMU, none needed on PATH", () => {
  const tools = join(import.meta.dir, "../../sandbox/tools.ts");
  const emptyPath = mkdtempSync(join(dir, "path-"));
  /** ensureHostTools in a child whose PATH holds no QEMU at all (Bun.which reads the PATH the process started with). */
  function hostToolsWith(qemu: string): { ok: boolean; value: string } {
    const code = `import { ensureHostTools } from ${JSON.stringify(tools)};
      ensureHostTools("x86_64", ${JSON.stringify(qemu)}).then((t) => console.log(JSON.stringify({ ok: true, value: t.qemu })), (e) => console.log(JSON.stringify({ ok: false, value: e.message })));`;
    const p = Bun.spawnSync([process.execPath, "-e", code], { env: { PATH: emptyPath, HOME: dir }, stdout: "pipe", stderr: "pipe" });
    return JSON.parse(p.stdout.toString().trim().split("\n").pop() ?? "{}");
  }
  test("the given binary is used and PATH is not searched for qemu-system-x86_64", () => {
    expect(Bun.spawnSync(["/bin/sh", "-c", "command -v qemu-system-x86_64"], { env: { PATH: emptyPath } }).exitCode).not.toBe(0);
    const fake = join(dir, "my-qemu");
    writeFileSync(fake, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const r = hostToolsWith(fake);
    // A host without a static /bin/busybox still fails, but for busybox alone: QEMU is neither required nor installed.
    if (isStaticElf("/bin/busybox")) expect(r).toEqual({ ok: true, value: fake });
    else expect(r.ok === false && r.value.includes("busybox") && !r.value.includes("qemu")).toBe(true);
  });
  test("a missing or non-executable --qemu is named, not replaced by the one on PATH", () => {
    expect(hostToolsWith(join(dir, "no-such-qemu"))).toEqual({ ok: false, value: `--qemu ${join(dir, "no-such-qemu")}: no such file` });
    const plain = join(dir, "not-executable");
    writeFileSync(plain, "", { mode: 0o644 });
    expect(hostToolsWith(plain)).toEqual({ ok: false, value: `--qemu ${plain}: not executable (chmod +x it)` });
  });
});
