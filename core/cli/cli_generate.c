/*
 * cli_generate.c — the `lmpipe generate` and `lmpipe perplexity` commands
 * over the GPT-2 API (gpt2.h), with the BPE tokenizer (bpe.h) for text.
 * Exit status: 0 success, 1 bad input (checkpoint, prompt, file), 2 usage.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gpt2.h"

#include "bpe.h"
#include "paths.h"

static const char gen_usage[] =
    "usage: lmpipe generate --model PATH (--prompt TEXT | --prompt-ids 1,2,3) [options]\n"
    "  --model PATH             HF folder, .safetensors file or llm.c .bin\n"
    "  --prompt TEXT            text prompt (needs the tokenizer)\n"
    "  --prompt-ids IDS         comma-separated token ids\n"
    "  --max-new-tokens N       tokens to generate (default 64)\n"
    "  --temperature T          sampling temperature (0 = greedy)\n"
    "  --top-k K                sample among the K most likely tokens\n"
    "  --top-p P                nucleus sampling: the smallest set with mass >= P\n"
    "                           (0: only the most likely token)\n"
    "  --repetition-penalty R   CTRL/HF penalty for tokens already present (1 = off)\n"
    "  --seed S                 sampling seed (default 1337)\n"
    "  --tokenizer DIR          vocab.json+merges.txt or encoder.json+vocab.bpe\n"
    "                           (default: the model's folder, else GPT-2's vocabulary)\n"
    "  --weights f32|f16|q8     weight format of the linear layers and LM head, converted\n"
    "                           on load: f16 (IEEE half) or q8 (int8 per block of 32);\n"
    "                           default f32\n"
    "  --ids                    print the generated ids comma-separated, nothing else\n"
    "Prints the continuation (not the prompt) as it is generated.  Without\n"
    "--temperature, --top-k or --top-p decoding is greedy; with any of them it\n"
    "samples (temperature 1 unless given).  Generation stops at <|endoftext|>\n"
    "(50256, or the tokenizer's) or after N tokens.\n";

static const char ppl_usage[] =
    "usage: lmpipe perplexity --model PATH [--stride N] [--tokenizer DIR] [--weights f32|f16|q8] [--ids] FILE\n"
    "  --weights selects the weight format (as lmpipe generate's; default f32).\n"
    "  FILE is text (tokenized with the BPE tokenizer), or with --ids token ids\n"
    "  separated by commas or whitespace.  Windows of n_ctx tokens every --stride\n"
    "  tokens (default n_ctx/2); each token is scored once.  The last line is\n"
    "  nll=<mean nats> ppl=<exp(nll)> tokens=<scored>.\n";

/* "lmpipe CMD: message" then the usage, exit status 2 (as core/cli/cli.c) */
static int usage_error(const char *usage, const char *fmt, const char *arg)
{
    fprintf(stderr, "lmpipe %s: ", usage == gen_usage ? "generate" : "perplexity");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    return 2;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, float lo, float hi, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

/* "1,2, 3" or "1 2\n3" -> ids; -1 on anything else */
static int parse_ids(const char *s, int **ids, long *n)
{
    long cap = 64, k = 0;
    int *v = mallocCheck((size_t)cap * sizeof *v);
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',') {
            if (*p == ',' && (k == 0 || p[1] == ',')) goto bad; /* ",1" or "1,,2" */
            p++;
        }
        if (!*p) break;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno || end == p || x < 0 || x > 0x7fffffff) goto bad;
        if (k == cap) v = reallocCheck(v, (size_t)(cap *= 2) * sizeof *v);
        v[k++] = (int)x;
        p = end;
        if (*p && *p != ',' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') goto bad;
    }
    if (k == 0) goto bad;
    *ids = v;
    *n = k;
    return 0;
bad:
    free(v);
    return -1;
}

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int has_tokenizer(const char *dir)
{
    char *a = lmp_strfmt("%s/vocab.json", dir), *b = lmp_strfmt("%s/encoder.json", dir);
    struct stat sb;
    int ok = stat(a, &sb) == 0 || stat(b, &sb) == 0;
    free(a);
    free(b);
    return ok;
}

/* The tokenizer: --tokenizer, else next to the model, else GPT-2's (lmp_data_path). */
static int open_tokenizer(const char *given, const char *model, lmp_bpe **out)
{
    if (given) return lmp_bpe_load_dir(given, out);
    char *dir = strdupCheck(model);
    if (!is_dir(dir)) {
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else strcpy(dir, ".");
    }
    int rc;
    if (has_tokenizer(dir)) {
        rc = lmp_bpe_load_dir(dir, out);
    } else { /* GPT-2's own vocabulary, shipped with lmpipe */
        char *d = lmp_data_path("gpt2");
        rc = lmp_bpe_load_dir(d, out);
        free(d);
    }
    free(dir);
    return rc;
}

