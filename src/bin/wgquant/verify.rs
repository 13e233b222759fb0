//! `wgquant verify`

use crate::AdapterArgs;
use std::process::ExitCode;
use wgquant::Format;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    adapter: AdapterArgs,
    /// Formats to check, or `all` (default: every format).
    #[arg(long = "format", value_name = "F")]
    formats: Vec<String>,
}

pub fn run(args: Args) -> wgquant::Result<ExitCode> {
    let ctx = args.adapter.context()?;
    let formats = if args.formats.is_empty() {
        Format::all()
    } else {
        crate::parse_formats(&args.formats)?
    };
    println!("verifying on {}", ctx.describe());
    println!(
        "{:<16} {:<10} {:>6} {:>6} {:>4} {:>11} {:>9}  result",
        "format", "kernel", "m", "k", "n", "nmse", "bound"
    );
    let (mut passed, mut failed) = (0, 0);
    for format in formats {
        wgquant::verify::run_format(&ctx, format, |r| {
            let ok = r.passed();
            let why = r.failure().map_or(String::new(), |w| format!(" ({w})"));
            println!(
                "{:<16} {:<10} {:>6} {:>6} {:>4} {:>11.3e} {:>9.0e}  {}{}",
                r.format.to_string(),
                r.kernel_name(),
                r.m,
                r.k,
                r.n,
                r.nmse,
                r.bound,
                if ok { "pass" } else { "FAIL" },
                why
            );
            if ok {
                passed += 1
            } else {
                failed += 1
            }
        })?;
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
