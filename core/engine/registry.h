/*
 * registry.h — finding and loading stage plugins.
 *
 * Search path, first match wins for a plugin file name: --plugin-path, then
 * $LMPIPE_PLUGIN_PATH (colon lists), then the build tree when lmpipe runs from
 * it, then the installed $(pkglibdir).  Every descriptor is validated (ABI
 * version, stage declarations, parameter defaults); two plugins that claim
 * one stage name are an error naming both files.
 */
#ifndef LMP_REGISTRY_H
#define LMP_REGISTRY_H

#include "lmpipe.h"

typedef struct {
    const lmp_stage_def *def;
    const lmp_plugin *plugin;
    const char *file; /* the .so it came from ("(built-in)" for core stages) */
} lmp_stage_entry;

/* Load every plugin on the search path (cli_path may be NULL).  Idempotent. */
int lmp_registry_load(const char *cli_path);
/* Load one plugin file (tests, and the loader itself). */
int lmp_registry_load_file(const char *path);
/* Register a plugin compiled into the binary. */
int lmp_registry_add(const lmp_plugin *plugin, const char *file);
/* Forget everything (tests). */
void lmp_registry_reset(void);

const lmp_stage_entry *lmp_registry_find(const char *stage);
const char *lmp_registry_suggest(const char *stage);
int lmp_registry_count(void);
const lmp_stage_entry *lmp_registry_at(int i);
/* The directories searched, in order, as one colon list (for messages). */
const char *lmp_registry_search_path(void);

#endif
