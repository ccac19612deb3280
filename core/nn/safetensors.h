/*
 * safetensors.h — read and write the safetensors checkpoint format
 * (Hugging Face): an 8-byte little-endian header length N, N bytes of JSON
 * header {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 * "__metadata__": {string: string}}, then the raw little-endian tensor bytes.
 *
 * The reader memory-maps the file read-only and hands out pointers into the
 * mapping, so a loaded model costs no copy.  Every field of the header is
 * validated before any data pointer is given out: offsets inside the data
 * region, sizes matching dtype x shape, no overlapping tensors, no holes.
 *
 * The writer produces what the Python `safetensors` library produces: header
 * padded with spaces so the data starts 8-byte aligned, "__metadata__" first,
 * tensors ordered (and their bytes laid out) by dtype size then name.
 */
#ifndef LMP_SAFETENSORS_H
#define LMP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define LMP_ST_MAX_DIMS 8

typedef struct lmp_st lmp_st; /* an open, validated file */

typedef struct {
    const char *name;
    const char *dtype; /* "F32", "F16", "BF16", "I64", ... */
    int ndim;
    int64_t shape[LMP_ST_MAX_DIMS];
    size_t nbytes;
    uint64_t begin;    /* data_offsets[0], relative to the data region */
} lmp_st_info;

/* Open and validate `path`.  On failure *st is NULL and the message names the file. */
int lmp_st_open(const char *path, lmp_st **st);
void lmp_st_close(lmp_st *st);
const char *lmp_st_path(const lmp_st *st);

/* Tensors in file-header order: i in [0, lmp_st_count). */
int lmp_st_count(const lmp_st *st);
const lmp_st_info *lmp_st_info_at(const lmp_st *st, int i);
/* NULL when there is no tensor `name` (sets no error). */
const lmp_st_info *lmp_st_find(const lmp_st *st, const char *name);

/* The data of tensor `name`, which must have dtype `dtype` (NULL: any).
 * shape/ndim may be NULL.  The pointer is valid until lmp_st_close and is
 * aligned for the dtype (a misaligned tensor is copied once).  Errors: missing
 * tensor or wrong dtype, naming the tensor and the file. */
int lmp_st_get(lmp_st *st, const char *name, const char *dtype, const void **data,
               int64_t shape[LMP_ST_MAX_DIMS], int *ndim);

/* __metadata__: value for `key` or NULL; iterate with count / key_at. */
const char *lmp_st_metadata(const lmp_st *st, const char *key);
int lmp_st_metadata_count(const lmp_st *st);
const char *lmp_st_metadata_key(const lmp_st *st, int i);

/* Bytes per element of a dtype name, 0 if unknown. */
size_t lmp_st_dtype_size(const char *dtype);
/* A shape as messages write it, "[2, 3]" (truncated to cap). */
void lmp_st_shape_text(char *buf, size_t cap, const int64_t *shape, int ndim);

/* ------------------------------------------------------------------ writer */

typedef struct {
    const char *name;
    const char *dtype;    /* e.g. "F32" */
    int ndim;
    const int64_t *shape;
    const void *data;     /* prod(shape) * dtype size bytes */
} lmp_st_tensor;

typedef struct {
    const char *key, *value;
} lmp_st_kv;

/* Write a safetensors file atomically.  Names must be unique and must not be
 * "__metadata__"; metadata may be NULL when n_meta is 0. */
int lmp_st_write(const char *path, const lmp_st_tensor *tensors, int n,
                 const lmp_st_kv *meta, int n_meta);

#endif
