/*
 * cli_tokenize.c — `lmpipe tokenize` and `lmpipe detokenize`: text to BPE
 * token ids (one line of decimals) and back to the exact bytes.
 *
 * argv[0] is the subcommand's name; options follow.  Return 0 on success, 1
 * on failure (one line "lmpipe tokenize: <msg>" on stderr), 2 on a usage error.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bpe.h"
#include "paths.h"
#include "cli_tokenize.h"
#include "util.h"

#define VOCAB_HELP                                                                        \
    "  --vocab DIR  tokenizer folder: vocab.json + merges.txt or encoder.json + vocab.bpe\n" \
    "               (default: $LMPIPE_DATA_DIR/gpt2 if it exists, else the copy\n"          \
    "               shipped with lmpipe, " LMP_PKGDATADIR "/data/gpt2)\n"

static const char TOKENIZE_USAGE[] =
    "Usage: lmpipe tokenize [--vocab DIR] [--special] [FILE|-]\n"
    "Print the GPT-2 BPE token ids of FILE (default: standard input) as one line\n"
    "of space-separated decimals.\n" VOCAB_HELP
    "  --special    read \"<|endoftext|>\" as the special token, not as text\n"
    "  --help       print this help\n";

static const char DETOKENIZE_USAGE[] =
    "Usage: lmpipe detokenize [--vocab DIR] [FILE|-]\n"
    "Read token ids (decimals separated by whitespace or commas) from FILE (default:\n"
    "standard input) and write the bytes they stand for.\n" VOCAB_HELP
    "  --help       print this help\n";

typedef struct {
    const char *vocab, *file;
    int special;
} cli_opts;

/* 0: run; 1: --help printed; 2: usage error (reported). */
static int parse_args(const char *cmd, const char *usage, int allow_special, int argc, char **argv,
                      cli_opts *o)
{
    memset(o, 0, sizeof *o);
    int only_files = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_files && strcmp(a, "--") == 0) {
            only_files = 1;
        } else if (!only_files && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            fputs(usage, stdout);
            return 1;
        } else if (!only_files && strcmp(a, "--vocab") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "lmpipe %s: --vocab needs a folder\nTry 'lmpipe %s --help'.\n",
                        cmd, cmd);
                return 2;
            }
            o->vocab = argv[++i];
        } else if (!only_files && strncmp(a, "--vocab=", 8) == 0) {
            o->vocab = a + 8;
        } else if (!only_files && allow_special && strcmp(a, "--special") == 0) {
            o->special = 1;
        } else if (!only_files && a[0] == '-' && a[1]) {
            fprintf(stderr, "lmpipe %s: unknown option '%s'\nTry 'lmpipe %s --help'.\n", cmd, a,
                    cmd);
            return 2;
        } else if (o->file) {
            fprintf(stderr, "lmpipe %s: more than one input file ('%s' and '%s')\n"
                            "Try 'lmpipe %s --help'.\n", cmd, o->file, a, cmd);
            return 2;
        } else {
            o->file = a;
        }
    }
    return 0;
}

