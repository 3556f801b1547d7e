import { existsSync } from "node:fs";
import { VfioError } from "../support/errors.ts";
import { normalizeBdf } from "./bdf.ts";
import { vfioHolders } from "./in-use.ts";
import { noSuchDevice, pciDeviceExists } from "./pci.ts";
import { hostPath, linkTargetName, pciDevicePath, readOptional, writeAttribute, writeSysfs, type HostOptions, type SysfsWriter } from "./sysfs.ts";

const VFIO_PCI = "vfio-pci";

/** Options of {@link bindToVfio} and {@link releaseFromVfio}. */
export interface BindOptions extends HostOptions {
  /**
   * Replaces the sysfs write (default: open write-only, one `write(2)`).
   * Useful for dry runs that print what would be written, and for tests.
   */
  readonly write?: SysfsWriter;
}

/** What {@link bindToVfio} found and did. */
export interface BindResult {
  readonly bdf: string;
  /** The driver bound before, to hand to {@link releaseFromVfio}; `undefined` when the device was unbound. */
  readonly previousDriver: string | undefined;
  /** True when the device was already bound to vfio-pci and nothing was written. */
  readonly alreadyBound: boolean;
}

/** Options of {@link releaseFromVfio}. */
export interface ReleaseOptions extends BindOptions {
  /** The driver to give the device back to, usually `BindResult.previousDriver`. */
  readonly previousDriver?: string | undefined;
  /**
   * Unbind even when /proc shows processes holding the device (default
   * false: throw EBUSY naming them, since the kernel would block the unbind
   * until they let go).
   */
  readonly ignoreHolders?: boolean | undefined;
}

/** What {@link releaseFromVfio} left the device bound to. */
export interface ReleaseResult {
  readonly bdf: string;
  /** The driver bound now, `undefined` when none claimed the device. */
  readonly driver: string | undefined;
}

function requireDevice(op: string, bdf: string, options?: HostOptions): { address: string; dir: string } {
  const address = normalizeBdf(bdf);
  const dir = pciDevicePath(options, address);
  if (!pciDeviceExists(address, options)) throw noSuchDevice(op, address, dir);
  return { address, dir };
}

/**
 * Hands a PCI device to vfio-pci the way the kernel documents it: remember
 * the current driver, write `vfio-pci` to `driver_override`, write the
 * address to the current driver's `unbind`, then to
 * `/sys/bus/pci/drivers_probe`, and check that the `driver` link now names
 * vfio-pci. Needs root. Only this function's device is moved: other devices
 * in its IOMMU group keep their drivers (see `groupViability`).
 * If the probe does not end in vfio-pci, it clears the override and
 * re-probes so the old driver can take the device back, then throws.
 */
export function bindToVfio(bdf: string, options: BindOptions = {}): BindResult {
  const { address, dir } = requireDevice("bindToVfio", bdf, options);
  const write = options.write ?? writeSysfs;
  const previousDriver = linkTargetName(`${dir}/driver`);
  if (previousDriver === VFIO_PCI) return { bdf: address, previousDriver, alreadyBound: true };

  const driverDir = hostPath(options, "sys/bus/pci/drivers", VFIO_PCI);
  if (!existsSync(driverDir)) throw vfioPciMissing(address, driverDir, "vfio-pci is not loaded");

  const probe = hostPath(options, "sys/bus/pci/drivers_probe");
  const override = `${dir}/driver_override`;
  writeAttribute(write, "bindToVfio", override, VFIO_PCI, "This kernel lacks driver_override (added in 3.16); bind with vfio-pci's new_id instead.");
  try {
    if (previousDriver !== undefined) {
      writeAttribute(write, "bindToVfio", `${dir}/driver/unbind`, address, `Stop whatever uses the device (${previousDriver}: unmount filesystems, take interfaces down), then retry.`);
    }
    writeAttribute(write, "bindToVfio", probe, address, "Check `dmesg` for why the probe failed.");
    const now = linkTargetName(`${dir}/driver`);
    if (now !== VFIO_PCI) throw vfioPciMissing(address, `${dir}/driver`, `after drivers_probe the device is bound to ${now ?? "no driver"}`);
  } catch (err) {
    restoreQuietly(write, override, probe, address);
    throw err;
  }
  return { bdf: address, previousDriver, alreadyBound: false };
}

