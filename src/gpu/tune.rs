//! A small GEMV autotuner: times each candidate `ROWS` (weight rows per lane group) of the
//! GEMV entry the device uses, for one and for eight activation columns, and keeps the
//! fastest per bucket ([`GemvRows::narrow`] for 1-2 columns, [`GemvRows::wide`] for 3-8);
//! for eight columns on a device with subgroups it times both lane-group shapes (a subgroup,
//! or the whole workgroup: [`KernelConfig::gemv_wide_workgroup`]) with each one's rows.
//! Then, at those choices, each candidate number of x steps per lane per chunk of codes
//! ([`KernelConfig::gemv_steps`]) of the buffer GEMVs, keeping the fastest per bucket.
//! The choice is cached per adapter, driver and wgquant version in a JSON file
//! (`tuning.json` in [`cache_dir`]); [`KernelConfig::for_device`] applies it, and uses the
//! fixed defaults when the tuner has not run. A missing, unreadable or corrupt cache is
//! ignored (with a warning on stderr for the latter two).

use super::shaders::{self, Entry, GemvRows, GemvSteps, KernelConfig, GEMV_MAX_STEPS};
use super::{GpuContext, Kernels};
use crate::bench::{upload_copies, Timer, Timing, GPU_BYTES_IN_FLIGHT};
use crate::error::{Error, Result};
use crate::format::{Format, QuantizedTensor};
use crate::rng::Rng;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Environment variable naming the cache directory (overrides the XDG default).
pub const ENV_CACHE_DIR: &str = "WGQUANT_CACHE_DIR";
/// The cache file's name inside [`cache_dir`].
pub const CACHE_FILE: &str = "tuning.json";
/// Batch widths timed: one stands for [`GemvRows::narrow`], the other for [`GemvRows::wide`].
pub const TUNE_BATCHES: [usize; 2] = [1, 8];

/// What to time.
#[derive(Clone, Copy, Debug)]
pub struct TuneOptions {
    /// Weight shape (m output rows, k row length), q4_0.
    pub shape: (usize, usize),
    /// Untimed runs per candidate (the first compiles the pipeline).
    pub warmup: usize,
    /// Timed runs per candidate; the median counts (the fastest on CPU adapters:
    /// [`crate::bench::Statistic`]).
    pub runs: usize,
    /// Bytes of weights kept in flight by rotating copies of the weight (0: one copy), as
    /// in `bench`: a weight that stays in the last-level cache favours other choices than
    /// decode from memory does.
    pub bytes_in_flight: u64,
    /// The configuration whose GEMV is tuned: [`KernelConfig::untuned`] for the device
    /// (only a tuning of that is applied by [`KernelConfig::for_device`]).
    pub base: KernelConfig,
}

impl TuneOptions {
    /// 4096 x 4096 with the device's untuned configuration: rotated through
    /// [`GPU_BYTES_IN_FLIGHT`] on a hardware GPU; one copy and fewer runs on a CPU adapter.
    /// Fewer rows mislead on a CPU adapter: at 1024 x 4096 lavapipe chose 4 rows per
    /// invocation for one column (more row groups to spread over the cores), which ran
    /// 7-21% slower at 4096 x 4096 than the default 8, the choice there.
    pub fn defaults_for(ctx: &GpuContext) -> Self {
        let base = KernelConfig::untuned(&ctx.device);
        if ctx.is_cpu() {
            TuneOptions {
                shape: (4096, 4096),
                warmup: 1,
                runs: 3,
                bytes_in_flight: 0,
                base,
            }
        } else {
            TuneOptions {
                shape: (4096, 4096),
                warmup: 3,
                runs: 15,
                bytes_in_flight: GPU_BYTES_IN_FLIGHT,
                base,
            }
        }
    }
}

/// One timed candidate.
#[derive(Clone, Copy, Debug)]
pub struct Measurement {
    /// The GEMV entry timed.
    pub entry: Entry,
    pub rows: u32,
    /// Steps per lane per chunk ([`KernelConfig::gemv_steps`]).
    pub steps: u32,
    pub n: usize,
    /// Median seconds per run.
    pub seconds: f64,
}

