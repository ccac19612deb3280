/*
 * jsonfile.h — reading a JSON file (config.json, vocab.json, classifier.json,
 * adapter_config.json, trainer.json): read, parse, check it is an object,
 * with one-line errors that name the file and where in it.
 */
#ifndef LMP_JSONFILE_H
#define LMP_JSONFILE_H

#include <jansson.h>
#include <stddef.h>

/* The JSON object in file path (at most max_bytes), parsed with jansson's
 * flags (0, JSON_REJECT_DUPLICATES, ...), into *out (json_decref it).  what
 * says what the file should hold ("a JSON object mapping tokens to ids"),
 * NULL for "a JSON object".  Returns 0, or -1 with one error line:
 * "PATH: empty file (expected WHAT)", "PATH:LINE:COLUMN: not valid JSON: WHY"
 * or "PATH: expected WHAT". */
int lmp_json_read_file(const char *path, size_t max_bytes, size_t flags, const char *what,
                       json_t **out);

#endif
