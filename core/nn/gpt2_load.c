/*
 * gpt2_load.c — GPT-2 checkpoints in and out: Hugging Face folders
 * (config.json + model.safetensors), bare .safetensors files, and llm.c's
 * gpt2_124M.bin (version 3, fp32).  Safetensors weights are already in our
 * [in, out] layout and are used in place from the read-only mapping; llm.c
 * stores its four matrices per block as nn.Linear [out, in], which are
 * transposed once into owned memory (the rest stays mapped).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpt2_priv.h"
#include "jsonfile.h"
#include "nn.h"
#include "qmat.h"

#define LLMC_MAGIC 20240326
#define LLMC_HEADER_INTS 256

/* ------------------------------------------------------------ config */

static int json_int_key(json_t *root, const char *key, const char *path, int *out)
{
    json_t *v = json_object_get(root, key);
    if (!json_is_integer(v))
        return lmp_error("%s: key \"%s\" missing or not an integer", path, key);
    json_int_t x = json_integer_value(v);
    if (x < 0 || x > 0x7fffffff) return lmp_error("%s: key \"%s\" out of range", path, key);
    *out = (int)x;
    return 0;
}

/* Keys of GPT2Config that change the forward pass, with the one value the
 * kernels implement (HF's default).  A checkpoint that asks for another is
 * refused rather than run with the wrong math.  reorder_and_upcast_attn is
 * not here: it only makes HF compute attention scores in fp32, which lmpipe
 * always does. */
static int check_math_keys(json_t *root, const char *path)
{
    static const struct { const char *key; int want; const char *why; } flags[] = {
        { "scale_attn_weights", 1, "attention scores are always scaled by 1/sqrt(head size)" },
        { "scale_attn_by_inverse_layer_idx", 0, "attention scores are never scaled by 1/(layer index + 1)" },
    };
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        json_t *v = json_object_get(root, flags[i].key);
        if (!v || json_is_null(v)) continue;
        if (!json_is_boolean(v))
            return lmp_error("%s: key \"%s\" is not true or false", path, flags[i].key);
        if (json_is_true(v) != flags[i].want)
            return lmp_error("%s: %s %s not supported (%s)", path, flags[i].key,
                             flags[i].want ? "false" : "true", flags[i].why);
    }
    json_t *upcast = json_object_get(root, "reorder_and_upcast_attn");
    if (upcast && !json_is_null(upcast) && !json_is_boolean(upcast))
        return lmp_error("%s: key \"reorder_and_upcast_attn\" is not true or false", path);
    return 0;
}

/* n_inner (null: 4 * n_embd) sizes the MLP; the model has 4 * n_embd. */
static int check_n_inner(json_t *root, const char *path, int n_embd)
{
    json_t *v = json_object_get(root, "n_inner");
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v)) return lmp_error("%s: key \"n_inner\" is not an integer or null", path);
    if (json_integer_value(v) != 4 * (json_int_t)n_embd)
        return lmp_error("%s: n_inner %lld not supported (only 4 * n_embd = %lld)", path,
                         (long long)json_integer_value(v), 4 * (long long)n_embd);
    return 0;
}

/* Read a Hugging Face GPT-2 config.json. */
static int read_config_json(const char *path, lmp_gpt2_config *c)
{
    json_t *root;
    if (lmp_json_read_file(path, 1 << 20, 0, NULL, &root) != 0) return -1;
    int rc = -1;
    json_t *mt = json_object_get(root, "model_type");
    if (mt && (!json_is_string(mt) || strcmp(json_string_value(mt), "gpt2") != 0)) {
        lmp_error("%s: model_type is \"%s\", expected \"gpt2\"", path,
                  json_is_string(mt) ? json_string_value(mt) : "?");
        goto done;
    }
    json_t *act = json_object_get(root, "activation_function");
    if (act && (!json_is_string(act) || (strcmp(json_string_value(act), "gelu_new") != 0 &&
                                         strcmp(json_string_value(act), "gelu_pytorch_tanh") != 0))) {
        lmp_error("%s: activation_function \"%s\" not supported (only gelu_new)", path,
                  json_is_string(act) ? json_string_value(act) : "?");
        goto done;
    }
    if (json_int_key(root, "n_layer", path, &c->n_layer) || json_int_key(root, "n_head", path, &c->n_head) ||
        json_int_key(root, "n_embd", path, &c->n_embd) ||
        json_int_key(root, "vocab_size", path, &c->vocab_size) ||
        json_int_key(root, json_object_get(root, "n_positions") ? "n_positions" : "n_ctx", path,
                     &c->n_ctx))
        goto done;
    if (check_math_keys(root, path) != 0 || check_n_inner(root, path, c->n_embd) != 0) goto done;
    json_t *eps = json_object_get(root, "layer_norm_epsilon");
    if (eps && !json_is_number(eps)) {
        lmp_error("%s: key \"layer_norm_epsilon\" is not a number", path);
        goto done;
    }
    c->layer_norm_epsilon = eps ? (float)json_number_value(eps) : 1e-5f;
    rc = lmp_gpt2_config_check(c, path);
done:
    json_decref(root);
    return rc;
}

