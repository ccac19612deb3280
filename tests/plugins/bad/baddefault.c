/* baddefault.c — a plugin whose parameter default violates its own range. */
#include "lmpipe.h"
static int run(lmp_stage *st) { return 0; }
static const lmp_param params[] = {{"rank", LMP_INT, "0", 1, 64, NULL, "rank"}, LMP_PARAM_END};
static const lmp_stage_def stages[] = {{.name = "badparam", .params = params, .run = run}, {0}};
__attribute__((visibility("default"))) const lmp_plugin lmpipe_plugin = {
    LMP_ABI_VERSION, "baddefault", "1.0", "bad default", stages, NULL};
