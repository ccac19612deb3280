/*
 * replay.c — runs fuzz targets on files, without libFuzzer: the seed corpora
 * and the regression inputs (crashes the fuzzers found, kept after the fix)
 * go through every build's `make check` this way (tests/fuzz.test), under
 * the sanitizers too when configured with --enable-sanitizers.
 *
 * Usage: fuzz_replay TARGET FILE-OR-DIR...   (prints how many inputs ran)
 */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "util.h"

static const struct {
    const char *name;
    int (*fn)(const uint8_t *, size_t);
} targets[] = {
    {"pipeline", fuzz_pipeline}, {"param", fuzz_param},         {"safetensors", fuzz_safetensors},
    {"gpt2", fuzz_gpt2},         {"bpe_load", fuzz_bpe_load},   {"tokenizer", fuzz_tokenizer},
    {"cola", fuzz_cola},         {"lora", fuzz_lora},
};

static int run_file(int (*fn)(const uint8_t *, size_t), const char *path)
{
    char *data;
    size_t n;
    if (lmp_read_file(path, 0, &data, &n) != 0) {
        fprintf(stderr, "fuzz_replay: %s\n", lmp_errmsg());
        return -1;
    }
    /* a copy of exactly n bytes, so a read past the input is caught by ASan */
    uint8_t *copy = mallocCheck(n ? n : 1);
    memcpy(copy, data, n);
    free(data);
    fn(copy, n);
    free(copy);
    return 0;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: fuzz_replay TARGET FILE-OR-DIR...\n");
        return 2;
    }
    int (*fn)(const uint8_t *, size_t) = NULL;
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        if (strcmp(targets[i].name, argv[1]) == 0) fn = targets[i].fn;
    if (!fn) {
        fprintf(stderr, "fuzz_replay: no target '%s'\n", argv[1]);
        return 2;
    }
    int runs = 0, bad = 0;
    for (int a = 2; a < argc; a++) {
        struct stat st;
        if (stat(argv[a], &st) != 0) {
            fprintf(stderr, "fuzz_replay: %s: no such file or directory\n", argv[a]);
            bad = 1;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad |= run_file(fn, argv[a]) != 0;
            runs++;
            continue;
        }
        DIR *d = opendir(argv[a]);
        char **names = NULL;
        int n = 0;
        for (struct dirent *e; d && (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            names = reallocCheck(names, (size_t)(n + 1) * sizeof *names);
            names[n++] = lmp_strfmt("%s/%s", argv[a], e->d_name);
        }
        if (d) closedir(d);
        qsort(names, (size_t)n, sizeof *names, cmp);
        for (int i = 0; i < n; i++) {
            bad |= run_file(fn, names[i]) != 0;
            runs++;
            free(names[i]);
        }
        free(names);
    }
    printf("fuzz_replay %s: %d inputs\n", argv[1], runs);
    return bad;
}