static int meta_int(const lmp_st *st, const char *key, int *out)
{
    const char *s = lmp_st_metadata(st, key);
    if (!s) return lmp_error("%s: __metadata__ has no \"%s\"", lmp_st_path(st), key);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 0x7fffffff)
        return lmp_error("%s: __metadata__ \"%s\" = \"%s\" is not a valid integer", lmp_st_path(st),
                         key, s);
    *out = (int)v;
    return 0;
}

/* The config saved by lmp_gpt2_save in __metadata__; 1 if there is one. */
static int config_from_metadata(const lmp_st *st, lmp_gpt2_config *c)
{
    if (!lmp_st_metadata(st, "n_layer")) return 0;
    const char *ctx_key = lmp_st_metadata(st, "n_positions") ? "n_positions" : "n_ctx";
    if (meta_int(st, "n_layer", &c->n_layer) || meta_int(st, "n_head", &c->n_head) ||
        meta_int(st, "n_embd", &c->n_embd) || meta_int(st, "vocab_size", &c->vocab_size) ||
        meta_int(st, ctx_key, &c->n_ctx))
        return -1;
    const char *eps = lmp_st_metadata(st, "layer_norm_epsilon");
    double e = 1e-5;
    if (eps && lmp_parse_double(eps, &e) != 0)
        return lmp_error("%s: __metadata__ \"layer_norm_epsilon\": %s", lmp_st_path(st), lmp_errmsg());
    c->layer_norm_epsilon = (float)e;
    if (lmp_gpt2_config_check(c, lmp_st_path(st)) != 0) return -1;
    return 1;
}

/* ------------------------------------------------------------ safetensors */

/* n values of dtype F16 or BF16 (src) as fp32 (dst). */
static void half_to_f32(const char *dtype, const uint16_t *src, size_t n, float *dst)
{
    int f16 = strcmp(dtype, "F16") == 0;
    for (size_t i = 0; i < n; i++) {
        if (f16) dst[i] = lmp_f16_to_f32(src[i]);
        else {
            uint32_t bits = (uint32_t)src[i] << 16;
            memcpy(&dst[i], &bits, 4);
        }
    }
}

/* Tensor prefix + name as fp32 with the exact shape {d0} or {d0, d1}: a
 * pointer into the mapping for F32, a converted owned copy for F16/BF16. */
