/* version.c: swarm_version(), libswarm's own version, so that a client (or its bug report)
 * can say which libswarm it loaded at run time, not only which header it was built with
 * (SWARM_ABI_VERSION). The string comes from project(swarm VERSION ...) through the
 * generated swarm_build_info.h, the one place every program's --version reads it too.
 */
#include "swarm/swarm.h"
#include "swarm_build_info.h"

SWARM_API const char *swarm_version(void) { return SWARM_BUILD_VERSION; }
