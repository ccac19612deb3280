/*
 * basic.c — the "basic" plugin: stages that move text around.  Small, but
 * real: the hello pipeline uses them, and they show the plugin API in full.
 *
 *   text       produces a text artifact from a literal value or a file
 *   save-text  writes a text artifact to a file (atomically) and records it
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "lmpipe.h"
#include "util.h"

static const lmp_param text_params[] = {
    {"value", LMP_STRING, "", LMP_UNBOUNDED, NULL, "the text itself (ignored when file is set)"},
    {"file", LMP_PATH, "-", LMP_UNBOUNDED, NULL, "read the text from this file instead ('-': use value)"},
    {"repeat", LMP_INT, "1", 1, 1000000, NULL, "repeat the text this many times"},
    LMP_PARAM_END,
};

static const lmp_port text_out[] = {{"text", "text", 0, "the text"}, LMP_PORT_END};

static int text_run(lmp_stage *st)
{
    const char *file = lmp_param_str(st, "file");
    char *src;
    size_t len;
    if (strcmp(file, "-") != 0) {
        if (lmp_read_file(file, 256u << 20, &src, &len) != 0) return -1;
        if (!lmp_utf8_valid(src, len, NULL)) {
            free(src);
            return lmp_error("%s: not valid UTF-8 text", file);
        }
    } else {
        src = strdupCheck(lmp_param_str(st, "value"));
        len = strlen(src);
    }
    int64_t n = lmp_param_int(st, "repeat");
    lmp_sbuf out = {0};
    lmp_sbuf_puts(&out, "");
    for (int64_t i = 0; i < n; i++) {
        lmp_sbuf_putn(&out, src, len);
        lmp_progress(st, "repeat", i + 1, n);
    }
    free(src);
    lmp_log_metric(st, "bytes", -1, (double)out.len);
    return lmp_output(st, "text", out.s);
}

static const lmp_param save_params[] = {
    {"path", LMP_PATH, NULL, LMP_UNBOUNDED, NULL, "where to write (relative paths: the run's artifact folder)"},
    LMP_PARAM_END,
};

static const lmp_port save_in[] = {{"text", "text", 0, "the text to write"}, LMP_PORT_END};

static int save_run(lmp_stage *st)
{
    const char *text = lmp_input(st, "text");
    const char *path = lmp_param_str(st, "path");
    if (!lmp_dist_writer()) return 0; /* under mpirun rank 0 writes files (dist.h) */
    char *full = path[0] == '/' ? strdupCheck(path) : lmp_strfmt("%s/%s", lmp_workdir(st), path);
    size_t len = strlen(text), lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    int rc = lmp_write_file_atomic(full, text, len);
    if (rc == 0) rc = lmp_log_artifact(st, path, full);
    if (rc == 0) {
        lmp_log_metric(st, "bytes", -1, (double)len);
        lmp_log_metric(st, "lines", -1, (double)lines);
        lmp_info(st, "wrote %zu bytes to %s", len, full);
    }
    free(full);
    return rc;
}

static const lmp_stage_def stages[] = {
    {.name = "text", .description = "a text artifact from a literal value or a file", .params = text_params,
     .produces = text_out, .run = text_run},
    {.name = "save-text", .description = "write a text artifact to a file and record it as an artifact",
     .params = save_params, .consumes = save_in, .run = save_run},
    {0},
};

LMP_PLUGIN_DEFINE("basic", PACKAGE_VERSION, "stages that move text around", stages);
