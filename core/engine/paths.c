/*
 * paths.c — see paths.h.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
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

const char *lmp_data_dir_default(void)
{
    return lmp_running_from_build_tree() ? LMP_SRCDIR "/data" : LMP_PKGDATADIR "/data";
}

const char *lmp_data_dir(void)
{
    const char *env = getenv("LMPIPE_DATA_DIR");
    return env && *env ? env : lmp_data_dir_default();
}

void lmp_data_dir_resolve(void)
{
    const char *dir = lmp_data_dir();
    char *real = realpath(dir, NULL);
    setenv("LMPIPE_DATA_DIR", real ? real : dir, 1);
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
    return lmp_strfmt("%s/%s", lmp_data_dir_default(), rel);
}

/* The digest SHA256SUMS at `manifest` gives for `name` into want[65]: 1 when
 * listed, 0 when not (or no manifest), -1 on a malformed manifest. */
static int manifest_lookup(const char *manifest, const char *name, char want[65])
{
    FILE *fp = fopen(manifest, "r");
    if (!fp) return errno == ENOENT ? 0 : lmp_error("%s: %s", manifest, strerror(errno));
    char line[PATH_MAX + 80];
    int found = 0, lineno = 0;
    while (!found && fgets(line, sizeof line, fp)) {
        lineno++;
        size_t l = strcspn(line, "\r\n");
        line[l] = 0;
        if (!l || line[0] == '#') continue;
        /* "<64 hex>  name" (text mode) or "<64 hex> *name" (binary mode) */
        int ok = l > 66 && line[64] == ' ' && (line[65] == ' ' || line[65] == '*');
        for (int i = 0; ok && i < 64; i++) ok = strchr("0123456789abcdef", line[i]) != NULL;
        if (!ok) {
            fclose(fp);
            return lmp_error("%s:%d: not a sha256sum line (\"<64 hex digits>  NAME\")", manifest, lineno);
        }
        if (strcmp(line + 66, name) == 0) {
            memcpy(want, line, 64);
            want[64] = 0;
            found = 1;
        }
    }
    fclose(fp);
    return found;
}

int lmp_data_verify(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *manifest = slash ? lmp_strfmt("%.*s/SHA256SUMS", (int)(slash - path), path)
                           : lmp_strfmt("SHA256SUMS");
    const char *name = slash ? slash + 1 : path;
    char want[65], got[65];
    int listed = manifest_lookup(manifest, name, want), rc = 0;
    if (listed > 0 && (rc = lmp_sha256_file_memo(path, got)) == 0 && strcmp(got, want) != 0)
        rc = lmp_error("%s: sha256 %.12s... differs from %.12s... in %s: the file was changed or damaged "
                       "(restore it, e.g. git checkout, or point LMPIPE_DATA_DIR at another copy)",
                       path, got, want, manifest);
    free(manifest);
    return listed < 0 ? -1 : rc;
}
