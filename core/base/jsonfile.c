/*
 * jsonfile.c — the one JSON-file reader (see jsonfile.h).
 */
#include "config.h"

#include <stdlib.h>

#include "jsonfile.h"
#include "util.h"

int lmp_json_read_file(const char *path, size_t max_bytes, size_t flags, const char *what,
                       json_t **out)
{
    *out = NULL;
    if (!what) what = "a JSON object";
    char *text;
    size_t len;
    if (lmp_read_file(path, max_bytes, &text, &len) != 0) return -1;
    if (len == 0) {
        free(text);
        return lmp_error("%s: empty file (expected %s)", path, what);
    }
    json_error_t jerr;
    json_t *root = json_loadb(text, len, flags, &jerr);
    free(text);
    if (!root) return lmp_error("%s:%d:%d: not valid JSON: %s", path, jerr.line, jerr.column, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return lmp_error("%s: expected %s", path, what);
    }
    *out = root;
    return 0;
}
