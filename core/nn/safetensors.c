/*
 * safetensors.c — memory-mapped safetensors reader with full header
 * validation, and the matching atomic writer.  See safetensors.h.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"
#include "util.h"

/* The Python/Rust library refuses headers above 100 MB; so do we. */
#define ST_MAX_HEADER 100000000ull

struct lmp_st {
    char *path;
    unsigned char *map;     /* whole file, PROT_READ */
    size_t map_len;
    const unsigned char *data; /* start of the data region */
    uint64_t data_len;
    int n;
    lmp_st_info *info;
    void **copies;          /* per tensor: aligned copy of a misaligned tensor, or NULL */
    int n_meta;
    char **meta_keys, **meta_vals;
};

static const struct { const char *name; size_t size; } st_dtypes[] = {
    { "BOOL", 1 }, { "U8", 1 }, { "I8", 1 }, { "F8_E5M2", 1 }, { "F8_E4M3", 1 },
    { "I16", 2 }, { "U16", 2 }, { "F16", 2 }, { "BF16", 2 },
    { "I32", 4 }, { "U32", 4 }, { "F32", 4 },
    { "F64", 8 }, { "I64", 8 }, { "U64", 8 },
};

size_t lmp_st_dtype_size(const char *dtype)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(dtype, st_dtypes[i].name) == 0) return st_dtypes[i].size;
    return 0;
}

void lmp_st_shape_text(char *buf, size_t cap, const int64_t *shape, int ndim)
{
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

void lmp_st_close(lmp_st *st)
{
    if (!st) return;
    for (int i = 0; i < st->n; i++) {
        free((char *)st->info[i].name);
        free((char *)st->info[i].dtype);
        free(st->copies[i]);
    }
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_vals[i]);
    }
    free(st->meta_keys);
    free(st->meta_vals);
    free(st->info);
    free(st->copies);
    if (st->map) lmp_unmap_file(st->map, st->map_len);
    free(st->path);
    free(st);
}

