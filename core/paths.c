/*
 * paths.c — see paths.h.
 */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "paths.h"
#include "util.h"

int lmp_running_from_build_tree(void)
{
    char exe[PATH_MAX], top[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return 0;
    exe[n] = 0;
    if (!realpath(LMP_BUILD_PLUGINDIR "/..", top)) return 0;
    size_t l = strlen(top);
    return strncmp(exe, top, l) == 0 && exe[l] == '/';
}

void lmp_data_dir_resolve(void)
{
    const char *env = getenv("LMPIPE_DATA_DIR");
    if (!env || !*env) {
        /* run from a checkout with the data beside it (../shared/data, as
         * the quick start and the tests use): that is the default */
        if (!lmp_running_from_build_tree() || access(LMP_SRCDIR "/../shared/data", F_OK) != 0) return;
        env = LMP_SRCDIR "/../shared/data";
    }
    char *real = realpath(env, NULL);
    if (real && strcmp(real, env) != 0) setenv("LMPIPE_DATA_DIR", real, 1);
    free(real);
}

char *lmp_data_path(const char *rel)
{
    const char *env = getenv("LMPIPE_DATA_DIR");
    if (env && *env) {
        char *p = lmp_strfmt("%s/%s", env, rel);
        if (access(p, F_OK) == 0) return p;
        free(p);
    }
    if (lmp_running_from_build_tree()) {
        const char *dirs[] = {LMP_SRCDIR "/data", LMP_SRCDIR "/../shared/data"};
        for (int i = 0; i < 2; i++) {
            char *p = lmp_strfmt("%s/%s", dirs[i], rel);
            if (access(p, F_OK) == 0) return p;
            free(p);
        }
    }
    return lmp_strfmt("%s/%s", LMP_PKGDATADIR, rel);
}