static int st_param(lmp_gpt2 *m, lmp_st *st, const char *prefix, const char *name, int ndim,
                    int64_t d0, int64_t d1, float **out)
{
    char key[160];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    const lmp_st_info *ti = lmp_st_find(st, key);
    if (!ti) return lmp_error("%s: missing tensor \"%s\"", lmp_st_path(st), key);
    int64_t want[2] = { d0, d1 };
    if (ti->ndim != ndim || ti->shape[0] != d0 || (ndim == 2 && ti->shape[1] != d1)) {
        char have[200], exp[64];
        lmp_st_shape_text(have, sizeof have, ti->shape, ti->ndim);
        lmp_st_shape_text(exp, sizeof exp, want, ndim);
        return lmp_error("%s: tensor \"%s\" has shape %s, expected %s", lmp_st_path(st), key, have,
                         exp);
    }
    const void *data;
    size_t n = (size_t)d0 * (ndim == 2 ? (size_t)d1 : 1);
    if (strcmp(ti->dtype, "F32") == 0) {
        if (lmp_st_get(st, key, "F32", &data, NULL, NULL) != 0) return -1;
        *out = (float *)data; /* read-only mapping: see gpt2.h */
        return 0;
    }
    int f16 = strcmp(ti->dtype, "F16") == 0, bf16 = strcmp(ti->dtype, "BF16") == 0;
    if (!f16 && !bf16)
        return lmp_error("%s: tensor \"%s\" has dtype %s, expected F32, F16 or BF16",
                         lmp_st_path(st), key, ti->dtype);
    if (lmp_st_get(st, key, ti->dtype, &data, NULL, NULL) != 0) return -1;
    float *f = gpt2_own(m, n);
    half_to_f32(ti->dtype, data, n, f);
    *out = f;
    return 0;
}

/* ------------------------------------------------------------ finite weights */

/* Every weight must be finite: a NaN or infinity in a checkpoint would
 * otherwise surface far from its cause, as token 0 generated forever or a
 * NaN loss.  One vectorised pass over the floats; for a mapped F32 file it
 * reads the file once at load, which the first forward would do anyway.
 * Tensors are named as the file names them (prefix + HF name); llm.c files
 * store the linear weights [out, in], so their index is given in that order. */
static int check_finite(lmp_gpt2 *m, const char *file, const char *prefix, int llmc)
{
    int n, rc = 0;
    gpt2_tensor *t = gpt2_tensors(m, &n);
    for (int i = 0; i < n && !rc; i++) {
        const float *x = *t[i].slot;
        size_t at = lmp_nn_first_nonfinite(x, t[i].n);
        if (at == t[i].n) continue;
        const char *what = isnan(x[at]) ? "NaN" : x[at] > 0 ? "+Inf" : "-Inf";
        size_t idx = at;
        if (llmc && t[i].def->llmc_t) /* [in, out] -> [out, in] */
            idx = (at % (size_t)t[i].d1) * (size_t)t[i].d0 + at / (size_t)t[i].d1;
        rc = lmp_error("%s: tensor \"%s%s\" has a non-finite value (%s) at index %zu", file, prefix,
                       t[i].name, what, idx);
    }
    free(t);
    return rc;
}

static int load_safetensors(const char *st_path, const char *config_path, const char *source,
                            lmp_gpt2 **out)
{
    lmp_st *st;
    if (lmp_st_open(st_path, &st) != 0) return -1;
    lmp_gpt2_config c;
    int have = config_from_metadata(st, &c);
    if (have < 0) {
        lmp_st_close(st);
        return -1;
    }
    if (!have) {
        struct stat sb;
        if (!config_path || stat(config_path, &sb) != 0) {
            lmp_error("%s: no GPT-2 config: no n_layer in __metadata__ and no config.json next to it",
                      st_path);
            lmp_st_close(st);
            return -1;
        }
        if (read_config_json(config_path, &c) != 0) {
            lmp_st_close(st);
            return -1;
        }
    }
    const char *prefix = "";
    if (!lmp_st_find(st, "wte.weight") && lmp_st_find(st, "transformer.wte.weight"))
        prefix = "transformer.";
    lmp_gpt2 *m = gpt2_new_shell(&c, source);
    m->storage->st = st;
    int64_t C = c.n_embd, V = c.vocab_size;
    int n, rc = 0;
    gpt2_tensor *t = gpt2_tensors(m, &n);
    for (int i = 0; i < n && !rc; i++)
        rc = st_param(m, st, prefix, t[i].name, t[i].d1 ? 2 : 1, t[i].d0, t[i].d1, t[i].slot);
    free(t);
    if (!rc) { /* a checkpoint with more blocks than its config says */
        char extra[96];
        snprintf(extra, sizeof extra, "%sh.%d.ln_1.weight", prefix, c.n_layer);
        if (lmp_st_find(st, extra))
            rc = lmp_error("%s: tensor \"%s\" present but the config has n_layer %d", st_path, extra,
                           c.n_layer);
    }
    if (!rc) rc = check_finite(m, st_path, prefix, 0);
    const lmp_st_info *head = lmp_st_find(st, "lm_head.weight");
    if (!rc && head) { /* tied head: must repeat wte exactly */
        float *hw;
        rc = st_param(m, st, "", "lm_head.weight", 2, V, C, &hw);
        if (!rc && memcmp(hw, m->wte, (size_t)V * C * sizeof(float)) != 0)
            rc = lmp_error("%s: lm_head.weight differs from wte.weight (only a tied LM head is supported)",
                           st_path);
    }
    if (rc) {
        lmp_gpt2_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

/* ------------------------------------------------------------ llm.c */

/* dst[in,out] = src[out,in]^T, in tiles so both sides stay in cache. */
static void transpose_into(float *dst, const float *src, int out, int in)
{
    const int TB = 32;
    for (int o0 = 0; o0 < out; o0 += TB)
        for (int i0 = 0; i0 < in; i0 += TB)
            for (int o = o0; o < o0 + TB && o < out; o++)
                for (int i = i0; i < i0 + TB && i < in; i++)
                    dst[(size_t)i * out + o] = src[(size_t)o * in + i];
}

static int pread_full(int fd, void *buf, size_t n, off_t at)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, at);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r == 0) errno = EIO;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        at += r;
    }
    return 0;
}