/// The tuner's result.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// The GEMV entry tuned for 1-2 columns (the one the device's configuration uses).
    pub entry: Entry,
    /// The fastest GEMV entry for 3-8 columns: `entry`, or the workgroup-memory GEMV
    /// where `entry` is the subgroup one ([`KernelConfig::gemv_wide_workgroup`]).
    pub wide_entry: Entry,
    /// The fastest rows per bucket.
    pub rows: GemvRows,
    /// The fastest steps per lane per chunk at those rows, per bucket (`None`: not tuned,
    /// e.g. for the texture GEMV, or a cache written before the setting existed).
    pub steps: Option<GemvSteps>,
    /// The weight shape timed.
    pub shape: (usize, usize),
    /// Copies of the weight the runs rotated through.
    pub copies: usize,
    /// How the times were taken.
    pub timing: Timing,
    /// Every candidate's time (empty for a tuning loaded from the cache).
    pub measurements: Vec<Measurement>,
}

/// The candidates the tuner tries for `entry`: [`GemvRows::CANDIDATES`] up to its maximum.
pub fn candidates(entry: Entry) -> Vec<u32> {
    GemvRows::CANDIDATES
        .into_iter()
        .filter(|&r| r <= entry.max_gemv_rows())
        .collect()
}

/// The GEMV entries the tuner times for 3-8 columns under `base`: the subgroup GEMV and the
/// workgroup-memory one where `base` has subgroups (and no texture GEMV), else `base`'s own.
pub fn wide_entries(base: &KernelConfig) -> Vec<Entry> {
    let entry = base.gemv_entry(1);
    if entry == Entry::GemvSubgroup {
        vec![Entry::GemvSubgroup, Entry::Gemv]
    } else {
        vec![entry]
    }
}

/// The steps-per-lane candidates the tuner tries for `entries` on `ctx`'s device: 8, 4, 2,
/// 1 (a whole chunk of 4-bit codes per lane down to one x vec4 per lane), less those that
/// give Q4_0 the same lanes per chunk as a larger one in every entry on this device
/// ([`shaders::gemv_split`]); only 8 for the texture GEMV.
pub fn step_candidates(ctx: &GpuContext, entries: &[Entry]) -> Vec<u32> {
    let mut v: Vec<u32> = Vec::new();
    let mut splits = Vec::new();
    for steps in [GEMV_MAX_STEPS, 4, 2, 1] {
        let split: Vec<u32> = entries
            .iter()
            .map(|&e| {
                let min_lanes = shaders::gemv_min_lanes(e, &ctx.info);
                shaders::gemv_split(e, Format::Q4_0, Some(steps), min_lanes)
            })
            .collect();
        if !splits.contains(&split) {
            splits.push(split);
            v.push(steps);
        }
    }
    v
}

/// Time every candidate for the GEMV entries of `opts.base` (the rest of the configuration
/// as it is there), calling `progress` after each; pick the fastest per bucket.
pub fn tune(
    ctx: &GpuContext,
    opts: &TuneOptions,
    mut progress: impl FnMut(&Measurement),
) -> Result<Tuning> {
    let (m, k) = opts.shape;
    if m == 0 || k == 0 {
        return Err(Error::Shape("the tuning shape needs m, k >= 1".into()));
    }
    let format = Format::Q4_0;
    format.check_k(k)?;
    let base = opts.base;
    let entry = base.gemv_entry(1);
    let q = QuantizedTensor::quantize(format, &Rng::new(17).normal_vec(m * k), m, k)?;
    let weights = upload_copies(ctx, &q, opts.bytes_in_flight)?;
    let copies = weights.len();
    drop(q);
    let [narrow_n, wide_n] = TUNE_BATCHES;
    let x = ctx.storage_buffer("wgquant tune x", &Rng::new(5).normal_vec(wide_n * k));
    let y = ctx.output_buffer("wgquant tune y", wide_n * m);
    let runs = opts.runs.max(1);
    let timer = Timer::new(ctx, runs as u32);
    let mut measurements = Vec::new();
    let mut time = |config: KernelConfig, n: usize| -> Result<f64> {
        let kernels = Kernels::with_config(&ctx.device, format, config)?;
        let ops = weights
            .iter()
            .map(|w| kernels.matmul(w, &x, &y, n))
            .collect::<Result<Vec<_>>>()?;
        let seconds = timer.time_per_run(&ops, opts.warmup, runs)?;
        let entry = config.gemv_entry(n);
        let meas = Measurement {
            entry,
            rows: config.gemv_rows.rows(entry, n),
            steps: config.gemv_steps.for_cols(n).unwrap_or(GEMV_MAX_STEPS),
            n,
            seconds,
        };
        progress(&meas);
        measurements.push(meas);
        Ok(seconds)
    };
    // Rows first (and the wide bucket's lane group), at the default steps per lane.
    let base_steps =
        [narrow_n, wide_n].map(|n| base.gemv_steps.for_cols(n).unwrap_or(GEMV_MAX_STEPS));
    let with = |rows: u32, wide_entry: Entry| KernelConfig {
        gemv_rows: GemvRows::fixed(rows),
        gemv_wide_workgroup: wide_entry == Entry::Gemv,
        ..base
    };
    let mut narrow = (0u32, f64::INFINITY);
    for rows in candidates(entry) {
        let t = time(with(rows, entry), narrow_n)?;
        if t < narrow.1 {
            narrow = (rows, t);
        }
    }
    let wide_candidates = wide_entries(&base);
    let mut wide = (0u32, entry, f64::INFINITY);
    for &e in &wide_candidates {
        for rows in candidates(e) {
            let t = time(with(rows, e), wide_n)?;
            if t < wide.2 {
                wide = (rows, e, t);
            }
        }
    }
    let best = [narrow.1, wide.2];
    let rows = GemvRows {
        narrow: Some(narrow.0),
        wide: Some(wide.0),
    };
    let wide_entry = wide.1;
    let chosen = KernelConfig {
        gemv_rows: rows,
        gemv_wide_workgroup: wide_entry == Entry::Gemv,
        ..base
    };
    // Then steps per lane with those choices: the fastest per bucket.
    let candidates = step_candidates(ctx, &[entry, wide_entry]);
    let mut steps = None;
    if candidates.len() > 1 {
        let mut fastest = [(0, f64::INFINITY); 2];
        for &s in &candidates {
            let config = KernelConfig {
                gemv_steps: GemvSteps::fixed(s),
                ..chosen
            };
            for (b, n) in TUNE_BATCHES.into_iter().enumerate() {
                // The rows were timed at the base's steps already.
                let t = if s == base_steps[b] {
                    best[b]
                } else {
                    time(config, n)?
                };
                if t < fastest[b].1 {
                    fastest[b] = (s, t);
                }
            }
        }
        steps = Some(GemvSteps {
            narrow: Some(fastest[0].0),
            wide: Some(fastest[1].0),
        });
    }
    Ok(Tuning {
        entry,
        wide_entry,
        rows,
        steps,
        shape: opts.shape,
        copies,
        timing: timer.timing(),
        measurements,
    })
}

