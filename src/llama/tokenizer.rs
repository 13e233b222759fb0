//! Byte-level BPE tokenizer read from GGUF metadata (`tokenizer.ggml.*`).
//!
//! It behaves like llama.cpp's `llama_tokenize` for GGUF files with `tokenizer.ggml.model =
//! "gpt2"` and `tokenizer.ggml.pre = "smollm"` (SmolLM / SmolLM2):
//!
//! 1. Special tokens are cut out of the text first: user-defined tokens always, control and
//!    unknown tokens only when `parse_special` is true (llama.cpp's `--parse-special`). Longer
//!    token texts are matched first, each over the whole text before the next one.
//! 2. Every remaining text piece is pre-tokenized with llama.cpp's expressions for this
//!    pre-tokenizer: `\p{N}` (every number character alone), then the GPT-2 pattern
//!    `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, both
//!    written by hand here over chars with exact Unicode general categories.
//! 3. Each word's bytes go through GPT-2's byte-to-unicode mapping and are merged by rank
//!    (lowest rank first, leftmost first among equal ranks).
//!
//! BOS is never added by [`Tokenizer::encode`]; [`Tokenizer::add_bos`] says whether the model
//! wants it.

use crate::io::gguf::MetaValue;
use crate::{Error, Result};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;
use unicode_general_category::{get_general_category, GeneralCategory};

/// Stands for a byte whose mapped character is not in the vocabulary.
const NO_TOKEN: u32 = u32::MAX;

/// The `tokenizer.ggml.pre` values this tokenizer implements.
const SUPPORTED_PRE: &[&str] = &["smollm"];

/// Token texts that end a turn (llama.cpp's list of end-of-generation texts), in addition to
/// the EOS, EOT and EOM ids of the metadata.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end▁of▁sentence|>",
];

/// `tokenizer.ggml.token_type` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenKind {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenKind {
    fn from_type(t: i64) -> TokenKind {
        match t {
            1 => TokenKind::Normal,
            2 => TokenKind::Unknown,
            3 => TokenKind::Control,
            4 => TokenKind::UserDefined,
            5 => TokenKind::Unused,
            6 => TokenKind::Byte,
            _ => TokenKind::Undefined,
        }
    }

    /// Matched in the text before pre-tokenization (with `parse_special` for some).
    fn is_special(self) -> bool {
        matches!(
            self,
            TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown
        )
    }
}

/// A byte-level BPE tokenizer built from a GGUF file's metadata.
#[derive(Clone)]
pub struct Tokenizer {
    /// Token texts as stored (byte-mapped for normal tokens).
    texts: Vec<String>,
    kinds: Vec<TokenKind>,
    /// The bytes each token stands for.
    pieces: Vec<Vec<u8>>,
    /// (left, right) -> (rank, merged).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// The token of each single byte (its byte-mapped character), [`NO_TOKEN`] where the
    /// vocabulary has none.
    byte_tokens: [u32; 256],
    /// Special tokens, longest text first.
    specials: Vec<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    eog: HashSet<u32>,
    add_bos: bool,
    chat_template: Option<String>,
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.texts.len())
            .field("merges", &self.merges.len())
            .field("specials", &self.specials.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .finish_non_exhaustive()
    }
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::malformed("GGUF", reason)
}

/// GPT-2's byte-to-unicode table: printable bytes map to themselves, the others to 256 + n.
fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
        table[b as usize] = if printable {
            char::from_u32(b).unwrap_or('\0')
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('\0')
        };
    }
    table
}

/// Undo the byte mapping: each mapped char gives its byte; any other char keeps its UTF-8.
fn unmap_bytes(text: &str, char_to_byte: &HashMap<char, u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match char_to_byte.get(&c) {
            Some(&b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes()),
        }
    }
    out
}

/// Metadata by key.
struct Meta<'a>(HashMap<&'a str, &'a MetaValue>);