static int read_input(const char *file, char **data, size_t *len)
{
    if (file && strcmp(file, "-") != 0) return lmp_read_file(file, 0, data, len);
    size_t cap = 1 << 16, n = 0;
    char *buf = mallocCheck(cap);
    for (;;) {
        if (n + 1 >= cap) buf = reallocCheck(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n - 1, stdin);
        n += r;
        if (r == 0) break;
    }
    if (ferror(stdin)) {
        free(buf);
        return lmp_error("<stdin>: read failed: %s", strerror(errno));
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

static int load_tokenizer(const char *dir, lmp_bpe **bpe)
{
    if (dir) return lmp_bpe_load_dir(dir, bpe);
    char *d = lmp_data_path("gpt2");
    int rc = lmp_bpe_load_dir(d, bpe);
    free(d);
    return rc;
}

static int write_out(const char *cmd, const void *p, size_t n)
{
    if (fwrite(p, 1, n, stdout) != n || fflush(stdout) != 0) {
        fprintf(stderr, "lmpipe %s: write error: %s\n", cmd, strerror(errno));
        return 1;
    }
    return 0;
}

int lmp_cli_tokenize(int argc, char **argv)
{
    cli_opts o;
    int rc = parse_args("tokenize", TOKENIZE_USAGE, 1, argc, argv, &o);
    if (rc) return rc == 1 ? 0 : 2;
    lmp_bpe *bpe = NULL;
    char *text = NULL, *line = NULL;
    int *ids = NULL;
    size_t len, n;
    rc = 1;
    if (load_tokenizer(o.vocab, &bpe) != 0 || read_input(o.file, &text, &len) != 0 ||
        lmp_bpe_encode(bpe, text, len, o.special ? LMP_BPE_SPECIAL : 0, &ids, &n) != 0) {
        fprintf(stderr, "lmpipe tokenize: %s\n", lmp_errmsg());
        goto done;
    }
    line = mallocCheck(n * 12 + 2);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        char d[12];
        int k = 0;
        unsigned v = (unsigned)ids[i];
        do d[k++] = (char)('0' + v % 10); while (v /= 10);
        if (i) line[w++] = ' ';
        while (k) line[w++] = d[--k];
    }
    line[w++] = '\n';
    rc = write_out("tokenize", line, w);
done:
    free(line);
    free(ids);
    free(text);
    lmp_bpe_free(bpe);
    return rc;
}

int lmp_cli_detokenize(int argc, char **argv)
{
    cli_opts o;
    int rc = parse_args("detokenize", DETOKENIZE_USAGE, 0, argc, argv, &o);
    if (rc) return rc == 1 ? 0 : 2;
    lmp_bpe *bpe = NULL;
    char *text = NULL, *out = NULL;
    int *ids = NULL;
    size_t len, n = 0, cap = 0, out_len;
    rc = 1;
    if (load_tokenizer(o.vocab, &bpe) != 0 || read_input(o.file, &text, &len) != 0) {
        fprintf(stderr, "lmpipe detokenize: %s\n", lmp_errmsg());
        goto done;
    }
    int nv = lmp_bpe_vocab_size(bpe);
    for (size_t i = 0; i < len;) {
        char c = text[i];
        if (c == ',' || c == ' ' || (c >= '\t' && c <= '\r')) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && text[j] != ',' && text[j] != ' ' && !(text[j] >= '\t' && text[j] <= '\r'))
            j++;
        long long v = 0;
        int ok = 1;
        for (size_t k = i; k < j; k++) {
            if (text[k] < '0' || text[k] > '9') ok = 0;
            else if (v < 1000000000000LL) v = v * 10 + (text[k] - '0');
        }
        if (!ok) {
            fprintf(stderr, "lmpipe detokenize: %s: invalid token id \"%.*s\"\n",
                    o.file && strcmp(o.file, "-") ? o.file : "<stdin>",
                    (int)(j - i > 40 ? 40 : j - i), text + i);
            goto done;
        }
        if (v >= nv) {
            fprintf(stderr, "lmpipe detokenize: token id %.*s out of range (the vocabulary has "
                            "ids 0..%d)\n", (int)(j - i > 40 ? 40 : j - i), text + i, nv - 1);
            goto done;
        }
        if (n == cap) ids = reallocCheck(ids, (cap = cap ? 2 * cap : 1024) * sizeof *ids);
        ids[n++] = (int)v;
        i = j;
    }
    if (lmp_bpe_decode(bpe, ids, n, &out, &out_len) != 0) {
        fprintf(stderr, "lmpipe detokenize: %s\n", lmp_errmsg());
        goto done;
    }
    rc = write_out("detokenize", out, out_len);
done:
    free(out);
    free(ids);
    free(text);
    lmp_bpe_free(bpe);
    return rc;
}