typedef struct {
    int ids_only, n;
    const lmp_bpe *bpe;
} stream_state;

static int stream_token(void *user, int seq, int token, const float *logits)
{
    stream_state *s = user;
    if (s->ids_only) {
        printf("%s%d", s->n ? "," : "", token);
    } else {
        size_t len;
        const char *t = lmp_bpe_token(s->bpe, token, &len);
        if (t) fwrite(t, 1, len, stdout);
        fflush(stdout);
    }
    s->n++;
    return ferror(stdout) ? 1 : 0;
}

int lmp_cli_generate(int argc, char **argv)
{
    const char *model_path = NULL, *prompt = NULL, *prompt_ids = NULL, *tok_dir = NULL;
    int ids_only = 0, sampling = 0, temp_given = 0, weights = LMP_WEIGHTS_F32;
    lmp_gpt2_gen_opts o;
    lmp_gpt2_gen_opts_default(&o);
    o.temperature = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        char name[64];
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof name) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = 0;
            val = eq + 1;
            a = name;
        }
        if (strcmp(a, "--ids") == 0 && !val) { ids_only = 1; continue; }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { fputs(gen_usage, stdout); return 0; }
        static const char *const with_value[] = { "--model", "--prompt", "--prompt-ids", "--max-new-tokens",
            "--temperature", "--top-k", "--top-p", "--repetition-penalty", "--seed", "--tokenizer", "--weights",
            NULL };
        int known = 0;
        for (int k = 0; with_value[k]; k++) known |= strcmp(a, with_value[k]) == 0;
        if (!known) return usage_error(gen_usage, "unknown argument '%s'", argv[i]);
        if (!val) {
            if (i + 1 >= argc) return usage_error(gen_usage, "%s needs a value", a);
            val = argv[++i];
        }
        long lv;
        if (strcmp(a, "--model") == 0) model_path = val;
        else if (strcmp(a, "--prompt") == 0) prompt = val;
        else if (strcmp(a, "--prompt-ids") == 0) prompt_ids = val;
        else if (strcmp(a, "--tokenizer") == 0) tok_dir = val;
        else if (strcmp(a, "--weights") == 0) {
            if (lmp_weights_parse(val, "--weights", &weights)) return usage_error(gen_usage, "%s", lmp_errmsg());
        } else if (strcmp(a, "--max-new-tokens") == 0) {
            if (parse_long(val, 0, 1 << 24, &lv)) return usage_error(gen_usage, "bad --max-new-tokens '%s'", val);
            o.max_new_tokens = (int)lv;
        } else if (strcmp(a, "--temperature") == 0) {
            if (parse_float(val, 0, 1e6f, &o.temperature)) return usage_error(gen_usage, "bad --temperature '%s' (>= 0)", val);
            temp_given = sampling = 1;
        } else if (strcmp(a, "--top-k") == 0) {
            if (parse_long(val, 0, 1 << 24, &lv)) return usage_error(gen_usage, "bad --top-k '%s'", val);
            o.top_k = (int)lv;
            sampling = 1;
        } else if (strcmp(a, "--top-p") == 0) {
            if (parse_float(val, 0, 1, &o.top_p)) return usage_error(gen_usage, "bad --top-p '%s' (in [0, 1])", val);
            sampling = 1;
        } else if (strcmp(a, "--repetition-penalty") == 0) {
            if (parse_float(val, 1e-6f, 1e6f, &o.repetition_penalty)) return usage_error(gen_usage, "bad --repetition-penalty '%s' (> 0)", val);
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(val, &end, 10);
            if (errno || end == val || *end || val[0] == '-') return usage_error(gen_usage, "bad --seed '%s'", val);
            o.seed = s;
        }
    }
    if (!model_path) return usage_error(gen_usage, "--model is required%s", "");
    if (!prompt == !prompt_ids) return usage_error(gen_usage, "give exactly one of --prompt and --prompt-ids%s", "");
    if (sampling && !temp_given) o.temperature = 1.0f;
    int *ids = NULL;
    long n = 0;
    if (prompt_ids && parse_ids(prompt_ids, &ids, &n) != 0)
        return usage_error(gen_usage, "bad --prompt-ids '%s' (comma-separated token ids)", prompt_ids);

    int rc = 1;
    lmp_gpt2 *m = NULL;
    lmp_bpe *bpe = NULL;
    if (lmp_gpt2_load(model_path, &m) != 0 || lmp_gpt2_set_weights(m, weights) != 0) goto fail;
    if ((prompt || !ids_only) && open_tokenizer(tok_dir, model_path, &bpe) != 0) goto fail;
    if (prompt) {
        size_t nn;
        if (lmp_bpe_encode(bpe, prompt, strlen(prompt), 0, &ids, &nn) != 0) goto fail;
        n = (long)nn;
        if (n == 0) {
            lmp_error("the prompt encodes to no tokens");
            goto fail;
        }
    }
    if (bpe && lmp_bpe_eot(bpe) >= 0) o.eos_id = lmp_bpe_eot(bpe);
    if (n > m->config.n_ctx) {
        lmp_error("the prompt has %ld tokens but the model's context is %d", n, m->config.n_ctx);
        goto fail;
    }
    stream_state st = { ids_only, 0, bpe };
    const int *pp = ids;
    int plen = (int)n;
    if (lmp_gpt2_generate(m, &pp, &plen, 1, &o, stream_token, &st) != 0) goto fail;
    printf("\n");
    fflush(stdout);
    if (ferror(stdout)) {
        lmp_error("cannot write to standard output");
        goto fail;
    }
    rc = 0;
