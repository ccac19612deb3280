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
    "of space-separated decimals, written as the input is read (in bounded memory,\n"
    "so endless input works; one pre-token longer than 1 MiB is an error).\n" VOCAB_HELP
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

/* Input is read TOKENIZE_CHUNK bytes at a time and encoded as it comes
 * (lmp_bpe_encode_stream), so memory stays bounded however long the input
 * (/dev/zero, a pipe that never ends).  What the encoder holds back is one
 * pre-token and a few bytes; one longer than TOKENIZE_MAX_PIECE (a run of
 * NUL bytes, say, which the regex takes as one piece) is an error: splitting
 * it would give other ids than encoding the whole input, and no other GPT-2
 * tokenizer splits.  LMPIPE_TOKENIZE_CHUNK sets the chunk (bytes) for the
 * tests, which cut the input at many places to compare with one encode. */
#define TOKENIZE_CHUNK ((size_t)64 << 10)
#define TOKENIZE_MAX_PIECE ((size_t)1 << 20)

static size_t tokenize_chunk(void)
{
    const char *s = getenv("LMPIPE_TOKENIZE_CHUNK");
    char *end;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    return s && *s && !*end && v >= 1 && v <= ((size_t)1 << 30) ? (size_t)v : TOKENIZE_CHUNK;
}

/* ids as space-separated decimals, a space before the first unless first */
static int write_ids(const int *ids, size_t n, int first, char **line, size_t *cap)
{
    if (n * 12 + 2 > *cap) *line = reallocCheck(*line, *cap = n * 12 + 2);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        char d[12];
        int k = 0;
        unsigned v = (unsigned)ids[i];
        do d[k++] = (char)('0' + v % 10); while (v /= 10);
        if (i || !first) (*line)[w++] = ' ';
        while (k) (*line)[w++] = d[--k];
    }
    return write_out("tokenize", *line, w);
}

/* Open FILE ("-" or NULL: standard input) for streaming; *name for messages. */
static int open_input(const char *file, FILE **in, const char **name)
{
    if (!file || strcmp(file, "-") == 0) {
        *in = stdin;
        *name = "<stdin>";
        return 0;
    }
    *name = file;
    FILE *f = fopen(file, "rb");
    if (!f) return lmp_error("%s: %s", file, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return lmp_error("%s: is a directory, expected a file", file);
    }
    *in = f;
    return 0;
}

/* 0 done, 1 failed (reported). */
static int tokenize_stream(lmp_bpe *bpe, FILE *in, const char *name, int flags)
{
    size_t chunk = tokenize_chunk(), bufcap = TOKENIZE_MAX_PIECE + chunk, len = 0, line_cap = 0;
    size_t id_cap = 0, n;
    unsigned long long offset = 0; /* input bytes before buf[0] */
    char *buf = mallocCheck(bufcap), *line = NULL;
    int *ids = NULL, first = 1, eof = 0, rc = 1;
    while (!eof) {
        size_t want = bufcap - len < chunk ? bufcap - len : chunk;
        size_t got = fread(buf + len, 1, want, in);
        if (got < want) {
            if (ferror(in)) {
                fprintf(stderr, "lmpipe tokenize: %s: read failed: %s\n", name, strerror(errno));
                goto done;
            }
            eof = 1;
        }
        len += got;
        size_t used;
        n = 0;
        if (lmp_bpe_encode_stream(bpe, buf, len, eof, flags, &ids, &n, &id_cap, &used) != 0) {
            fprintf(stderr, "lmpipe tokenize: %s: %s\n", name, lmp_errmsg());
            goto done;
        }
        if (n && write_ids(ids, n, first, &line, &line_cap) != 0) goto done;
        first &= n == 0;
        memmove(buf, buf + used, len - used);
        len -= used;
        offset += used;
        if (!eof && len > TOKENIZE_MAX_PIECE) {
            fprintf(stderr, "lmpipe tokenize: %s: the pre-token at byte %llu is longer than %zu bytes "
                            "(one run of letters, digits, whitespace or other symbols, such as NUL "
                            "bytes); lmpipe tokenize does not split pre-tokens\n",
                    name, offset, TOKENIZE_MAX_PIECE);
            goto done;
        }
    }
    rc = write_out("tokenize", "\n", 1);
done:
    free(buf);
    free(line);
    free(ids);
    return rc;
}

int lmp_cli_tokenize(int argc, char **argv)
{
    cli_opts o;
    int rc = parse_args("tokenize", TOKENIZE_USAGE, 1, argc, argv, &o);
    if (rc) return rc == 1 ? 0 : 2;
    lmp_bpe *bpe = NULL;
    FILE *in = NULL;
    const char *name;
    if (load_tokenizer(o.vocab, &bpe) != 0 || open_input(o.file, &in, &name) != 0) {
        fprintf(stderr, "lmpipe tokenize: %s\n", lmp_errmsg());
        lmp_bpe_free(bpe);
        return 1;
    }
    rc = tokenize_stream(bpe, in, name, o.special ? LMP_BPE_SPECIAL : 0);
    if (in != stdin) fclose(in);
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