impl<'a> Meta<'a> {
    fn get(&self, key: &str) -> Option<&'a MetaValue> {
        self.0.get(key).copied()
    }

    fn string(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| malformed(format!("{key} is a {:?}, not a string", v.meta_type()))),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| malformed(format!("{key} is a {:?}, not a bool", v.meta_type()))),
        }
    }

    fn array(&self, key: &str) -> Result<Option<&'a [MetaValue]>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_array()
                .map(Some)
                .ok_or_else(|| malformed(format!("{key} is a {:?}, not an array", v.meta_type()))),
        }
    }

    /// A token id, checked against the vocabulary size.
    fn token_id(&self, key: &str, n_vocab: usize) -> Result<Option<u32>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                let id = v.as_u64().ok_or_else(|| {
                    malformed(format!(
                        "{key} is a {:?}, not a non-negative integer",
                        v.meta_type()
                    ))
                })?;
                if id >= n_vocab as u64 {
                    return Err(malformed(format!(
                        "{key} = {id} is out of range for a vocabulary of {n_vocab} tokens"
                    )));
                }
                Ok(Some(id as u32))
            }
        }
    }
}

impl Tokenizer {
    /// Build the tokenizer from GGUF metadata entries (e.g. `GgufReader::open(path)?.header()
    /// .metadata` or `Model::metadata_entries()`).
    ///
    /// Needs `tokenizer.ggml.model = "gpt2"`, `tokenizer.ggml.pre = "smollm"`,
    /// `tokenizer.ggml.tokens` and `tokenizer.ggml.merges`; reads `token_type` (all normal when
    /// absent), `bos_token_id`, `eos_token_id`, `eot_token_id`, `eom_token_id`,
    /// `add_bos_token` (false when absent) and `tokenizer.chat_template` when present.
    /// Errors: [`Error::UnsupportedFormat`] for another model or pre-tokenizer,
    /// [`Error::Malformed`] for missing keys, wrong types, ids out of range or merges naming
    /// unknown tokens.
    pub fn from_metadata(metadata: &[(String, MetaValue)]) -> Result<Tokenizer> {
        let meta = Meta(metadata.iter().map(|(k, v)| (k.as_str(), v)).collect());

        let model = meta
            .string("tokenizer.ggml.model")?
            .ok_or_else(|| malformed("no tokenizer.ggml.model"))?;
        if model != "gpt2" {
            return Err(Error::UnsupportedFormat(format!(
                "tokenizer model (tokenizer.ggml.model) \"{model}\": wgquant's tokenizer \
                 supports byte-level BPE (\"gpt2\") only"
            )));
        }
        let pre = meta.string("tokenizer.ggml.pre")?.unwrap_or("default");
        if !SUPPORTED_PRE.contains(&pre) {
            return Err(Error::UnsupportedFormat(format!(
                "pre-tokenizer (tokenizer.ggml.pre) \"{pre}\": wgquant's tokenizer supports {}",
                SUPPORTED_PRE.join(", ")
            )));
        }

        let tokens = meta
            .array("tokenizer.ggml.tokens")?
            .ok_or_else(|| malformed("no tokenizer.ggml.tokens"))?;
        if tokens.is_empty() || tokens.len() > u32::MAX as usize {
            return Err(malformed(format!(
                "tokenizer.ggml.tokens has {} entries",
                tokens.len()
            )));
        }
        let n_vocab = tokens.len();
        let mut texts = Vec::with_capacity(n_vocab);
        for (i, t) in tokens.iter().enumerate() {
            let s = t.as_str().ok_or_else(|| {
                malformed(format!(
                    "tokenizer.ggml.tokens[{i}] is a {:?}, not a string",
                    t.meta_type()
                ))
            })?;
            texts.push(s.to_string());
        }

        let kinds = match meta.array("tokenizer.ggml.token_type")? {
            None => vec![TokenKind::Normal; n_vocab],
            Some(types) => {
                if types.len() != n_vocab {
                    return Err(malformed(format!(
                        "tokenizer.ggml.token_type has {} entries for {n_vocab} tokens",
                        types.len()
                    )));
                }
                let mut kinds = Vec::with_capacity(n_vocab);
                for (i, t) in types.iter().enumerate() {
                    let t = t.as_i64().ok_or_else(|| {
                        malformed(format!(
                            "tokenizer.ggml.token_type[{i}] is a {:?}, not an integer",
                            t.meta_type()
                        ))
                    })?;
                    kinds.push(TokenKind::from_type(t));
                }
                kinds
            }
        };

        // Text -> id; a repeated text names its last id, as in llama.cpp.
        let mut by_text: HashMap<&str, u32> = HashMap::with_capacity(n_vocab);
        for (i, t) in texts.iter().enumerate() {
            by_text.insert(t.as_str(), i as u32);
        }

        let byte_chars = byte_to_char_table();
        let char_to_byte: HashMap<char, u8> = byte_chars
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        // SmolLM2 lacks 21 of them (bytes that never occur in UTF-8, some C0 controls).
        let mut byte_tokens = [NO_TOKEN; 256];
        for (b, &c) in byte_chars.iter().enumerate() {
            if let Some(&id) = by_text.get(c.to_string().as_str()) {
                byte_tokens[b] = id;
            }
        }

        let merge_list = meta
            .array("tokenizer.ggml.merges")?
            .ok_or_else(|| malformed("no tokenizer.ggml.merges"))?;
        let mut merges = HashMap::with_capacity(merge_list.len());
        for (rank, m) in merge_list.iter().enumerate() {
            let s = m.as_str().ok_or_else(|| {
                malformed(format!(
                    "tokenizer.ggml.merges[{rank}] is a {:?}, not a string",
                    m.meta_type()
                ))
            })?;
            // Split at the first space after the first byte, as llama.cpp does.
            let split = s
                .as_bytes()
                .iter()
                .skip(1)
                .position(|&b| b == b' ')
                .map(|p| p + 1)
                .ok_or_else(|| {
                    malformed(format!(
                        "tokenizer.ggml.merges[{rank}] = {s:?} is not \"LEFT RIGHT\""
                    ))
                })?;
            let (left, right) = (&s[..split], &s[split + 1..]);
            let lookup = |t: &str| {
                by_text.get(t).copied().ok_or_else(|| {
                    malformed(format!(
                        "tokenizer.ggml.merges[{rank}] = {s:?} names {t:?}, which is not a token"
                    ))
                })
            };
            let l = lookup(left)?;
            let r = lookup(right)?;
            let merged = lookup(&format!("{left}{right}"))?;
            // A repeated pair keeps its first (lowest) rank.
            merges.entry((l, r)).or_insert((rank as u32, merged));
        }

        let pieces: Vec<Vec<u8>> = texts
            .iter()
            .zip(&kinds)
            .map(|(t, k)| match k {
                TokenKind::Normal | TokenKind::Byte => unmap_bytes(t, &char_to_byte),
                TokenKind::Control | TokenKind::Unknown | TokenKind::UserDefined => {
                    t.as_bytes().to_vec()
                }
                TokenKind::Unused | TokenKind::Undefined => Vec::new(),
            })
            .collect();

        let mut specials: Vec<u32> = (0..n_vocab as u32)
            .filter(|&i| kinds[i as usize].is_special() && !texts[i as usize].is_empty())
            .collect();
        specials.sort_by_key(|&i| (Reverse(texts[i as usize].len()), i));

        let bos = meta.token_id("tokenizer.ggml.bos_token_id", n_vocab)?;
        let eos = meta.token_id("tokenizer.ggml.eos_token_id", n_vocab)?;
        let eot = meta.token_id("tokenizer.ggml.eot_token_id", n_vocab)?;
        let eom = meta.token_id("tokenizer.ggml.eom_token_id", n_vocab)?;
        meta.token_id("tokenizer.ggml.unknown_token_id", n_vocab)?;
        meta.token_id("tokenizer.ggml.padding_token_id", n_vocab)?;
        let mut eog: HashSet<u32> = [eos, eot, eom].into_iter().flatten().collect();
        for (i, (t, k)) in texts.iter().zip(&kinds).enumerate() {
            if k.is_special() && EOG_TEXTS.contains(&t.as_str()) {
                eog.insert(i as u32);
            }
        }

        let add_bos = meta.bool("tokenizer.ggml.add_bos_token")?.unwrap_or(false);
        let chat_template = meta.string("tokenizer.chat_template")?.map(str::to_string);

        Ok(Tokenizer {
            texts,
            kinds,
            pieces,
            merges,
            byte_tokens,
            specials,
            bos,
            eos,
            eog,
            add_bos,
            chat_template,
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.texts.len()
    }

    /// Whether the model wants BOS in front of a prompt (`tokenizer.ggml.add_bos_token`).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// The BOS token, if the metadata names one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The EOS token, if the metadata names one.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Whether `id` ends generation: EOS, EOT or EOM of the metadata, or a control token such
    /// as `<|im_end|>` or `<|endoftext|>`.
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// The bytes token `id` stands for: the byte mapping undone for normal tokens, the text
    /// itself for control and user-defined tokens, nothing for unused tokens or an id out of
    /// range. May be part of a UTF-8 sequence.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.pieces.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// The text of `ids` (control tokens included as their text), invalid UTF-8 replaced by
    /// U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend_from_slice(self.token_bytes(id));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// A decoder for streaming generation: feed it ids one by one.
    pub fn stream_decoder(&self) -> StreamDecoder<'_> {
        StreamDecoder {
            tokenizer: self,
            pending: Vec::new(),
        }
    }

    /// The token ids of `text`, without BOS. With `parse_special`, control tokens written in
    /// the text (`<|im_start|>`) become their ids; without it they are plain text.
    /// User-defined tokens are always matched, as in llama.cpp. A byte whose mapped character
    /// is not in the vocabulary is left out (llama.cpp and HF `tokenizers` without an unknown
    /// token do the same).
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        for frag in self.partition_special(text, parse_special) {
            match frag {
                Fragment::Token(id) => out.push(id),
                Fragment::Text(a, b) => self.encode_text(&text[a..b], &mut out),
            }
        }
        out
    }