fail:
    if (rc) fprintf(stderr, "lmpipe generate: %s\n", lmp_errmsg());
    free(ids);
    lmp_bpe_free(bpe);
    lmp_gpt2_free(m);
    return rc;
}

int lmp_cli_perplexity(int argc, char **argv)
{
    const char *model_path = NULL, *file = NULL, *tok_dir = NULL;
    int ids_mode = 0, weights = LMP_WEIGHTS_F32;
    long stride = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { fputs(ppl_usage, stdout); return 0; }
        if (strcmp(a, "--ids") == 0) { ids_mode = 1; continue; }
        if (strcmp(a, "--model") == 0 || strcmp(a, "--stride") == 0 || strcmp(a, "--tokenizer") == 0 ||
            strcmp(a, "--weights") == 0) {
            if (i + 1 >= argc) return usage_error(ppl_usage, "%s needs a value", a);
            const char *v = argv[++i];
            if (a[2] == 'm') model_path = v;
            else if (a[2] == 't') tok_dir = v;
            else if (a[2] == 'w') {
                if (lmp_weights_parse(v, "--weights", &weights)) return usage_error(ppl_usage, "%s", lmp_errmsg());
            }
            else if (parse_long(v, 1, 1 << 24, &stride)) return usage_error(ppl_usage, "bad --stride '%s'", v);
            continue;
        }
        if (a[0] == '-' && a[1]) return usage_error(ppl_usage, "unknown argument '%s'", a);
        if (file) return usage_error(ppl_usage, "more than one FILE ('%s')", a);
        file = a;
    }
    if (!model_path || !file) return usage_error(ppl_usage, "--model and FILE are required%s", "");
    int rc = 1, *ids = NULL;
    long n = 0;
    char *text = NULL;
    size_t len;
    lmp_gpt2 *m = NULL;
    lmp_bpe *bpe = NULL;
    if (lmp_read_text_file(file, (size_t)1 << 30, &text, &len) != 0) goto fail;
    if (lmp_gpt2_load(model_path, &m) != 0 || lmp_gpt2_set_weights(m, weights) != 0) goto fail;
    if (ids_mode) {
        if (parse_ids(text, &ids, &n) != 0) {
            lmp_error("%s: not a list of token ids", file);
            goto fail;
        }
    } else {
        size_t nn;
        if (open_tokenizer(tok_dir, model_path, &bpe) != 0) goto fail;
        if (lmp_bpe_encode(bpe, text, len, 0, &ids, &nn) != 0) goto fail;
        n = (long)nn;
    }
    lmp_gpt2_ppl r;
    if (lmp_gpt2_perplexity(m, ids, n, (int)stride, &r) != 0) goto fail;
    printf("model=%s n_ctx=%d stride=%ld weights=%s file=%s\n", model_path, m->config.n_ctx,
           stride ? stride : (long)(m->config.n_ctx / 2 > 0 ? m->config.n_ctx / 2 : 1),
           lmp_weights_name(weights), file);
    printf("nll=%.6f ppl=%.4f tokens=%ld\n", r.nll, r.ppl, r.tokens);
    rc = 0;
fail:
    if (rc) fprintf(stderr, "lmpipe perplexity: %s\n", lmp_errmsg());
    free(text);
    free(ids);
    lmp_bpe_free(bpe);
    lmp_gpt2_free(m);
    return rc;
}
