/** The ordered-MMIO unit tests, run in the arm64 guest: the arm64 stubs execute for real (TCG). */
import "../../unit/ordered-mmio.test.ts";
