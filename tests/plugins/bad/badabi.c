/* badabi.c — a plugin built against a future ABI: loading it must fail clearly. */
#include "lmpipe.h"
static int run(lmp_stage *st) { return 0; }
static const lmp_stage_def stages[] = {{.name = "future", .run = run}, {0}};
__attribute__((visibility("default"))) const lmp_plugin lmpipe_plugin = {
    LMP_ABI_VERSION + 98, "badabi", "1.0", "wrong ABI", stages, NULL};