    /// The prompt for one user message in the model's ChatML template, with the generation
    /// prompt: the template's default system message (when it has one, as SmolLM2's does),
    /// then `<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n`. Encode it with
    /// `parse_special = true`.
    pub fn chat_prompt(&self, user: &str) -> Result<String> {
        let template = self.chat_template.as_deref().ok_or_else(|| {
            Error::UnsupportedFormat(
                "chat prompt: the GGUF metadata has no tokenizer.chat_template".into(),
            )
        })?;
        if !template.contains("<|im_start|>") || !template.contains("<|im_end|>") {
            return Err(Error::UnsupportedFormat(
                "chat prompt: tokenizer.chat_template is not ChatML (no <|im_start|> ... \
                 <|im_end|>); wgquant applies ChatML only"
                    .into(),
            ));
        }
        let mut prompt = String::new();
        if let Some(system) = default_system_message(template) {
            prompt.push_str(&format!("<|im_start|>system\n{system}<|im_end|>\n"));
        }
        prompt.push_str(&format!(
            "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
        ));
        Ok(prompt)
    }

    /// Cut special tokens out of `text` as llama.cpp does: for each special token, longest
    /// first, every occurrence in every text fragment left so far.
    fn partition_special(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut frags = Vec::new();
        if text.is_empty() {
            return frags;
        }
        frags.push(Fragment::Text(0, text.len()));
        for &id in &self.specials {
            let kind = self.kinds[id as usize];
            if !parse_special && kind != TokenKind::UserDefined {
                continue;
            }
            let needle = self.texts[id as usize].as_str();
            let mut next = Vec::with_capacity(frags.len());
            for frag in frags {
                let Fragment::Text(mut a, b) = frag else {
                    next.push(frag);
                    continue;
                };
                while let Some(p) = text[a..b].find(needle) {
                    if p > 0 {
                        next.push(Fragment::Text(a, a + p));
                    }
                    next.push(Fragment::Token(id));
                    a += p + needle.len();
                }
                if a < b {
                    next.push(Fragment::Text(a, b));
                }
            }
            frags = next;
        }
        frags
    }

