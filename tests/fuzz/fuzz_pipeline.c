/*
 * fuzz_pipeline.c — the pipeline-file parser on arbitrary text, then the
 * check against a registry holding the test plugin (tests/plugins/testplug.c,
 * linked in): variables, quotes, continuations, includes, overrides,
 * parameters, wiring.  Properties: no crash, leak or hang; a failure always
 * leaves a one-line message.
 *
 * A line "#override STAGE.KEY=VALUE" in the input is also applied as a
 * command-line override.  The pipeline is named as a file in a directory
 * that does not exist, so relative includes fail without touching the disk.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "pipeline.h"
#include "registry.h"
#include "util.h"

extern const lmp_plugin lmpipe_plugin; /* tests/plugins/testplug.c */

int fuzz_pipeline(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (lmp_registry_add(&lmpipe_plugin, "testplug (built in)") != 0) fuzz_fail("pipeline", "%s", lmp_errmsg());
        ready = 1;
    }
    char *text = mallocCheck(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    lmp_vars defs = {0};
    lmp_vars_set(&defs, "V", "1.5");
    lmp_vars_set(&defs, "MODE", "double");
    lmp_pipeline *p;
    fuzz_clear_error();
    if (lmp_pipeline_parse_string("/nonexistent-fuzz-dir/fuzz.pipe", text, &defs, &p) != 0) {
        fuzz_check_errmsg("pipeline");
    } else {
        int rc = 0;
        for (const char *o = strstr(text, "#override "); o && rc == 0; o = strstr(o + 1, "#override ")) {
            const char *s = o + 10, *e = strchr(s, '\n');
            char *spec = e ? strndup(s, (size_t)(e - s)) : strdupCheck(s);
            fuzz_clear_error();
            if ((rc = lmp_pipeline_override(p, spec)) != 0) fuzz_check_errmsg("pipeline");
            free(spec);
        }
        fuzz_clear_error();
        if (rc == 0 && lmp_pipeline_check(p) != 0) {
            fuzz_check_errmsg("pipeline");
        } else if (rc == 0) { /* checked: every stage bound, every declared parameter resolved */
            for (int i = 0; i < p->nstages; i++) {
                const lmp_pstage *st = &p->stages[i];
                int n = 0;
                if (!st->entry) fuzz_fail("pipeline", "stage '%s' checked but unbound", st->name);
                for (const lmp_param *q = st->entry->def->params; q && q->key; q++) n++;
                if (st->nvalues != n) fuzz_fail("pipeline", "stage '%s': %d values for %d parameters", st->name, st->nvalues, n);
                for (int k = 0; k < n; k++)
                    if (!st->values[k].text) fuzz_fail("pipeline", "stage '%s': parameter %d has no value", st->name, k);
            }
        }
        lmp_pipeline_free(p);
    }
    lmp_vars_free(&defs);
    free(text);
    return 0;
}
LMP_FUZZ_ENTRY(fuzz_pipeline)