/// The cache directory: `$WGQUANT_CACHE_DIR`, else `$XDG_CACHE_HOME/wgquant`, else
/// `$HOME/.cache/wgquant`; `None` when none of them is set.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var(ENV_CACHE_DIR)
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("wgquant")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("wgquant")))
}

/// The cache file: [`CACHE_FILE`] in [`cache_dir`].
pub fn cache_path() -> Option<PathBuf> {
    cache_dir().map(|d| d.join(CACHE_FILE))
}

/// The cache key of an adapter: name, vendor and device ids, backend, driver, driver info
/// and the wgquant version (a new driver or wgquant version tunes afresh).
pub fn adapter_key(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{} | vendor {:#06x} | device {:#06x} | {:?} | {} | {} | wgquant {}",
        info.name,
        info.vendor,
        info.device,
        info.backend,
        info.driver,
        info.driver_info,
        env!("CARGO_PKG_VERSION")
    )
}

static WARNED: AtomicBool = AtomicBool::new(false);

fn warn_once(msg: &str) {
    if !WARNED.swap(true, Ordering::Relaxed) {
        eprintln!("wgquant: warning: {msg}; using the default GEMV rows");
    }
}

/// The cached tuning for `info` from [`cache_path`], if any (see [`load_from`]).
pub fn load(info: &wgpu::AdapterInfo) -> Option<Tuning> {
    load_from(&cache_path()?, info)
}

/// The cached tuning for `info` in the cache file `path`. `None` when the file or the entry
/// is missing; also when the file cannot be read or parsed, or the entry is invalid, after
/// a warning on stderr (once per process). Never panics.
pub fn load_from(path: &Path, info: &wgpu::AdapterInfo) -> Option<Tuning> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            warn_once(&format!(
                "cannot read the tuning cache {}: {e}",
                path.display()
            ));
            return None;
        }
    };
    let doc: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            warn_once(&format!(
                "ignoring the corrupt tuning cache {}: {e}",
                path.display()
            ));
            return None;
        }
    };
    let entry = doc.get("adapters")?.get(adapter_key(info))?;
    match parse_entry(entry) {
        Some(t) => Some(t),
        None => {
            warn_once(&format!(
                "ignoring an invalid entry for this adapter in the tuning cache {}",
                path.display()
            ));
            None
        }
    }
}

