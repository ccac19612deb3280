/*
 * bpe.h — GPT-2's byte-level BPE tokenizer, exact: the same ids as OpenAI's
 * encoder.py for every input, plus training of new vocabularies in the same
 * file formats.
 *
 * Files: OpenAI's `encoder.json` + `vocab.bpe` or a Hugging Face folder's
 * `vocab.json` + `merges.txt` (the same formats).  vocab.json maps each token,
 * written in the byte-level alphabet (each byte 0..255 is one printable
 * character, e.g. ' ' is 'Ġ' U+0120), to its id; ids are dense 0..n-1.
 * merges.txt has an optional "#version" line, then one merge "A B" per line,
 * in rank order (first line = rank 0 = merged first).
 *
 * Encoding: the text is split by GPT-2's pre-tokenizer regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (PCRE2, UTF mode, JIT; \s is spelled out as Python `regex`'s \s, the
 * Unicode White_Space set, which includes U+0085; \p{L}/\p{N} come from
 * PCRE2's Unicode tables, so characters assigned after PCRE2's Unicode
 * version may be classed differently than by a newer Python), then each
 * piece's bytes are merged by rank, exactly like encoder.py's bpe().
 *
 * Invalid UTF-8: never an error.  The regex skips invalid sequences
 * (PCRE2_MATCH_INVALID_UTF), and each maximal run of bytes between two
 * matches (which can only be invalid UTF-8) becomes a piece of its own.  So
 * decode(encode(x)) == x for every byte string x.
 *
 * An lmp_bpe is not thread-safe: encoding updates its word cache and scratch
 * space.  Use one per thread.
 */
#ifndef LMP_BPE_H
#define LMP_BPE_H

#include <stddef.h>

typedef struct lmp_bpe lmp_bpe;

/* Load a tokenizer.  Errors name the file and, where there is one, the line:
 * missing or unreadable files, invalid JSON, duplicate tokens or ids, ids not
 * dense, tokens outside the byte-level alphabet, a missing single-byte token,
 * malformed merge lines, merges naming unknown symbols or results, duplicate
 * merges. */
int lmp_bpe_load(const char *vocab_json, const char *merges_txt, lmp_bpe **out);
/* Load from a folder holding vocab.json + merges.txt, else encoder.json + vocab.bpe. */
int lmp_bpe_load_dir(const char *dir, lmp_bpe **out);
void lmp_bpe_free(lmp_bpe *bpe);

int lmp_bpe_vocab_size(const lmp_bpe *bpe);
/* Id of "<|endoftext|>", or -1 when the vocabulary has no such token. */
int lmp_bpe_eot(const lmp_bpe *bpe);
/* The vocabulary file it was loaded from (vocab.json or encoder.json), for
 * messages about its content. */
const char *lmp_bpe_source(const lmp_bpe *bpe);
/* 1 when no merge uses a symbol made by the same or a later merge (true for
 * GPT-2 and for trained vocabularies): then a heap-driven merge loop, O(n log n)
 * per word, gives the reference result; otherwise encoding falls back to the
 * reference's quadratic loop. */
int lmp_bpe_is_ordered(const lmp_bpe *bpe);
/* Words of up to 64 bytes are cached; the cache is emptied when it holds
 * max_entries words (default 65536; 0 turns caching off). */
void lmp_bpe_set_cache(lmp_bpe *bpe, int max_entries);

enum {
    LMP_BPE_SPECIAL = 1 /* "<|endoftext|>" in the text is the special token, not text */
};

/* Encode len bytes of text (any bytes; NUL is allowed) into a new array
 * *ids of *n_ids token ids (free() it).  Fails only if PCRE2 fails. */
int lmp_bpe_encode(lmp_bpe *bpe, const char *text, size_t len, int flags,
                   int **ids, size_t *n_ids);
/* Append the ids of text to a growing array (*ids, *n_ids, *cap: start from
 * NULL, 0, 0), for encoding a stream of documents. */
int lmp_bpe_encode_append(lmp_bpe *bpe, const char *text, size_t len, int flags,
                          int **ids, size_t *n_ids, size_t *cap);

/* Encode a stream in pieces of bounded size.  Appends the ids of the longest
 * prefix of text[0..len) whose ids no later bytes can change (all of it when
 * final is set), and sets *used to that prefix's length: the caller keeps
 * text[*used..len), appends the next bytes and calls again.  The ids of all
 * calls together are those of one lmp_bpe_encode of the whole input.  What
 * is held back is one pre-token and at most 16 bytes after it, so a caller
 * that bounds the bytes it holds bounds the longest pre-token it accepts. */
int lmp_bpe_encode_stream(lmp_bpe *bpe, const char *text, size_t len, int final, int flags,
                          int **ids, size_t *n_ids, size_t *cap, size_t *used);

/* Decode ids into a new NUL-terminated buffer *text of *len bytes (free() it).
 * An id outside 0..vocab_size-1 is an error that names it. */
int lmp_bpe_decode(const lmp_bpe *bpe, const int *ids, size_t n_ids, char **text, size_t *len);
/* The bytes of one token (not NUL-terminated), or NULL for an id out of range. */
const char *lmp_bpe_token(const lmp_bpe *bpe, int id, size_t *len);

/* The byte-level alphabet: the code point that stands for byte b (0..255)
 * in vocab.json and merges.txt. */
int lmp_bpe_byte_char(int b);

/* GPT-2's pre-tokenizer on its own (the training uses it too). */
typedef struct lmp_pretok lmp_pretok;
int lmp_pretok_new(lmp_pretok **out);
void lmp_pretok_free(lmp_pretok *pt);
/* Next piece of text[0..len) at or after *pos: returns 1 and sets *start and
 * *end (then *pos = *end), 0 at the end of the text, -1 on a PCRE2 error.
 * The pieces cover the text exactly, in order. */
int lmp_pretok_next(lmp_pretok *pt, const char *text, size_t len, size_t *pos,
                    size_t *start, size_t *end);

/* Learn a byte-level BPE from text files: the same pre-tokenizer, the 256
 * byte symbols as ids 0..255 (in GPT-2's order), then merges of the most
 * frequent adjacent pair (counted over pre-tokenized words; ties broken by
 * the smaller pair of ids) until the vocabulary has vocab_size - 1 tokens or
 * no pair occurs min_count times; "<|endoftext|>" is the last id.  A merge
 * whose result already is a token reuses that token's id.  Writes
 * out_dir/vocab.json and out_dir/merges.txt atomically, in GPT-2's exact
 * formats (creating out_dir).  vocab_size >= 257, min_count >= 1. */
int lmp_bpe_train(const char *const *files, int nfiles, int vocab_size, const char *out_dir,
                  int min_count);

#endif
