/**
 * The VfioErrors of the irq layer that are decided before any system call:
 * bad counts, missing indexes, double enables, masking what cannot be masked.
 */
import { VfioError, useAfterClose } from "../support/errors.ts";
import { show } from "../support/format.ts";
import { irqIndexName } from "./port.ts";

/** Enabling an index that is already on. */
export function alreadyEnabled(op: string, index: number, count: number, path: string, growable: boolean): VfioError {
  return new VfioError({
    op, code: "EBUSY", errno: 16, path,
    detail: `${irqIndexName(index)} is already enabled with ${count} vector${count === 1 ? "" : "s"}`,
    hint: growable ? "Use grow(n) to add vectors, or disable() first to start over." : "Call disable() first, or keep using the enabled vectors.",
  });
}

/** vfio-pci runs one of INTx, MSI, MSI-X at a time. */
export function otherTypeEnabled(op: string, index: number, other: number, path: string): VfioError {
  return new VfioError({
    op, code: "EBUSY", errno: 16, path,
    detail: `${irqIndexName(other)} is enabled, and vfio-pci runs only one of INTx, MSI and MSI-X at a time`,
    hint: `Disable ${irqIndexName(other)} first (device.${other === 0 ? "intx" : other === 1 ? "msi" : "msix"}.disable()), then enable ${irqIndexName(index)}.`,
  });
}

/** The index exists in the API but this device has no vectors there (count 0). */
export function indexAbsent(op: string, index: number, path: string, alternative: string): VfioError {
  return new VfioError({
    op, code: "ENODEV", errno: 19, path,
    detail: `the device has no ${irqIndexName(index)} (VFIO_DEVICE_GET_IRQ_INFO reports no vectors for it)`,
    hint: alternative,
  });
}

/** A vector count outside 1..max. */
export function badCount(op: string, index: number, count: unknown, max: number, path: string): VfioError {
  return new VfioError({
    op, code: "EINVAL", errno: 22, path,
    detail: `${show(count)} ${irqIndexName(index)} vectors asked for, the device has ${max}`,
    hint: `Ask for 1 to ${max} vectors (irqInfo().count).`,
  });
}

/** An operation on an index that is off. */
export function notEnabled(op: string, index: number, dev: { readonly path: string; readonly closed: boolean }): VfioError {
  const path = dev.path;
  if (dev.closed) return useAfterClose(op, "device", path);
  return new VfioError({
    op, code: "EINVAL", errno: 22, path,
    detail: `${irqIndexName(index)} is not enabled`,
    hint: "Call enable() first.",
  });
}

/** Masking where neither the kernel nor the device offers a way. */
export function notMaskable(op: string, index: number, path: string, why: string): VfioError {
  return new VfioError({
    op, code: "EOPNOTSUPP", errno: 95, path,
    detail: `${irqIndexName(index)} vectors cannot be masked here: ${why}`,
    hint: "Leave the vector unmasked and ignore wakes you do not want, or stop the device from raising it (its own interrupt-enable register).",
  });
}
