/*
 * registry.c — plugin discovery, loading and validation (see registry.h).
 */
#include "config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "param.h"
#include "paths.h"
#include "registry.h"
#include "types.h"
#include "util.h"

static lmp_stage_entry *entries;
static int n_entries, cap_entries;
typedef struct {
    void *handle; /* dlopen handle, NULL for built-in plugins */
    char *file;   /* entries' `file` points here */
} loaded_plugin;
static loaded_plugin *plugins;
static int n_plugins;
static char **loaded_names; /* basenames of loaded plugin files: a later dir's copy is shadowed */
static int n_loaded;
static char *search_path;
static int loaded_all;

void lmp_registry_reset(void)
{
    for (int i = 0; i < n_plugins; i++) {
        if (plugins[i].handle) dlclose(plugins[i].handle);
        free(plugins[i].file);
    }
    free(plugins);
    plugins = NULL;
    n_plugins = 0;
    free(entries);
    entries = NULL;
    n_entries = cap_entries = 0;
    for (int i = 0; i < n_loaded; i++) free(loaded_names[i]);
    free(loaded_names);
    loaded_names = NULL;
    n_loaded = 0;
    free(search_path);
    search_path = NULL;
    loaded_all = 0;
    lmp_types_reset(); /* plugin-defined types went away with their plugins */
}

static int valid_name(const char *s)
{
    if (!s || !*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return 0;
    return 1;
}

static int plugin_has_type(const lmp_plugin *pl, const char *name)
{
    for (const lmp_type *const *t = pl->types; t && *t; t++)
        if ((*t)->name && strcmp((*t)->name, name) == 0) return 1;
    return 0;
}

/* A plugin bug (bad default, unknown port type) is reported once, at load. */
static int validate_stage(const lmp_stage_def *d, const lmp_plugin *pl, const char *file)
{
    if (!valid_name(d->name))
        return lmp_error("%s: plugin '%s' declares a stage with an invalid name", file, pl->name);
    if (!d->run) return lmp_error("%s: stage '%s' has no run function", file, d->name);
    for (const lmp_param *p = d->params; p && p->key; p++) {
        if (p->type > LMP_FILES)
            return lmp_error("%s: stage '%s' parameter '%s' has an unknown type", file, d->name, p->key);
        if (p->type == LMP_ENUM && (!p->choices || !*p->choices))
            return lmp_error("%s: stage '%s' enum parameter '%s' has no choices", file, d->name, p->key);
        for (const lmp_param *q = d->params; q < p; q++)
            if (strcmp(q->key, p->key) == 0)
                return lmp_error("%s: stage '%s' declares parameter '%s' twice", file, d->name, p->key);
        if (p->def) {
            lmp_param_value v;
            if (lmp_param_parse(p, p->def, &v) != 0)
                return lmp_error("%s: stage '%s' parameter '%s' has an invalid default: %s", file,
                                 d->name, p->key, lmp_errmsg());
            free(v.text);
        }
    }
    const lmp_port *lists[2] = {d->consumes, d->produces};
    for (int k = 0; k < 2; k++)
        for (const lmp_port *p = lists[k]; p && p->name; p++)
            if (!p->type || !(lmp_type_find(p->type) || plugin_has_type(pl, p->type)))
                return lmp_error("%s: stage '%s' port '%s' has unknown artifact type '%s'", file,
                                 d->name, p->name, p->type ? p->type : "(null)");
    return 0;
}

int lmp_registry_add(const lmp_plugin *pl, const char *file)
{
    if (pl->abi_version != LMP_ABI_VERSION)
        return lmp_error("%s: plugin ABI version %u, but this lmpipe expects %u (rebuild the plugin)",
                         file, pl->abi_version, LMP_ABI_VERSION);
    if (!valid_name(pl->name) || !pl->version || !pl->stages)
        return lmp_error("%s: malformed plugin descriptor (name, version and stages are required)", file);
    /* validate everything first: a rejected plugin leaves no trace (its
     * memory goes away with dlclose) */
    for (const lmp_type *const *t = pl->types; t && *t; t++) {
        const lmp_type *known = (*t)->name ? lmp_type_find((*t)->name) : NULL;
        if (!(*t)->name || (known && known != *t))
            return lmp_error("%s: artifact type '%s' is already registered", file, (*t)->name ? (*t)->name : "");
    }
    for (const lmp_stage_def *d = pl->stages; d->name; d++) {
        if (validate_stage(d, pl, file) != 0) return -1;
        const lmp_stage_entry *other = lmp_registry_find(d->name);
        if (other)
            return lmp_error("%s: stage '%s' is already provided by %s", file, d->name, other->file);
    }
    for (const lmp_type *const *t = pl->types; t && *t; t++)
        if (lmp_type_register(*t) != 0) return lmp_error("%s: %s", file, lmp_errmsg());
    for (const lmp_stage_def *d = pl->stages; d->name; d++) {
        if (n_entries == cap_entries) {
            cap_entries = cap_entries ? 2 * cap_entries : 32;
            entries = reallocCheck(entries, (size_t)cap_entries * sizeof *entries);
        }
        entries[n_entries++] = (lmp_stage_entry){d, pl, file};
    }
    return 0;
}

int lmp_registry_load_file(const char *path)
{
    /* RTLD_NODELETE: a plugin's constructors may register kinds (classifier,
     * adapter, model family) that point into it; dlclose must not unmap
     * them, even for a plugin rejected below or at lmp_registry_reset. */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!h) return lmp_error("%s: cannot load plugin: %s", path, dlerror());
    const lmp_plugin *pl = dlsym(h, LMP_PLUGIN_SYMBOL);
    if (!pl) {
        dlclose(h);
        return lmp_error("%s: not an lmpipe plugin (no '%s' symbol)", path, LMP_PLUGIN_SYMBOL);
    }
    /* the handle stays open until lmp_registry_reset: stages point into it */
    char *file = strdupCheck(path);
    if (lmp_registry_add(pl, file) != 0) {
        free(file);
        dlclose(h);
        return -1;
    }
    plugins = reallocCheck(plugins, (size_t)(n_plugins + 1) * sizeof *plugins);
    plugins[n_plugins++] = (loaded_plugin){h, file};
    return 0;
}

