/** The ELF stub-library tests, run in the arm64 guest: glibc loads the aarch64 object and its stubs execute (TCG). */
import "../../unit/elf-so.test.ts";
