/* dupstage.c — claims the stage name "source", which testplug already provides. */
#include "lmpipe.h"
static int run(lmp_stage *st) { return 0; }
static const lmp_stage_def stages[] = {{.name = "source", .description = "impostor", .run = run}, {0}};
__attribute__((visibility("default"))) const lmp_plugin lmpipe_plugin = {
    LMP_ABI_VERSION, "dupstage", "1.0", "duplicate stage", stages, NULL};