fn parse_entry(v: &serde_json::Value) -> Option<Tuning> {
    let name = v.get("entry")?.as_str()?;
    let entry = Entry::ALL
        .into_iter()
        .find(|e| e.is_gemv() && e.entry_point() == name)?;
    let bucket = |key: &str| -> Option<u32> { v.get(key)?.as_u64()?.try_into().ok() };
    let rows = GemvRows {
        narrow: Some(bucket("rows_narrow")?),
        wide: Some(bucket("rows_wide")?),
    };
    // Absent in caches written before the wide bucket had its own entry: `entry` then.
    let wide_entry = match v.get("entry_wide") {
        None => entry,
        Some(w) => {
            let name = w.as_str()?;
            Entry::ALL
                .into_iter()
                .find(|e| e.entry_point() == name)
                .filter(|&e| e == entry || (entry, e) == (Entry::GemvSubgroup, Entry::Gemv))?
        }
    };
    rows.validate().ok()?;
    if rows.narrow? > entry.max_gemv_rows() || rows.wide? > wide_entry.max_gemv_rows() {
        return None;
    }
    // Absent in caches written before the setting existed: the default then; one value for
    // both buckets in caches written before each bucket had its own (no `steps_wide`).
    // `null` where the tuner did not choose (the texture GEMV has one candidate).
    let steps_of = |key: &str| -> Option<Option<u32>> {
        match v.get(key) {
            None | Some(serde_json::Value::Null) => Some(None),
            Some(s) => Some(Some(u32::try_from(s.as_u64()?).ok()?)),
        }
    };
    let steps = match (steps_of("steps")?, steps_of("steps_wide")?) {
        (None, None) => None,
        (Some(narrow), None) => Some(GemvSteps::fixed(narrow)),
        (Some(narrow), Some(wide)) => Some(GemvSteps {
            narrow: Some(narrow),
            wide: Some(wide),
        }),
        (None, Some(_)) => return None,
    };
    if let Some(s) = steps {
        s.validate().ok()?;
    }
    let shape = v.get("shape")?.as_array()?;
    let dim = |i: usize| -> Option<usize> { shape.get(i)?.as_u64()?.try_into().ok() };
    let timing = match v.get("timing")?.as_str()? {
        "timestamp" => Timing::Timestamps,
        "wall" => Timing::WallClock,
        _ => return None,
    };
    // Absent in caches written before the tuner rotated copies: one copy then.
    let copies = match v.get("copies") {
        None => 1,
        Some(c) => usize::try_from(c.as_u64()?).ok().filter(|&c| c >= 1)?,
    };
    Some(Tuning {
        entry,
        wide_entry,
        rows,
        steps,
        shape: (dim(0)?, dim(1)?),
        copies,
        timing,
        measurements: Vec::new(),
    })
}

/// Write `tuning` for `info` into [`cache_path`] (keeping other adapters' entries); return
/// the file's path.
pub fn store(info: &wgpu::AdapterInfo, tuning: &Tuning) -> Result<PathBuf> {
    let path = cache_path().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "no cache directory: set {ENV_CACHE_DIR}, XDG_CACHE_HOME or HOME"
        ))
    })?;
    store_to(&path, info, tuning)?;
    Ok(path)
}

/// Write `tuning` for `info` into the cache file `path`, creating its directory and keeping
/// other adapters' entries (a corrupt file is replaced). Written to a temporary file and
/// renamed, so a reader never sees half a file.
pub fn store_to(path: &Path, info: &wgpu::AdapterInfo, tuning: &Tuning) -> Result<()> {
    let rows =
        |r: Option<u32>, entry: Entry, cols| r.unwrap_or_else(|| entry.default_gemv_rows(cols));
    let mut doc = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .filter(|d| d.get("adapters").is_some_and(|a| a.is_object()))
        .unwrap_or_else(|| serde_json::json!({ "version": 1, "adapters": {} }));
    doc["adapters"][adapter_key(info)] = serde_json::json!({
        "entry": tuning.entry.entry_point(),
        "entry_wide": tuning.wide_entry.entry_point(),
        "rows_narrow": rows(tuning.rows.narrow, tuning.entry, 1),
        "rows_wide": rows(tuning.rows.wide, tuning.wide_entry, 8),
        "steps": tuning.steps.and_then(|s| s.narrow),
        "steps_wide": tuning.steps.and_then(|s| s.wide),
        "shape": [tuning.shape.0, tuning.shape.1],
        "copies": tuning.copies,
        "timing": match tuning.timing { Timing::Timestamps => "timestamp", Timing::WallClock => "wall" },
    });
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    let text = serde_json::to_string_pretty(&doc).expect("json");
    std::fs::write(&tmp, text + "\n").map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(())
}
