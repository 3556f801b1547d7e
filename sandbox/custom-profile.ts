/**
 * Guest profiles built from the command line (`--device`, `--drive`,
 * `--object`, `--bind`) or read from a JSON file, so a user can try the
 * library on any QEMU device model. The file format is the {@link Profile}
 * object as JSON (see README, "Your own device models").
 */
import { readFileSync } from "node:fs";
import { SandboxError } from "./log.ts";
import { getProfile, PROFILES, type GuestDevice, type Profile } from "./profiles.ts";

/** What the sandbox command line adds to a base profile. */
export interface ProfileAdditions {
  /** `-device` arguments, in order. */
  devices: string[];
  /** `-drive` arguments. */
  drives: string[];
  /** `-object` arguments. */
  objects: string[];
  /** `vendor:device` ids to bind to vfio-pci in the guest. */
  bind: string[];
  /** Drop the base profile's own devices (its IOMMU setup and module options stay). */
  bare: boolean;
}

const ID = /^[0-9a-f]{4}:[0-9a-f]{4}$/;

/** Validates a `--bind` value: `vendor:device`, four hex digits each, lowercased. */
export function bindId(text: string): string {
  const id = text.trim().toLowerCase();
  if (!ID.test(id)) throw new SandboxError(`--bind ${text}: expected vendor:device as 4+4 hex digits, e.g. 1b36:0005 (see lspci -nn)`);
  return id;
}

/** The base profile plus the additions, as a new profile object (named `custom` unless nothing was added). */
export function composeProfile(base: Profile, add: ProfileAdditions): Profile {
  const changed = add.devices.length + add.drives.length + add.objects.length + add.bind.length > 0 || add.bare;
  if (!changed) return base;
  const devices: GuestDevice[] = add.bare ? [] : base.devices.map((d) => ({ ...d, qemu: [...d.qemu] }));
  const extra = [...(base.qemuExtra ?? []), ...add.objects.flatMap((o) => ["-object", o]), ...add.drives.flatMap((d) => ["-drive", d])];
  // User -device arguments go after the base's devices; the binding list is separate (QEMU arguments say nothing about PCI ids).
  const userDevices: GuestDevice[] = add.devices.map((d, i) => ({ name: `device${i}`, vendor: "", device: "", vfio: false, qemu: ["-device", d] }));
  const binds: GuestDevice[] = add.bind.map((id) => {
    const [vendor, device] = bindId(id).split(":") as [string, string];
    return { name: `bind-${vendor}-${device}`, vendor, device, vfio: true, qemu: [] };
  });
  return {
    ...base,
    name: "custom",
    description: `${base.name}${add.bare ? " (bare)" : ""} plus command-line devices`,
    devices: [...devices, ...userDevices, ...binds],
    qemuExtra: extra,
  };
}

function fail(path: string, what: string): never {
  throw new SandboxError(`profile file ${path}: ${what}`);
}

function strings(path: string, key: string, v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) fail(path, `"${key}" must be an array of strings`);
  return v as string[];
}

/**
 * Reads a profile file: a JSON object with the {@link Profile} fields
 * (`name`, `description`, `intremap`, `iommu`, `devices` [{ name, vendor,
 * device, vfio, qemu }], `qemuExtra`, `moduleOptions`, `kernelArgs`,
 * `guestEnv`, `scratch`), optionally
 * `"base": "<profile>"` whose fields fill in what the file leaves out.
 * @throws SandboxError naming the file and the field that is wrong
 */
export function loadProfileFile(path: string): Profile {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    fail(path, e instanceof Error ? e.message : String(e));
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) fail(path, "must be a JSON object");
  const base = typeof doc.base === "string" ? (PROFILES[doc.base] ?? fail(path, `unknown base profile "${doc.base}" (known: ${Object.keys(PROFILES).join(", ")})`)) : undefined;
  const devicesIn = doc.devices ?? base?.devices ?? [];
  if (!Array.isArray(devicesIn)) fail(path, `"devices" must be an array`);
  const devices: GuestDevice[] = devicesIn.map((d: any, i: number) => {
    if (typeof d !== "object" || d === null) fail(path, `devices[${i}] must be an object`);
    const vfio = d.vfio === true;
    if (vfio && !ID.test(`${d.vendor}:${d.device}`)) fail(path, `devices[${i}]: "vendor" and "device" must be 4 lowercase hex digits when "vfio" is true`);
    return { name: String(d.name ?? `device${i}`), vendor: String(d.vendor ?? ""), device: String(d.device ?? ""), vfio, qemu: strings(path, `devices[${i}].qemu`, d.qemu) ?? [] };
  });
  const intremap = doc.intremap ?? base?.intremap ?? true;
  if (typeof intremap !== "boolean") fail(path, `"intremap" must be true or false`);
  const iommu = doc.iommu ?? base?.iommu;
  if (iommu !== undefined && iommu !== "intel" && iommu !== "none") fail(path, `"iommu" must be "intel" or "none"`);
  const guestEnv = doc.guestEnv ?? base?.guestEnv;
  if (guestEnv !== undefined && (typeof guestEnv !== "object" || guestEnv === null || Object.values(guestEnv).some((v) => typeof v !== "string"))) fail(path, `"guestEnv" must map variable names to strings`);
  const kernelArgs = strings(path, "kernelArgs", doc.kernelArgs) ?? base?.kernelArgs;
  const scratch = doc.scratch ?? base?.scratch;
  const modules = strings(path, "modules", doc.modules) ?? base?.modules;
  if (scratch !== undefined && (typeof scratch !== "object" || Object.values(scratch as object).some((v) => typeof v !== "number"))) fail(path, `"scratch" must map file names to sizes in MiB`);
  return {
    name: typeof doc.name === "string" ? doc.name : "custom",
    description: typeof doc.description === "string" ? doc.description : `from ${path}`,
    intremap,
    devices,
    qemuExtra: strings(path, "qemuExtra", doc.qemuExtra) ?? base?.qemuExtra ?? [],
    moduleOptions: strings(path, "moduleOptions", doc.moduleOptions) ?? base?.moduleOptions ?? [],
    ...(modules ? { modules } : {}),
    ...(kernelArgs ? { kernelArgs } : {}),
    ...(iommu ? { iommu: iommu as "intel" | "none" } : {}),
    ...(guestEnv ? { guestEnv: guestEnv as Record<string, string> } : {}),
    ...(scratch ? { scratch: scratch as Record<string, number> } : {}),
  };
}

/** A built-in profile by name, or a profile file when the value ends in `.json`. */
export function resolveProfile(nameOrFile: string): Profile {
  if (nameOrFile.endsWith(".json")) return loadProfileFile(nameOrFile);
  if (!PROFILES[nameOrFile]) throw new SandboxError(`unknown profile "${nameOrFile}"; known: ${Object.keys(PROFILES).join(", ")} (or a .json profile file)`);
  return getProfile(nameOrFile);
}

/** The profile as the JSON a file would hold (what `--write-profile` saves). */
export function profileJson(p: Profile): string {
  const { name, description, intremap, iommu, devices, qemuExtra, moduleOptions, modules, kernelArgs, guestEnv, scratch } = p;
  return JSON.stringify({
    name, description, intremap, ...(iommu ? { iommu } : {}), devices, qemuExtra: qemuExtra ?? [], moduleOptions: moduleOptions ?? [],
    ...(modules?.length ? { modules } : {}), ...(kernelArgs ? { kernelArgs } : {}), ...(guestEnv ? { guestEnv } : {}), ...(scratch ? { scratch } : {}),
  }, null, 2) + "\n";
}