static int load_llmc(const char *path, lmp_gpt2 **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lmp_error("%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return lmp_error("%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < LLMC_HEADER_INTS * 4) {
        close(fd);
        return lmp_error("%s: file too small for an llm.c header (%zu bytes)", path, size);
    }
    void *map = lmp_map_file(fd, size, path); /* a SIGBUS reading it names the file (util.h) */
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return lmp_error("%s: mmap failed: %s", path, strerror(e));
    const int32_t *hdr = map;
    int rc = 0;
    if (hdr[0] != LLMC_MAGIC)
        rc = lmp_error("%s: bad magic %d (not an llm.c GPT-2 checkpoint)", path, hdr[0]);
    else if (hdr[1] != 3)
        rc = lmp_error("%s: llm.c checkpoint version %d not supported (only 3 = fp32)", path, hdr[1]);
    lmp_gpt2_config c = { .n_ctx = hdr[2], .vocab_size = hdr[3], .n_layer = hdr[4],
                          .n_head = hdr[5], .n_embd = hdr[6], .layer_norm_epsilon = 1e-5f };
    int Vp = hdr[7];
    if (!rc) rc = lmp_gpt2_config_check(&c, path);
    if (!rc && (Vp < c.vocab_size || Vp > c.vocab_size + 65536))
        rc = lmp_error("%s: padded vocab size %d does not fit vocab size %d", path, Vp, c.vocab_size);
    size_t C = (size_t)c.n_embd, L = (size_t)c.n_layer, nparams = 0;
    /* only a checked header gives sizes (Vp - V of unchecked ints can overflow) */
    if (!rc) nparams = lmp_gpt2_num_params(&c) + (size_t)(Vp - c.vocab_size) * C;
    if (!rc && size != LLMC_HEADER_INTS * 4 + nparams * 4)
        rc = lmp_error("%s: file is %zu bytes, expected %zu for its header (L=%d, C=%d, V=%d, Vp=%d, maxT=%d)",
                       path, size, LLMC_HEADER_INTS * 4 + nparams * 4, c.n_layer, c.n_embd,
                       c.vocab_size, Vp, c.n_ctx);
    if (rc) {
        lmp_unmap_file(map, size);
        return -1;
    }
    lmp_gpt2 *m = gpt2_new_shell(&c, path);
    m->storage->map = map;
    m->storage->map_len = size;
    /* The table's order is llm.c's: wte[Vp,C] wpe[maxT,C], then each block
     * tensor for all L layers (ln1w[L,C] ... fcprojb[L,C]), then lnfw lnfb.
     * The [out, in] matrices (llmc_t) are read with pread into a scratch
     * buffer and transposed into owned memory, so their mapped pages are
     * never touched (peak RSS stays near the weight bytes). */
    float *p = (float *)((char *)map + LLMC_HEADER_INTS * 4);
    float *tw = gpt2_own(m, L * 12 * C * C);
    float *scratch = mallocCheck(4 * C * C * sizeof(float));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) rc = lmp_error("%s: %s", path, strerror(errno));
    for (const gpt2_tensor_def *d = gpt2_tensor_table; d < gpt2_tensor_table + GPT2_N_DEFS && !rc; d++) {
        size_t n = gpt2_tensor_at(m, d, 0).n;
        for (size_t l = 0; l < (d->block ? L : 1) && !rc; l++) {
            gpt2_tensor t = gpt2_tensor_at(m, d, (int)l);
            *t.slot = p + l * n;
            if (!d->llmc_t) continue;
            off_t at = (off_t)((const char *)*t.slot - (const char *)map);
            if (pread_full(fd, scratch, t.n * sizeof(float), at) != 0) {
                rc = lmp_error("%s: read failed: %s", path, strerror(errno));
                break;
            }
            transpose_into(tw, scratch, t.d1, t.d0);
            *t.slot = tw;
            tw += t.n;
        }
        if (d->off == offsetof(lmp_gpt2, wte) && !d->block) n = (size_t)Vp * C; /* rows V..Vp-1: padding, never read */
        p += (d->block ? L : 1) * n;
    }
    if (fd >= 0) close(fd);
    free(scratch);
    if (rc) {
        lmp_gpt2_free(m);
        return -1;
    }
    if (check_finite(m, path, "", 1) != 0) {
        lmp_gpt2_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

/* ------------------------------------------------------------ dispatch */

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int lmp_gpt2_load(const char *path, lmp_gpt2 **out)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return lmp_error("%s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        char *st = lmp_strfmt("%s/model.safetensors", path);
        char *cfg = lmp_strfmt("%s/config.json", path);
        int rc;
        if (stat(st, &sb) != 0) {
            char *bin = lmp_strfmt("%s/pytorch_model.bin", path);
            rc = lmp_error("%s: no model.safetensors in the folder%s", path,
                           stat(bin, &sb) == 0 ? " (pytorch_model.bin is not supported: convert it to safetensors)" : "");
            free(bin);
        } else if (stat(cfg, &sb) != 0) {
            rc = lmp_error("%s: no config.json in the folder", path);
        } else {
            rc = load_safetensors(st, cfg, path, out);
        }
        free(st);
        free(cfg);
        return rc;
    }
    /* a file: llm.c by its magic (or name), otherwise safetensors */
    int32_t magic = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lmp_error("%s: %s", path, strerror(errno));
    size_t got = fread(&magic, 1, 4, f);
    fclose(f);
    if ((got == 4 && magic == LLMC_MAGIC) || ends_with(path, ".bin")) return load_llmc(path, out);
    char *dir = strdupCheck(path);
    char *slash = strrchr(dir, '/');
    char *cfg = slash ? (slash[1] = 0, lmp_strfmt("%sconfig.json", dir)) : strdupCheck("config.json");
    int rc = load_safetensors(path, cfg, path, out);
    free(cfg);
    free(dir);
    return rc;
}