/* Parse one tensor entry of the header into *ti (name already set). */
static int parse_entry(const char *path, const char *name, json_t *v, lmp_st_info *ti)
{
    if (!json_is_object(v)) return lmp_error("%s: tensor \"%s\": entry is not an object", path, name);
    json_t *dt = json_object_get(v, "dtype");
    if (!json_is_string(dt)) return lmp_error("%s: tensor \"%s\": missing dtype", path, name);
    const char *dts = json_string_value(dt);
    size_t esz = lmp_st_dtype_size(dts);
    if (!esz) return lmp_error("%s: tensor \"%s\": unknown dtype \"%s\"", path, name, dts);
    ti->dtype = strdupCheck(dts);
    json_t *sh = json_object_get(v, "shape");
    if (!json_is_array(sh)) return lmp_error("%s: tensor \"%s\": missing shape", path, name);
    if (json_array_size(sh) > LMP_ST_MAX_DIMS)
        return lmp_error("%s: tensor \"%s\": %zu dimensions (limit %d)", path, name,
                         json_array_size(sh), LMP_ST_MAX_DIMS);
    ti->ndim = (int)json_array_size(sh);
    uint64_t nelem = 1;
    for (int d = 0; d < ti->ndim; d++) {
        json_t *x = json_array_get(sh, (size_t)d);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return lmp_error("%s: tensor \"%s\": shape entries must be non-negative integers",
                             path, name);
        ti->shape[d] = json_integer_value(x);
        if (__builtin_mul_overflow(nelem, (uint64_t)ti->shape[d], &nelem))
            return lmp_error("%s: tensor \"%s\": shape too large", path, name);
    }
    uint64_t need;
    if (__builtin_mul_overflow(nelem, (uint64_t)esz, &need))
        return lmp_error("%s: tensor \"%s\": shape too large", path, name);
    json_t *off = json_object_get(v, "data_offsets");
    if (!json_is_array(off) || json_array_size(off) != 2 ||
        !json_is_integer(json_array_get(off, 0)) || !json_is_integer(json_array_get(off, 1)) ||
        json_integer_value(json_array_get(off, 0)) < 0 || json_integer_value(json_array_get(off, 1)) < 0)
        return lmp_error("%s: tensor \"%s\": data_offsets must be two non-negative integers",
                         path, name);
    uint64_t b = (uint64_t)json_integer_value(json_array_get(off, 0));
    uint64_t e = (uint64_t)json_integer_value(json_array_get(off, 1));
    if (e < b)
        return lmp_error("%s: tensor \"%s\": data_offsets [%llu, %llu] end before they begin",
                         path, name, (unsigned long long)b, (unsigned long long)e);
    if (e - b != need) {
        char s[160];
        lmp_st_shape_text(s, sizeof s, ti->shape, ti->ndim);
        return lmp_error("%s: tensor \"%s\": data_offsets [%llu, %llu] hold %llu bytes but %s x %s needs %llu",
                         path, name, (unsigned long long)b, (unsigned long long)e,
                         (unsigned long long)(e - b), dts, s, (unsigned long long)need);
    }
    ti->begin = b;
    ti->nbytes = (size_t)need;
    return 0;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const lmp_st_info *x = *(lmp_st_info *const *)a, *y = *(lmp_st_info *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static int parse_header(lmp_st *st, const char *hdr, size_t hlen)
{
    const char *path = st->path;
    json_error_t jerr;
    json_t *root = json_loadb(hdr, hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return lmp_error("%s: header is not valid JSON: %s (line %d, column %d)", path, jerr.text,
                         jerr.line, jerr.column);
    if (!json_is_object(root)) {
        json_decref(root);
        return lmp_error("%s: header is not a JSON object", path);
    }
    size_t cap = json_object_size(root);
    st->info = callocCheck(cap ? cap : 1, sizeof *st->info);
    st->copies = callocCheck(cap ? cap : 1, sizeof *st->copies);
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(v)) {
                rc = lmp_error("%s: __metadata__ is not an object", path);
                break;
            }
            size_t m = json_object_size(v);
            st->meta_keys = callocCheck(m ? m : 1, sizeof(char *));
            st->meta_vals = callocCheck(m ? m : 1, sizeof(char *));
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv)) {
                    rc = lmp_error("%s: __metadata__ value for \"%s\" is not a string", path, mk);
                    break;
                }
                st->meta_keys[st->n_meta] = strdupCheck(mk);
                st->meta_vals[st->n_meta] = strdupCheck(json_string_value(mv));
                st->n_meta++;
            }
            if (rc) break;
            continue;
        }
        lmp_st_info *ti = &st->info[st->n++];
        ti->name = strdupCheck(key);
        if ((rc = parse_entry(path, key, v, ti)) != 0) break;
        if (ti->begin + ti->nbytes > st->data_len) {
            rc = lmp_error("%s: tensor \"%s\": data_offsets [%llu, %llu] run past the end of the data (%llu bytes)",
                           path, key, (unsigned long long)ti->begin,
                           (unsigned long long)(ti->begin + ti->nbytes),
                           (unsigned long long)st->data_len);
            break;
        }
    }
    json_decref(root);
    if (rc) return rc;

    /* Tensors must tile the data region exactly: no overlap, no holes (the
     * format forbids holes so that a file cannot hide other content). */
    lmp_st_info **by = mallocCheck((st->n ? st->n : 1) * sizeof *by);
    for (int i = 0; i < st->n; i++) by[i] = &st->info[i];
    qsort(by, (size_t)st->n, sizeof *by, cmp_by_offset);
    uint64_t covered = 0;
    const char *last = NULL;
    for (int i = 0; i < st->n && !rc; i++) {
        if (by[i]->begin < covered)
            rc = lmp_error("%s: tensors \"%s\" and \"%s\" overlap", path, last, by[i]->name);
        else if (by[i]->begin > covered)
            rc = lmp_error("%s: data bytes [%llu, %llu) belong to no tensor", path,
                           (unsigned long long)covered, (unsigned long long)by[i]->begin);
        covered = by[i]->begin + by[i]->nbytes;
        last = by[i]->name;
    }
    free(by);
    if (!rc && covered != st->data_len)
        rc = lmp_error("%s: data bytes [%llu, %llu) belong to no tensor", path,
                       (unsigned long long)covered, (unsigned long long)st->data_len);
    return rc;
}

