#!/usr/bin/env python3
"""Golden token ids for tests/tokenizer.rs: SmolLM2-135M-Instruct's tokenizer rebuilt with
Hugging Face `tokenizers` from the GGUF file's own vocabulary and merges, independent of
wgquant's Rust code.

    python3 scripts/golden_tokenizer.py [MODEL.gguf]

MODEL defaults to $WGQUANT_SMOLLM2, else target/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (see
scripts/fetch-smollm2.sh). When `tokenizers`, `gguf` or `jinja2` is missing, a virtual
environment is made under target/venv-tok and the script runs again in it. Writes
tests/data/tokenizer_smollm2.json.

The reference is the pipeline SmolLM2's tokenizer.json describes and llama.cpp implements for
tokenizer.ggml.pre = "smollm": pre-tokenizer Sequence([Digits(individual_digits=True),
ByteLevel(add_prefix_space=False, use_regex=True)]), BPE over the GGUF merges, ByteLevel
decoder, the control tokens (token_type 3) as special added tokens. parse_special = false is
`encode_special_tokens = True` (special tokens encoded as plain text).
"""

import hashlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, "target", "venv-tok")
OUT = os.path.join(ROOT, "tests", "data", "tokenizer_smollm2.json")
DEFAULT_MODEL = os.path.join(ROOT, "target", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def ensure_deps():
    try:
        import gguf  # noqa: F401
        import jinja2  # noqa: F401
        import tokenizers  # noqa: F401
        return
    except ImportError:
        pass
    py = os.path.join(VENV, "bin", "python")
    if os.path.abspath(sys.executable) == os.path.abspath(py):
        sys.exit("tokenizers, gguf or jinja2 is still missing in " + VENV)
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    subprocess.check_call(
        [py, "-m", "pip", "install", "--quiet", "tokenizers==0.23.3", "gguf", "jinja2"]
    )
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


# Varied texts: prose, code, numbers, whitespace runs, contractions, accents, scripts, emoji,
# Unicode number and space characters, ChatML markup.
TEXTS = [
    "Hello world! 123",
    "The capital of France is Paris.",
    "Once upon a time, in a land far, far away, there lived a small dragon who loved to read "
    "books about the stars.",
    'fn main() {\n    println!("Hello, world!");\n}\n',
    "def square(x):\n\treturn x ** 2  # the square\n",
    "12345",
    "3.14",
    "pi = 3.14159, e = 2.71828; 1,000,000 people on 2024-06-01 at 12:30",
    "  multiple   spaces",
    "trailing spaces   ",
    "\n\n\nnewlines\n\n",
    "tabs\t\tand\t mixed \t\n whitespace \r\n end",
    "don't",
    "I'LL DON'T we're they've she'd it's I'm you'll 's 'S",
    "Café déjà vu, naïve façade, Ångström, señor.",
    "e\u0301 and a\u0308: combining marks",
    "我爱北京天安门。日本語のテキスト、한국어 텍스트",
    "Hello 👋🏽 world 🌍! 👨\u200d👩\u200d👧\u200d👦 🎉🎉",
    "Numbers: ٣١٢ २०२४ Ⅻ ½ x² ①",
    "a\u00a0b\u3000c\u2003d\u2028e",
    "",
    " ",
    "\n",
    " leading space and  two",
    "https://example.com/path?q=1&x=y user@mail.org",
    "Wait... what?! ...!!!???---***",
    "antidisestablishmentarianism supercalifragilisticexpialidocious",
    "Привет мир! Γειά σου Κόσμε",
    # Vowel signs (Mn, Mc) are alphabetic but not \p{L}: they split words (SmolLM2 has no
    # merge across such a split, so the ids are the same either way; tests/tokenizer.rs checks it).
    "नमस्ते दुनिया สวัสดี",
    "# Title\n\n- item 1\n- item 2\n\n**bold** _it_ `code`",
    '{"key": [1, 2.5, -3e10], "ok": true, "none": null}',
    "bell\x07 nul\x00 del\x7f private\ue000",
    # Bytes 0x04, 0x06 and 0xF1 (lead byte of U+40000) have no token in SmolLM2: dropped.
    "ctrl\x04\x06 end \U00040000!",
]

CHATML = (
    "<|im_start|>system\nYou are helpful.<|im_end|>\n"
    "<|im_start|>user\nWhat's 2+2?<|im_end|>\n<|im_start|>assistant\n"
)
SPECIAL_TEXTS = [
    CHATML,
    "<|endoftext|>",
    "a<|im_end|>b<|im_start|><|im_start|>",
    "<|im_start |> almost <|im_end|",
    "<repo_name>wgquant<file_sep>src/lib.rs",
]

CHAT_USER = "What is the capital of France?"


def main():
    ensure_deps()
    import gguf
    import jinja2
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    path = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("WGQUANT_SMOLLM2", DEFAULT_MODEL)
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    r = gguf.GGUFReader(path)

    def field(k):
        return r.fields[k].contents()

    assert field("tokenizer.ggml.model") == "gpt2"
    assert field("tokenizer.ggml.pre") == "smollm"
    tokens = field("tokenizer.ggml.tokens")
    types = field("tokenizer.ggml.token_type")
    merges_raw = field("tokenizer.ggml.merges")
    template = field("tokenizer.chat_template")

    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == len(tokens), "repeated token texts"
    merges = []
    for m in merges_raw:
        p = m.index(" ", 1)
        merges.append((m[:p], m[p + 1:]))

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    control = [t for t, ty in zip(tokens, types) if ty == 3]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    for t in control:
        assert tok.token_to_id(t) == vocab[t]

    def encode(text, parse_special):
        tok.encode_special_tokens = not parse_special
        return tok.encode(text, add_special_tokens=False).ids

    cases = []
    for text in TEXTS:
        cases.append({"text": text, "parse_special": True, "ids": encode(text, True)})
    for text in SPECIAL_TEXTS:
        for ps in (True, False):
            cases.append({"text": text, "parse_special": ps, "ids": encode(text, ps)})
    for c in cases:
        tok.encode_special_tokens = False
        # The ByteLevel decoder: lossy UTF-8 of the bytes.
        c["decoded"] = tok.decode(c["ids"], skip_special_tokens=False)
        if c["decoded"] != c["text"]:
            print(f"no round trip: {c['text']!r} -> {c['decoded']!r}")

    prompt = jinja2.Environment().from_string(template).render(
        messages=[{"role": "user", "content": CHAT_USER}], add_generation_prompt=True
    )
    chat = {"user": CHAT_USER, "prompt": prompt, "ids": encode(prompt, True)}

    out = {
        "source": "scripts/golden_tokenizer.py: HF tokenizers "
        + __import__("tokenizers").__version__
        + " built from the GGUF vocabulary and merges",
        "model": os.path.basename(path),
        "model_sha256": sha,
        "cases": cases,
        "chat": chat,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases")


if __name__ == "__main__":
    main()