    /// BPE-encode text that holds no special token.
    fn encode_text(&self, text: &str, out: &mut Vec<u32>) {
        for word in pre_tokenize(text) {
            self.encode_word(word.as_bytes(), out);
        }
    }

    /// Merge one pre-tokenized word, lowest rank first, leftmost among equal ranks.
    fn encode_word(&self, bytes: &[u8], out: &mut Vec<u32>) {
        const NONE: usize = usize::MAX;
        struct Sym {
            id: u32,
            prev: usize,
            next: usize,
            alive: bool,
        }
        let n = bytes.len();
        let mut syms: Vec<Sym> = bytes
            .iter()
            .enumerate()
            .map(|(i, &b)| Sym {
                id: self.byte_tokens[b as usize],
                prev: if i == 0 { NONE } else { i - 1 },
                next: if i + 1 == n { NONE } else { i + 1 },
                alive: true,
            })
            .collect();
        // (rank, left index, left id, right id), smallest first.
        let mut heap: BinaryHeap<Reverse<(u32, usize, u32, u32)>> = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<_>, syms: &[Sym], left: usize| {
            if left == NONE || syms[left].next == NONE {
                return;
            }
            let (l, r) = (syms[left].id, syms[syms[left].next].id);
            if let Some(&(rank, _)) = self.merges.get(&(l, r)) {
                heap.push(Reverse((rank, left, l, r)));
            }
        };
        for i in 0..n.saturating_sub(1) {
            push(&mut heap, &syms, i);
        }
        while let Some(Reverse((_, left, l, r))) = heap.pop() {
            let right = syms[left].next;
            // Skip pairs that an earlier merge changed.
            if !syms[left].alive || syms[left].id != l || right == NONE || syms[right].id != r {
                continue;
            }
            let Some(&(_, merged)) = self.merges.get(&(l, r)) else {
                continue;
            };
            syms[left].id = merged;
            syms[right].alive = false;
            let after = syms[right].next;
            syms[left].next = after;
            if after != NONE {
                syms[after].prev = left;
            }
            push(&mut heap, &syms, syms[left].prev);
            push(&mut heap, &syms, left);
        }
        let mut i = if n == 0 { NONE } else { 0 };
        while i != NONE {
            if syms[i].id != NO_TOKEN {
                out.push(syms[i].id);
            }
            i = syms[i].next;
        }
    }
}

