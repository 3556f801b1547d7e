/**
 * errno: reading it safely from FFI, and its symbolic names.
 */
import { read } from "bun:ffi";
import { libc } from "./libc.ts";

const errnoLocation = libc.__errno_location();
if (!errnoLocation) throw new Error("bun-vfio: __errno_location() returned NULL");

/**
 * The calling thread's errno. Call it right after the failing FFI call, in
 * the same synchronous block: an `await` in between may let other code
 * overwrite it.
 */
export function lastErrno(): number {
  return read.i32(errnoLocation!, 0);
}

/** Linux errno names by number (asm-generic/errno-base.h and errno.h). */
const ERRNO_NAMES: readonly string[] = [
  "OK", "EPERM", "ENOENT", "ESRCH", "EINTR", "EIO", "ENXIO", "E2BIG", "ENOEXEC", "EBADF", "ECHILD",
  "EAGAIN", "ENOMEM", "EACCES", "EFAULT", "ENOTBLK", "EBUSY", "EEXIST", "EXDEV", "ENODEV", "ENOTDIR",
  "EISDIR", "EINVAL", "ENFILE", "EMFILE", "ENOTTY", "ETXTBSY", "EFBIG", "ENOSPC", "ESPIPE", "EROFS",
  "EMLINK", "EPIPE", "EDOM", "ERANGE", "EDEADLK", "ENAMETOOLONG", "ENOLCK", "ENOSYS", "ENOTEMPTY", "ELOOP",
  "EWOULDBLOCK", "ENOMSG", "EIDRM", "ECHRNG", "EL2NSYNC", "EL3HLT", "EL3RST", "ELNRNG", "EUNATCH", "ENOCSI",
  "EL2HLT", "EBADE", "EBADR", "EXFULL", "ENOANO", "EBADRQC", "EBADSLT", "EDEADLOCK", "EBFONT", "ENOSTR",
  "ENODATA", "ETIME", "ENOSR", "ENONET", "ENOPKG", "EREMOTE", "ENOLINK", "EADV", "ESRMNT", "ECOMM",
  "EPROTO", "EMULTIHOP", "EDOTDOT", "EBADMSG", "EOVERFLOW", "ENOTUNIQ", "EBADFD", "EREMCHG", "ELIBACC", "ELIBBAD",
  "ELIBSCN", "ELIBMAX", "ELIBEXEC", "EILSEQ", "ERESTART", "ESTRPIPE", "EUSERS", "ENOTSOCK", "EDESTADDRREQ", "EMSGSIZE",
  "EPROTOTYPE", "ENOPROTOOPT", "EPROTONOSUPPORT", "ESOCKTNOSUPPORT", "EOPNOTSUPP", "EPFNOSUPPORT", "EAFNOSUPPORT", "EADDRINUSE", "EADDRNOTAVAIL", "ENETDOWN",
  "ENETUNREACH", "ENETRESET", "ECONNABORTED", "ECONNRESET", "ENOBUFS", "EISCONN", "ENOTCONN", "ESHUTDOWN", "ETOOMANYREFS", "ETIMEDOUT",
  "ECONNREFUSED", "EHOSTDOWN", "EHOSTUNREACH", "EALREADY", "EINPROGRESS", "ESTALE", "EUCLEAN", "ENOTNAM", "ENAVAIL", "EISNAM",
  "EREMOTEIO", "EDQUOT", "ENOMEDIUM", "EMEDIUMTYPE", "ECANCELED", "ENOKEY", "EKEYEXPIRED", "EKEYREVOKED", "EKEYREJECTED", "EOWNERDEAD",
  "ENOTRECOVERABLE", "ERFKILL", "EHWPOISON",
];

/** The symbolic name of an errno value (`1` → `"EPERM"`), or `"E<n>"` when unknown. */
export function errnoName(errno: number): string {
  if (errno === 11) return "EAGAIN"; // EWOULDBLOCK is the same number; prefer the common name
  return ERRNO_NAMES[errno] ?? `E${errno}`;
}

/** The errno number for a symbolic name, or undefined. */
export function errnoNumber(name: string): number | undefined {
  if (name === "EAGAIN" || name === "EWOULDBLOCK") return 11;
  const n = ERRNO_NAMES.indexOf(name);
  return n > 0 ? n : undefined;
}

/** libc's description of an errno value ("Operation not permitted"). */
export function errnoMessage(errno: number): string {
  return String(libc.strerror(errno));
}