/* ------------------------------------------------------------ save */

/* What a GPT2ForSequenceClassification checkpoint adds to a GPT-2 one. */
typedef struct {
    const float *head; /* score.weight [num_labels, n_embd] */
    int num_labels, pad_token_id;
} seq_cls;

/* config.json of a folder: GPT2LMHeadModel's, or with sc GPT2ForSequenceClassification's
 * (id2label / label2id as transformers names labels by default, and pad_token_id,
 * which its forward needs to find each row's last real token). */
static int write_config(const lmp_gpt2_config *c, const char *eps, const seq_cls *sc, const char *dir)
{
    json_t *j = json_object();
    json_t *arch = json_array();
    json_array_append_new(arch, json_string(sc ? "GPT2ForSequenceClassification" : "GPT2LMHeadModel"));
    json_object_set_new(j, "architectures", arch);
    json_object_set_new(j, "model_type", json_string("gpt2"));
    json_object_set_new(j, "activation_function", json_string("gelu_new"));
    json_object_set_new(j, "n_layer", json_integer(c->n_layer));
    json_object_set_new(j, "n_head", json_integer(c->n_head));
    json_object_set_new(j, "n_embd", json_integer(c->n_embd));
    json_object_set_new(j, "n_positions", json_integer(c->n_ctx));
    json_object_set_new(j, "n_ctx", json_integer(c->n_ctx));
    json_object_set_new(j, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(j, "layer_norm_epsilon", json_real(strtod(eps, NULL)));
    json_object_set_new(j, "bos_token_id", json_integer(LMP_GPT2_EOS));
    json_object_set_new(j, "eos_token_id", json_integer(LMP_GPT2_EOS));
    json_object_set_new(j, "tie_word_embeddings", json_true());
    if (sc) {
        json_t *id2label = json_object(), *label2id = json_object();
        for (int k = 0; k < sc->num_labels; k++) {
            char id[16], name[32];
            snprintf(id, sizeof id, "%d", k);
            snprintf(name, sizeof name, "LABEL_%d", k);
            json_object_set_new(id2label, id, json_string(name));
            json_object_set_new(label2id, name, json_integer(k));
        }
        json_object_set_new(j, "id2label", id2label);
        json_object_set_new(j, "label2id", label2id);
        json_object_set_new(j, "pad_token_id", json_integer(sc->pad_token_id));
        json_object_set_new(j, "torch_dtype", json_string("float32"));
    }
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(j);
    char *cfg = lmp_strfmt("%s/config.json", dir);
    char *body = lmp_strfmt("%s\n", s);
    int rc = lmp_write_file_atomic(cfg, body, strlen(body));
    free(body);
    free(cfg);
    free(s);
    return rc;
}

/* lmp_gpt2_save, and with sc the body under "transformer." (the module
 * GPT2For* models hold it in) and the head beside it. */
static int save_checkpoint(const lmp_gpt2 *m, const char *path, const seq_cls *sc)
{
    const lmp_gpt2_config *c = &m->config;
    int L = c->n_layer;
    int64_t C = c->n_embd;
    int n = 4 + 12 * L + (sc ? 1 : 0);
    const char *prefix = sc ? "transformer." : "";
    lmp_st_tensor *t = callocCheck((size_t)n, sizeof *t);
    int64_t (*shapes)[2] = callocCheck((size_t)n, sizeof *shapes);
    char (*names)[96] = callocCheck((size_t)n, sizeof *names);
    int k = 0;
#define ADD(nm, ptr, d0, d1)                                              \
    do {                                                                  \
        snprintf(names[k], sizeof names[k], "%s%s", prefix, nm);          \
        shapes[k][0] = (d0);                                              \
        shapes[k][1] = (d1);                                              \
        t[k] = (lmp_st_tensor){ names[k], "F32", (d1) ? 2 : 1, shapes[k], (ptr) }; \
        k++;                                                              \
    } while (0)
    int nt;
    gpt2_tensor *pt = gpt2_tensors((lmp_gpt2 *)m, &nt); /* only reads the slots */
    for (int i = 0; i < nt; i++) ADD(pt[i].name, *pt[i].slot, pt[i].d0, pt[i].d1);
    free(pt);
    if (sc) {
        prefix = "";
        ADD("score.weight", sc->head, sc->num_labels, C);
    }
#undef ADD
    char v[5][16], eps[32];
    snprintf(v[0], sizeof v[0], "%d", c->n_layer);
    snprintf(v[1], sizeof v[1], "%d", c->n_head);
    snprintf(v[2], sizeof v[2], "%d", c->n_embd);
    snprintf(v[3], sizeof v[3], "%d", c->n_ctx);
    snprintf(v[4], sizeof v[4], "%d", c->vocab_size);
    /* shortest text that reads back as the same float: "1e-05" */
    snprintf(eps, sizeof eps, "%.6g", c->layer_norm_epsilon);
    if (strtof(eps, NULL) != c->layer_norm_epsilon) snprintf(eps, sizeof eps, "%.9g", c->layer_norm_epsilon);
    lmp_st_kv meta[] = { { "format", "pt" }, { "model_type", "gpt2" }, { "n_layer", v[0] },
                         { "n_head", v[1] },  { "n_embd", v[2] },       { "n_positions", v[3] },
                         { "vocab_size", v[4] }, { "layer_norm_epsilon", eps } };
    int nmeta = (int)(sizeof meta / sizeof meta[0]);
    int rc;
    if (ends_with(path, ".safetensors")) {
        rc = lmp_st_write(path, t, n, meta, nmeta);
    } else if ((rc = lmp_mkdirs(path)) == 0) {
        char *stp = lmp_strfmt("%s/model.safetensors", path);
        rc = lmp_st_write(stp, t, n, meta, nmeta);
        free(stp);
        if (rc == 0) rc = write_config(c, eps, sc, path);
    }
    free(t);
    free(shapes);
    free(names);
    return rc;
}

int lmp_gpt2_save(const lmp_gpt2 *m, const char *path) { return save_checkpoint(m, path, NULL); }

int lmp_gpt2_save_seq_cls(const lmp_gpt2 *m, const char *path, const float *head, int num_labels, int pad_token_id)
{
    if (num_labels < 1) return lmp_error("%s: a sequence classifier needs at least one label", path);
    if (pad_token_id < 0 || pad_token_id >= m->config.vocab_size)
        return lmp_error("%s: pad_token_id %d is not in the vocabulary [0, %d)", path, pad_token_id,
                         m->config.vocab_size);
    seq_cls sc = { head, num_labels, pad_token_id };
    return save_checkpoint(m, path, &sc);
}

/* ------------------------------------------------------------ a classifier's head */

/* id2label's size in the config.json beside a checkpoint folder's weights,
 * or 0 when it has none. */
static int config_labels(const char *dir, int *n)
{
    *n = 0;
    char *p = lmp_strfmt("%s/config.json", dir);
    json_t *j;
    struct stat sb;
    int rc = 0;
    if (stat(p, &sb) == 0 && (rc = lmp_json_read_file(p, 1 << 20, 0, NULL, &j)) == 0) {
        json_t *ids = json_object_get(j, "id2label");
        if (json_is_object(ids)) *n = (int)json_object_size(ids);
        json_decref(j);
    }
    free(p);
    return rc;
}

int lmp_gpt2_load_seq_cls_head(const char *path, int n_embd, int *num_labels, float **head)
{
    *num_labels = 0;
    *head = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return lmp_error("%s: %s", path, strerror(errno));
    int dir = S_ISDIR(sb.st_mode);
    if (!dir && !ends_with(path, ".safetensors")) return 0; /* llm.c: a language model only */
    char *stp = dir ? lmp_strfmt("%s/model.safetensors", path) : strdupCheck(path);
    lmp_st *st = NULL;
    int rc = lmp_st_open(stp, &st) == 0 ? 0 : -1;
    const lmp_st_info *ti = rc == 0 ? lmp_st_find(st, "score.weight") : NULL;
    if (ti) {
        const void *d;
        int want = 0;
        if (ti->ndim != 2 || ti->shape[0] < 1 || ti->shape[0] > 1000000 || ti->shape[1] != n_embd ||
            (strcmp(ti->dtype, "F32") != 0 && strcmp(ti->dtype, "F16") != 0 && strcmp(ti->dtype, "BF16") != 0))
            rc = lmp_error("%s: tensor \"score.weight\" must be [num_labels, %d] (F32, F16 or BF16)", stp, n_embd);
        else if (dir && (rc = config_labels(path, &want)) == 0 && want && want != ti->shape[0])
            rc = lmp_error("%s/config.json: id2label has %d labels but score.weight in %s has %lld rows", path, want,
                           stp, (long long)ti->shape[0]);
        if (rc == 0) rc = lmp_st_get(st, "score.weight", ti->dtype, &d, NULL, NULL);
        if (rc == 0) {
            size_t n = (size_t)ti->shape[0] * (size_t)n_embd;
            *head = mallocCheck(n * sizeof(float));
            if (strcmp(ti->dtype, "F32") == 0) memcpy(*head, d, n * sizeof(float));
            else half_to_f32(ti->dtype, d, n, *head);
            *num_labels = (int)ti->shape[0];
            rc = 1;
        }
    }
    lmp_st_close(st);
    free(stp);
    return rc;
}
