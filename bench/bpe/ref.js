// ref.js — the reference tokenizer (npm gpt-3-encoder 1.1.4) on the same text,
// for bench/bpe/run.sh:  NODE_PATH=.../node_modules node ref.js TEXT_FILE [IDS_OUT]
// prints: load_s encode_s decode_s bytes tokens
//
// gpt-3-encoder's encode() grows its result with Array.concat, quadratic in
// the number of tokens, so the text goes in as chunks of about 4 KB cut just
// before a whitespace that follows a non-whitespace character.  Such a cut is
// always a piece boundary of GPT-2's regex, and neither side's pieces look
// across it, so the concatenated ids are those of the whole text.
'use strict';
const fs = require('fs');
const t0 = process.hrtime.bigint();
const { encode, decode } = require('gpt-3-encoder');
const t1 = process.hrtime.bigint();
const text = fs.readFileSync(process.argv[2], 'utf8');
const isWs = (c) => /\s/u.test(c);
const chunks = [];
for (let start = 0; start < text.length;) {
  let p = Math.min(start + 4096, text.length);
  while (p < text.length && !(isWs(text[p]) && !isWs(text[p - 1]))) p++;
  chunks.push(text.slice(start, p));
  start = p;
}
const t2 = process.hrtime.bigint();
const parts = chunks.map((c) => encode(c));
const t3 = process.hrtime.bigint();
let back = '';
for (const p of parts) back += decode(p);
const t4 = process.hrtime.bigint();
if (back !== text) throw new Error('decode(encode(text)) != text');
const ids = [].concat(...parts.map((p) => p));
const s = (a, b) => (Number(b - a) / 1e9).toFixed(4);
console.log(`${s(t0, t1)} ${s(t2, t3)} ${s(t3, t4)} ${Buffer.byteLength(text)} ${ids.length}`);
if (process.argv[3]) fs.writeFileSync(process.argv[3], ids.join('\n') + '\n');