int lmp_st_open(const char *path, lmp_st **out)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return lmp_error("%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return lmp_error("%s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return lmp_error("%s: not a regular file", path);
    }
    if (sb.st_size < 8) {
        close(fd);
        return lmp_error("%s: file too small for a safetensors header (%lld bytes)", path,
                         (long long)sb.st_size);
    }
    lmp_st *st = callocCheck(1, sizeof *st);
    st->path = strdupCheck(path);
    st->map_len = (size_t)sb.st_size;
    void *m = lmp_map_file(fd, st->map_len, path); /* a SIGBUS reading it names the file (util.h) */
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) {
        lmp_st_close(st);
        return lmp_error("%s: mmap failed: %s", path, strerror(e));
    }
    st->map = m;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | st->map[i]; /* little-endian */
    if (hlen > ST_MAX_HEADER) {
        lmp_st_close(st);
        return lmp_error("%s: header length %llu is absurd (limit %llu)", path,
                         (unsigned long long)hlen, ST_MAX_HEADER);
    }
    if (8 + hlen > st->map_len) {
        lmp_error("%s: header length %llu runs past the end of the file (%zu bytes)", path,
                  (unsigned long long)hlen, st->map_len);
        lmp_st_close(st);
        return -1;
    }
    st->data = st->map + 8 + hlen;
    st->data_len = st->map_len - 8 - hlen;
    if (parse_header(st, (const char *)st->map + 8, (size_t)hlen) != 0) {
        lmp_st_close(st);
        return -1;
    }
    *out = st;
    return 0;
}

const char *lmp_st_path(const lmp_st *st) { return st->path; }
int lmp_st_count(const lmp_st *st) { return st->n; }

const lmp_st_info *lmp_st_info_at(const lmp_st *st, int i)
{
    return i >= 0 && i < st->n ? &st->info[i] : NULL;
}

const lmp_st_info *lmp_st_find(const lmp_st *st, const char *name)
{
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->info[i].name, name) == 0) return &st->info[i];
    return NULL;
}

int lmp_st_get(lmp_st *st, const char *name, const char *dtype, const void **data,
               int64_t shape[LMP_ST_MAX_DIMS], int *ndim)
{
    const lmp_st_info *ti = lmp_st_find(st, name);
    if (!ti) return lmp_error("%s: no tensor \"%s\"", st->path, name);
    if (dtype && strcmp(ti->dtype, dtype) != 0)
        return lmp_error("%s: tensor \"%s\" has dtype %s, expected %s", st->path, name, ti->dtype,
                         dtype);
    int i = (int)(ti - st->info);
    const unsigned char *p = st->data + ti->begin;
    size_t esz = lmp_st_dtype_size(ti->dtype);
    if ((uintptr_t)p % esz != 0) { /* writers that do not pad the header */
        if (!st->copies[i]) {
            st->copies[i] = mallocCheck(ti->nbytes);
            memcpy(st->copies[i], p, ti->nbytes);
        }
        p = st->copies[i];
    }
    *data = p;
    if (shape) memcpy(shape, ti->shape, sizeof ti->shape);
    if (ndim) *ndim = ti->ndim;
    return 0;
}

const char *lmp_st_metadata(const lmp_st *st, const char *key)
{
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_vals[i];
    return NULL;
}

int lmp_st_metadata_count(const lmp_st *st) { return st->n_meta; }

const char *lmp_st_metadata_key(const lmp_st *st, int i)
{
    return i >= 0 && i < st->n_meta ? st->meta_keys[i] : NULL;
}

/* ------------------------------------------------------------------ writer */

static const lmp_st_tensor *sort_base;