function vfioPciMissing(bdf: string, path: string, detail: string): VfioError {
  return new VfioError({
    op: "bindToVfio",
    errno: 19,
    code: "ENODEV",
    path,
    detail: `${bdf}: ${detail}`,
    hint: "Load the driver with `modprobe vfio-pci`; if it is loaded, `dmesg` says why it refused the device (no IOMMU group, or a bridge).",
  });
}

/** Best-effort undo after a failed bind: the original error is the one worth reporting. */
function restoreQuietly(write: SysfsWriter, override: string, probe: string, bdf: string): void {
  try {
    write(override, "\n");
    write(probe, bdf);
  } catch {
    // The caller throws the first failure; this one would only hide it.
  }
}

/**
 * Gives a device back after {@link bindToVfio}: writes the address to
 * vfio-pci's `unbind`, clears `driver_override` (writes `"\n"`) if it holds
 * vfio-pci, and writes the address to `/sys/bus/pci/drivers_probe` so the
 * matching driver claims it. When `previousDriver` is given and the probe
 * picked another driver (or none), it writes the address to that driver's
 * `bind`, and throws if the device still is not bound to it. When
 * `previousDriver` is `"vfio-pci"` (it was bound before `bindToVfio`), it
 * does nothing. Needs root. Close the device and group first: while a
 * process holds the device open, the kernel makes the `unbind` write wait
 * (and signals the VFIO request IRQ) until it lets go, so this function
 * first looks for holders in /proc (`/dev/vfio/<group>` fds, and device
 * fds whose fdinfo names the device) and throws EBUSY naming their PIDs
 * instead of blocking, unless `ignoreHolders` is set.
 */
export function releaseFromVfio(bdf: string, options: ReleaseOptions = {}): ReleaseResult {
  const { address, dir } = requireDevice("releaseFromVfio", bdf, options);
  const write = options.write ?? writeSysfs;
  const wanted = options.previousDriver;
  const current = linkTargetName(`${dir}/driver`);
  if (wanted === VFIO_PCI) return { bdf: address, driver: current };

  if (current === VFIO_PCI && !options.ignoreHolders) {
    const group = linkTargetName(`${dir}/iommu_group`);
    const holders = vfioHolders(address, group === undefined ? undefined : Number(group), options);
    if (holders.length) {
      const who = holders.map((h) => `PID ${h.pid} (${h.comm})${h.pid === process.pid ? " = this process" : ""}`).join(", ");
      throw new VfioError({
        op: "releaseFromVfio",
        errno: 16,
        code: "EBUSY",
        path: holders[0]!.path,
        detail: `${address} is held open by ${who}`,
        hint: "Close the device and its group in those processes (dispose them), or wait for them to exit; the kernel would block the unbind until then (`bun-vfio release` waits with a timeout).",
      });
    }
  }
  if (current === VFIO_PCI) {
    writeAttribute(write, "releaseFromVfio", `${dir}/driver/unbind`, address, "Close every VFIO file descriptor of the device (its group and device fds), then retry.");
  }
  const override = `${dir}/driver_override`;
  if (readOptional(override) === VFIO_PCI) {
    writeAttribute(write, "releaseFromVfio", override, "\n", "Check that sysfs is mounted read-write.");
  }
  // Probe only a device this call left driverless; one bound elsewhere stays put.
  if (current === VFIO_PCI || current === undefined) {
    writeAttribute(write, "releaseFromVfio", hostPath(options, "sys/bus/pci/drivers_probe"), address, "Check `dmesg` for why the probe failed.");
  }

  let driver = linkTargetName(`${dir}/driver`);
  if (wanted !== undefined && driver !== wanted) {
    const bind = hostPath(options, "sys/bus/pci/drivers", wanted, "bind");
    const hint = `Load the driver (\`modprobe ${wanted}\`) or bind by hand: echo ${address} > /sys/bus/pci/drivers/${wanted}/bind`;
    if (driver === undefined) writeAttribute(write, "releaseFromVfio", bind, address, hint);
    driver = linkTargetName(`${dir}/driver`);
    if (driver !== wanted) {
      throw new VfioError({ op: "releaseFromVfio", errno: 19, code: "ENODEV", path: bind, detail: `${address} is bound to ${driver ?? "no driver"}, not ${wanted}`, hint });
    }
  }
  return { bdf: address, driver };
}
