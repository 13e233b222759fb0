//! The tuner's cache: the GEMV choices `wgquant tune` measured, per adapter, driver and
//! wgquant version, in a JSON file (`tuning.json` in [`cache_dir`]), and how a
//! [`KernelConfig`] takes them. `crate::gpu::tune` measures and writes; the plan reads. A
//! missing, unreadable or corrupt cache is ignored (with a warning on stderr for the latter
//! two).

use super::config::{GemvRows, GemvSteps, KernelConfig};
use crate::bench::Timing;
use crate::error::{Error, Result};
use crate::gpu::shaders::Entry;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Environment variable naming the cache directory (overrides the XDG default).
pub const ENV_CACHE_DIR: &str = "WGQUANT_CACHE_DIR";
/// The cache file's name inside [`cache_dir`].
pub const CACHE_FILE: &str = "tuning.json";
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

impl KernelConfig {
    /// The best configuration for `device`: [`KernelConfig::untuned`] with the GEMV rows
    /// from the autotuner's cache (`wgquant tune`, [`load`]) where it
    /// holds a valid entry for this adapter, driver and wgquant version and the same GEMV
    /// entry; the fixed defaults otherwise.
    pub fn for_device(device: &wgpu::Device) -> Self {
        let config = Self::untuned(device);
        match load(&device.adapter_info()) {
            Some(t) => config.with_tuning(&t),
            None => config,
        }
    }

    /// This configuration with the GEMV choices of `t` (rows, steps where it has them, the
    /// wide bucket's lane group), if `t` tuned the GEMV entry this one runs for one column;
    /// unchanged otherwise.
    pub fn with_tuning(self, t: &Tuning) -> Self {
        let mut config = self;
        if t.entry == config.gemv_entry(1) && t.rows.validate().is_ok() {
            config.gemv_rows = t.rows;
            // The cache's steps are validated on loading.
            if let Some(steps) = t.steps {
                config.gemv_steps = steps;
            }
            if t.entry == Entry::GemvSubgroup {
                config.gemv_wide_workgroup = t.wide_entry == Entry::Gemv;
            }
        }
        config
    }
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