/* The Python library lays tensors out by decreasing dtype size, then name. */
static int cmp_write_order(const void *a, const void *b)
{
    const lmp_st_tensor *x = &sort_base[*(const int *)a], *y = &sort_base[*(const int *)b];
    size_t sx = lmp_st_dtype_size(x->dtype), sy = lmp_st_dtype_size(y->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

int lmp_st_write(const char *path, const lmp_st_tensor *t, int n, const lmp_st_kv *meta,
                 int n_meta)
{
    size_t *nbytes = mallocCheck((n ? n : 1) * sizeof *nbytes);
    for (int i = 0; i < n; i++) {
        size_t esz = lmp_st_dtype_size(t[i].dtype);
        if (!esz || t[i].ndim < 0 || t[i].ndim > LMP_ST_MAX_DIMS || strcmp(t[i].name, "__metadata__") == 0) {
            free(nbytes);
            return lmp_error("%s: cannot write tensor \"%s\": bad name, dtype or rank", path, t[i].name);
        }
        size_t ne = 1;
        for (int d = 0; d < t[i].ndim; d++) {
            if (t[i].shape[d] < 0) {
                free(nbytes);
                return lmp_error("%s: cannot write tensor \"%s\": negative dimension", path, t[i].name);
            }
            ne *= (size_t)t[i].shape[d];
        }
        nbytes[i] = ne * esz;
        for (int j = 0; j < i; j++)
            if (strcmp(t[i].name, t[j].name) == 0) {
                free(nbytes);
                return lmp_error("%s: cannot write tensor \"%s\" twice", path, t[i].name);
            }
    }
    int *order = mallocCheck((n ? n : 1) * sizeof *order);
    for (int i = 0; i < n; i++) order[i] = i;
    sort_base = t;
    qsort(order, (size_t)n, sizeof *order, cmp_write_order);

    json_t *root = json_object();
    if (n_meta > 0) { /* keys sorted, so the bytes do not depend on the caller's order */
        json_t *m = json_object();
        int *mo = mallocCheck(n_meta * sizeof *mo);
        for (int i = 0; i < n_meta; i++) {
            int j = i;
            for (; j > 0 && strcmp(meta[mo[j - 1]].key, meta[i].key) > 0; j--) mo[j] = mo[j - 1];
            mo[j] = i;
        }
        for (int i = 0; i < n_meta; i++)
            json_object_set_new(m, meta[mo[i]].key, json_string(meta[mo[i]].value));
        free(mo);
        json_object_set_new(root, "__metadata__", m);
    }
    uint64_t off = 0;
    for (int k = 0; k < n; k++) {
        const lmp_st_tensor *ti = &t[order[k]];
        json_t *e = json_object(), *sh = json_array(), *of = json_array();
        json_object_set_new(e, "dtype", json_string(ti->dtype));
        for (int d = 0; d < ti->ndim; d++) json_array_append_new(sh, json_integer(ti->shape[d]));
        json_object_set_new(e, "shape", sh);
        json_array_append_new(of, json_integer((json_int_t)off));
        off += nbytes[order[k]];
        json_array_append_new(of, json_integer((json_int_t)off));
        json_object_set_new(e, "data_offsets", of);
        json_object_set_new(root, ti->name, e);
    }
    char *js = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!js) {
        free(order);
        free(nbytes);
        return lmp_error("%s: cannot encode the header (names must be UTF-8)", path);
    }
    size_t hlen = strlen(js), padded = (hlen + 8 + 7) / 8 * 8 - 8; /* data starts 8-aligned */
    char *hdr = mallocCheck(padded + 8);
    for (int i = 0; i < 8; i++) hdr[i] = (char)((uint64_t)padded >> (8 * i));
    memcpy(hdr + 8, js, hlen);
    memset(hdr + 8 + hlen, ' ', padded - hlen);
    free(js);

    lmp_atomic_file af;
    int rc = lmp_atomic_open(&af, path);
    if (rc == 0) {
        lmp_atomic_write(&af, hdr, padded + 8);
        for (int k = 0; k < n; k++)
            if (nbytes[order[k]]) lmp_atomic_write(&af, t[order[k]].data, nbytes[order[k]]);
        rc = lmp_atomic_commit(&af);
    }
    free(hdr);
    free(order);
    free(nbytes);
    return rc;
}