static int already_loaded(const char *base)
{
    for (int i = 0; i < n_loaded; i++)
        if (strcmp(loaded_names[i], base) == 0) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A plugin runs as the user: code in a folder anyone can write to is anyone's
 * code.  A world-writable folder without the sticky bit lets anyone replace
 * a plugin: warn about the folder (once: callers pass `fresh` only for a
 * folder not seen before).  Returns whether the folder is world-writable and
 * sticky (/tmp), where others cannot replace our files but can add their
 * own, so each file is looked at (check_file_writable). */
static int check_dir_writable(const char *dir, int fresh)
{
    struct stat sb;
    if (stat(dir, &sb) != 0 || !(sb.st_mode & S_IWOTH)) return 0;
    if (sb.st_mode & S_ISVTX) return 1;
    if (fresh) fprintf(stderr, "lmpipe: warning: plugin directory %s is world-writable; anyone can plant code there\n", dir);
    return 0;
}

/* A plugin file anyone can rewrite, or, in a sticky world-writable folder,
 * one that neither we nor root own (someone else put it there). */
static void check_file_writable(const char *path, int sticky_dir)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return; /* dlopen reports it */
    if (sb.st_mode & S_IWOTH)
        fprintf(stderr, "lmpipe: warning: plugin %s is world-writable; anyone can change its code\n", path);
    else if (sticky_dir && sb.st_uid != geteuid() && sb.st_uid != 0)
        fprintf(stderr, "lmpipe: warning: plugin %s belongs to another user (uid %ld) in a world-writable "
                        "directory; anyone can plant code there\n", path, (long)sb.st_uid);
}

static int load_dir(const char *dir, int must_exist, int fresh)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (must_exist) return lmp_error("%s: plugin directory not found", dir);
        return 0;
    }
    int sticky = check_dir_writable(dir, fresh);
    char **names = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 3 && strcmp(e->d_name + l - 3, ".so") == 0) {
            names = reallocCheck(names, (size_t)(n + 1) * sizeof *names);
            names[n++] = strdupCheck(e->d_name);
        }
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str); /* deterministic order */
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (rc == 0 && !already_loaded(names[i])) {
            char *path = lmp_strfmt("%s/%s", dir, names[i]);
            check_file_writable(path, sticky);
            rc = lmp_registry_load_file(path);
            free(path);
            loaded_names = reallocCheck(loaded_names, (size_t)(n_loaded + 1) * sizeof *loaded_names);
            loaded_names[n_loaded++] = strdupCheck(names[i]);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

/* 1 if dir is new to the search path, 0 if it is there already */
static int append_path(const char *dir)
{
    /* each directory once: the message listing them stays readable */
    size_t n = strlen(dir);
    for (const char *p = search_path; p && *p;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        if (len == n && strncmp(p, dir, n) == 0) return 0;
        p = colon ? colon + 1 : NULL;
    }
    char *old = search_path;
    search_path = old ? lmp_strfmt("%s:%s", old, dir) : strdupCheck(dir);
    free(old);
    return 1;
}

static int load_list(const char *list)
{
    char *copy = strdupCheck(list);
    int rc = 0;
    for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir && rc == 0;
         dir = strtok_r(NULL, ":", &save)) {
        int fresh = append_path(dir);
        rc = load_dir(dir, 1, fresh);
    }
    free(copy);
    return rc;
}

int lmp_registry_load(const char *cli_path)
{
    if (loaded_all) return 0;
    loaded_all = 1;
    if (cli_path && *cli_path && load_list(cli_path) != 0) return -1;
    const char *env = getenv("LMPIPE_PLUGIN_PATH");
    if (env && *env && load_list(env) != 0) return -1;
    if (lmp_running_from_build_tree()) {
        int fresh = append_path(LMP_BUILD_PLUGINDIR "/.libs");
        if (load_dir(LMP_BUILD_PLUGINDIR "/.libs", 0, fresh) != 0) return -1;
    }
    int fresh = append_path(LMP_PKGLIBDIR);
    return load_dir(LMP_PKGLIBDIR, 0, fresh);
}

const char *lmp_registry_search_path(void) { return search_path ? search_path : ""; }

const lmp_stage_entry *lmp_registry_find(const char *stage)
{
    for (int i = 0; i < n_entries; i++)
        if (strcmp(entries[i].def->name, stage) == 0) return &entries[i];
    return NULL;
}

const char *lmp_registry_suggest(const char *stage)
{
    const char *best = NULL;
    int best_d = 1 << 30, d;
    for (int i = 0; i < n_entries; i++)
        if (lmp_is_close(stage, entries[i].def->name, &d) && d < best_d) best_d = d, best = entries[i].def->name;
    return best;
}

int lmp_registry_count(void) { return n_entries; }
const lmp_stage_entry *lmp_registry_at(int i) { return i >= 0 && i < n_entries ? &entries[i] : NULL; }
