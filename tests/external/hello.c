/*
 * hello.c — a third-party plugin, built by `make installcheck` against the
 * installed headers with `pkg-config --cflags --libs lmpipe`, exactly as a
 * user outside this tree would build one.
 */
#include <lmpipe.h>

static const lmp_param hello_params[] = {
    {"times", LMP_INT, "1", 1, 100, NULL, "how often to greet"},
    LMP_PARAM_END,
};

static int hello_run(lmp_stage *st)
{
    for (int64_t i = 0; i < lmp_param_int(st, "times"); i++) lmp_log_metric(st, "greetings", i, (double)(i + 1));
    return 0;
}

static const lmp_stage_def hello_stages[] = {
    {.name = "hello", .description = "greets", .params = hello_params, .run = hello_run},
    {0},
};

LMP_PLUGIN_DEFINE("hello", "1.0", "an example third-party plugin", hello_stages);
