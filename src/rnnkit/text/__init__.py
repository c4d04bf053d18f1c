"""Text in, token ids out: bundled corpora, tokenizers (char, word, BPE), the array word
scanner, and `prepare` (corpora larger than memory, tokenized once to memory-mapped files)."""