/// A piece of text after special-token matching.
#[derive(Clone, Copy, Debug)]
enum Fragment {
    /// Byte range of plain text.
    Text(usize, usize),
    Token(u32),
}

/// The default system message a ChatML template inserts when the first message is not a system
/// one: the literal `<|im_start|>system\n...<|im_end|>` in the template, if any.
fn default_system_message(template: &str) -> Option<String> {
    let start = "<|im_start|>system";
    let at = template.find(start)? + start.len();
    let rest = &template[at..];
    // A real newline, or `\n` escaped inside a Jinja string literal.
    let (body, escaped) = if let Some(b) = rest.strip_prefix('\n') {
        (b, false)
    } else if let Some(b) = rest.strip_prefix("\\n") {
        (b, true)
    } else {
        return None;
    };
    let end = body.find("<|im_end|>")?;
    let msg = &body[..end];
    // A template that builds the system message from a variable has no literal default.
    if msg.contains(['\'', '"', '{', '}']) {
        return None;
    }
    Some(if escaped {
        msg.replace("\\n", "\n")
    } else {
        msg.to_string()
    })
}

/// `\p{L}`: general category Lu, Ll, Lt, Lm or Lo.
fn is_letter(c: char) -> bool {
    use GeneralCategory::*;
    matches!(
        get_general_category(c),
        UppercaseLetter | LowercaseLetter | TitlecaseLetter | ModifierLetter | OtherLetter
    )
}

