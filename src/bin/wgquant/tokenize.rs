//! `wgquant tokenize`: the token ids of a text for a GGUF model's tokenizer, printed like
//! llama.cpp's `llama-tokenize --ids`.

use std::path::PathBuf;
use std::process::ExitCode;
use wgquant::io::gguf::GgufReader;
use wgquant::llama::tokenizer::Tokenizer;

#[derive(clap::Args)]
pub struct Args {
    /// GGUF model whose tokenizer metadata (tokenizer.ggml.*) to use; tensors are not read.
    #[arg(long, value_name = "M.gguf")]
    model: PathBuf,
    /// Treat control tokens written in the text (e.g. <|im_start|>) as plain text.
    #[arg(long)]
    no_parse_special: bool,
    /// Print one `id -> 'piece'` line per token instead of the id list.
    #[arg(long)]
    show_tokens: bool,
    /// The text to tokenize, taken literally (no escape sequences).
    text: String,
}

/// A token's bytes for display: printable text as is, other chars and invalid bytes escaped.
fn show_piece(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\'' || c == '\\' {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

pub fn run(args: Args) -> wgquant::Result<ExitCode> {
    let reader = GgufReader::open(&args.model)?;
    let tokenizer =
        Tokenizer::from_metadata(&reader.header().metadata).map_err(|e| e.at_path(&args.model))?;
    let mut ids = Vec::new();
    if tokenizer.add_bos() {
        ids.extend(tokenizer.bos());
    }
    ids.extend(tokenizer.encode(&args.text, !args.no_parse_special));
    if args.show_tokens {
        for id in ids {
            println!("{id:6} -> '{}'", show_piece(tokenizer.token_bytes(id)));
        }
    } else {
        let list: Vec<String> = ids.iter().map(u32::to_string).collect();
        println!("[{}]", list.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