/// `\p{N}`: general category Nd, Nl or No.
fn is_number(c: char) -> bool {
    use GeneralCategory::*;
    matches!(
        get_general_category(c),
        DecimalNumber | LetterNumber | OtherNumber
    )
}

/// `\s`: the Unicode White_Space property (the set llama.cpp uses).
fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// The words of `text` for the "smollm" pre-tokenizer: split off every `\p{N}` char, then
/// apply the GPT-2 pattern to each piece separately.
fn pre_tokenize(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if is_number(c) {
            if start < i {
                gpt2_split(&text[start..i], &mut words);
            }
            let end = i + c.len_utf8();
            words.push(&text[i..end]);
            start = end;
        }
    }
    if start < text.len() {
        gpt2_split(&text[start..], &mut words);
    }
    words
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` over `text`,
/// pushing every match (the pattern matches every char, so the matches cover the text).
fn gpt2_split<'a>(text: &'a str, words: &mut Vec<&'a str>) {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let offset = |i: usize| chars.get(i).map_or(text.len(), |&(o, _)| o);
    let other = |c: char| !is_space(c) && !is_letter(c) && !is_number(c);
    let mut pos = 0;
    while pos < n {
        let c = chars[pos].1;
        let start = pos;
        // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive)
        if c == '\'' {
            let c1 = at(pos + 1);
            let c2 = at(pos + 2);
            let len = match (c1, c2) {
                (Some('s' | 't' | 'm' | 'd'), _) => 2,
                (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => 3,
                _ => 0,
            };
            if len > 0 {
                pos += len;
                words.push(&text[offset(start)..offset(pos)]);
                continue;
            }
        }
        // ` ?` then a class: the char the class must start at.
        let first = if c == ' ' { pos + 1 } else { pos };
        let run = |class: &dyn Fn(char) -> bool| -> Option<usize> {
            let mut j = first;
            while at(j).is_some_and(class) {
                j += 1;
            }
            (j > first).then_some(j)
        };
        if let Some(end) = run(&is_letter)
            .or_else(|| run(&is_number))
            .or_else(|| run(&other))
        {
            pos = end;
            words.push(&text[offset(start)..offset(pos)]);
            continue;
        }
        // \s+(?!\S) then \s+: a run of spaces followed by a non-space gives back its last one.
        let mut j = pos;
        while at(j).is_some_and(is_space) {
            j += 1;
        }
        let spaces = j - pos;
        pos = if spaces > 1 && j < n {
            j - 1
        } else if spaces > 0 {
            j
        } else {
            pos + 1
        };
        words.push(&text[offset(start)..offset(pos)]);
    }
}

/// Turns token ids into text as they come, holding back an incomplete UTF-8 sequence until the
/// tokens that finish it arrive. Get one from [`Tokenizer::stream_decoder`].
#[derive(Debug)]
pub struct StreamDecoder<'a> {
    tokenizer: &'a Tokenizer,
    pending: Vec<u8>,
}

impl StreamDecoder<'_> {
    /// Add token `id`; returns the text completed by it (possibly empty). Invalid UTF-8 comes
    /// out as U+FFFD; a sequence that may still be completed is kept for the next call.
    pub fn push(&mut self, id: u32) -> String {
        self.pending
            .extend_from_slice(self.tokenizer.token_bytes(id));
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&rest[..valid]).unwrap_or_default());
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &rest[valid + bad..];
                        }
                        None => {
                            rest = &rest[valid..];
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }

    /// The text still held back (an incomplete UTF-8 sequence, as U+FFFD), at the end of
    /// generation.
    pub fn finish(self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}
