//! The kernel plan: the one place that decides which kernel runs. Given what an adapter
//! offers ([`AdapterProfile`]: features, limits, driver), its configuration
//! ([`KernelConfig`]: the per-adapter defaults of [`KernelConfig::untuned_for`] and the
//! tuner's cache), a format, a weight shape and a batch size, [`plan_matmul`] returns a
//! plain value ([`MatmulPlan`]) that names each dispatch's entry point, override constants,
//! where x is read from and how the grid follows the weight's rows, with the reason for each
//! choice. `kernels.rs` turns a plan into pipelines, bind groups and encoded dispatches and
//! decides nothing; `shaders.rs` composes the WGSL each entry names.
//!
//! The rules live beside their measurements: per adapter in [`config`] (GEMV settings,
//! texture GEMV tables per format) and [`coop`] (when the tensor-core GEMM runs), the
//! choice of kernel per batch in [`plan_matmul`] below.

pub mod adapter;
pub mod cache;
pub mod config;
pub mod coop;

pub(crate) use adapter::check_fits;
pub use adapter::{mesa_major, AdapterProfile};
pub use config::*;
pub use coop::{
    adapter_supports_coop_gemm, check_coop_gemm, coop_entry, coop_gemm, coop_matrix_features,
    coop_subgroup_size, CoopGemm, COOP_MIN_N,
};

use crate::error::Result;
use crate::format::Format;
use crate::gpu::layout::{folded_extent, max_plane_bytes, plane_row_bytes, rows_per_chunk};
use crate::gpu::shaders::{
    self, coop_warp_n_frags, Entry, GEMM_TILE, GEMV_LANES_WG, GEMV_WG_SIZE, X_UNIFORM_BYTES,
};
use std::ops::Range;

/// Where a GEMV dispatch reads x.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XSource {
    /// The caller's buffer, bound as it is (the buffer GEMVs).
    Caller,
    /// A copy in a uniform buffer of [`X_UNIFORM_BYTES`] ([`Entry::GemvLanesUniformX`]).
    Uniform,
    /// A copy in a storage buffer of this many bytes ([`Entry::GemvLanesStorageX`]).
    Storage(u64),
    /// A copy in a folded texture of this extent ([`Entry::GemvLanes`]).
    Texture(wgpu::Extent3d),
}

impl XSource {
    /// The texture GEMV entry that reads x from a copy here (`None` for the caller's).
    pub fn texture_entry(self) -> Option<Entry> {
        match self {
            XSource::Caller => None,
            XSource::Uniform => Some(Entry::GemvLanesUniformX),
            XSource::Storage(_) => Some(Entry::GemvLanesStorageX),
            XSource::Texture(_) => Some(Entry::GemvLanes),
        }
    }

    fn name(self) -> String {
        match self {
            XSource::Caller => "caller".into(),
            XSource::Uniform => "uniform".into(),
            XSource::Storage(_) => "storage".into(),
            XSource::Texture(e) => format!("texture:{}x{}", e.width, e.height),
        }
    }
}

/// One GEMV dispatch (per weight chunk) over the activation columns `cols`, `group` of them
/// per invocation (`N_COLS`; workgroup_id.z walks the groups).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GemvDispatch {
    pub entry: Entry,
    pub cols: Range<usize>,
    pub group: usize,
    /// Weight rows per lane group (`ROWS`).
    pub rows: u32,
    /// Lanes per chunk of codes (`SPLIT`).
    pub split: u32,
    /// Chunks per row each lane loads ahead (`UNROLL`).
    pub unroll: u32,
    pub x: XSource,
    /// Lane groups per workgroup: the grid has ceil(row groups / this) workgroups.
    pub lane_groups_per_workgroup: usize,
}

impl GemvDispatch {
    /// Its pipeline's override constants.
    pub fn constants(&self, format: Format) -> Vec<(&'static str, f64)> {
        shaders::gemv_constants(
            self.entry,
            format,
            self.group as u32,
            self.rows,
            self.split,
            self.unroll,
        )
    }
}

/// A tiled GEMM dispatch (per weight chunk): `tile` (weight rows, activation rows) per
/// workgroup; for the tensor-core GEMM, its subgroup size and fragments per subgroup along
/// the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TiledDispatch {
    pub entry: Entry,
    pub tile: (usize, usize),
    pub coop: Option<CoopSettings>,
}

/// The tensor-core GEMM's overrides (`SUBGROUP`, `WARP_N_FRAGS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoopSettings {
    pub subgroup_size: u32,
    pub warp_n_frags: u32,
}

impl TiledDispatch {
    /// Its pipeline's override constants.
    pub fn constants(&self, format: Format) -> Vec<(&'static str, f64)> {
        let mut constants = shaders::constants(format);
        if let Some(c) = self.coop {
            constants.push(("SUBGROUP", c.subgroup_size as f64));
            constants.push(("WARP_N_FRAGS", c.warp_n_frags as f64));
        }
        constants
    }
}

/// The kernel a matmul runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlannedKernel {
    /// GEMV dispatches, one per block of activation columns (each after its x copy, for the
    /// texture GEMV).
    Gemv(Vec<GemvDispatch>),
    /// One tiled GEMM (FMA or tensor-core) over the whole batch.
    Tiled(TiledDispatch),
}

/// What one matmul runs, and why.
#[derive(Clone, Debug)]
pub struct MatmulPlan {
    pub format: Format,
    /// Weight rows (outputs per activation row) and row length.
    pub shape: (usize, usize),
    pub n: usize,
    pub kernel: PlannedKernel,
    /// Rows per weight chunk (each dispatch runs once per chunk) and the number of chunks.
    pub chunk_rows: usize,
    pub chunks: usize,
    /// One line per choice, in the order made.
    pub reasons: Vec<String>,
}

/// The plan of `y = x w^T` for a `shape` = (m rows, k) weight of `format` and `n`
/// activation rows on `adapter` with `config`; `weight_textures`: the weight was uploaded
/// with textures as well ([`uses_textures_on`] and every plane within the texture limits,
/// see [`weight_gets_textures`]). The plan is the same for f32 and f16 activations.
pub fn plan_matmul(
    adapter: &AdapterProfile,
    config: &KernelConfig,
    format: Format,
    shape: (usize, usize),
    n: usize,
    weight_textures: bool,
) -> Result<MatmulPlan> {
    let (m, k) = shape;
    let chunk_rows = rows_per_chunk(format, m, k, max_plane_bytes(&adapter.limits))?;
    let mut reasons = Vec::new();
    if chunk_rows < m {
        reasons.push(format!(
            "the weight's planes exceed one storage binding: {} chunks of {chunk_rows} rows, a \
             dispatch each",
            m.div_ceil(chunk_rows)
        ));
    }
    let coop = match config.coop_matrix {
        true => Some(coop_gemm(adapter)?),
        false => None,
    };
    let kernel = if let Some(coop) = coop.filter(|_| n >= COOP_MIN_N) {
        // Below COOP_MIN_N most of a batch tile would be padding.
        reasons.push(format!(
            "n = {n} >= {COOP_MIN_N} with cooperative matrices: the tensor-core GEMM, \
             {f}x{f}x{f} fragments on subgroups of {}{}",
            coop.subgroup_size,
            if config.coop_wide_tile {
                ", wide batch tile"
            } else {
                ""
            },
            f = coop.fragment,
        ));
        PlannedKernel::Tiled(TiledDispatch {
            entry: coop.entry,
            tile: coop.tile(config.coop_wide_tile),
            coop: Some(CoopSettings {
                subgroup_size: coop.subgroup_size,
                warp_n_frags: coop_warp_n_frags(config.coop_wide_tile),
            }),
        })
    } else if kernel_for_batch(n) == shaders::KernelKind::Gemm && config.tiled_gemm {
        reasons.push(format!(
            "n = {n} > {GEMV_MAX_N}: the workgroup-memory tiled GEMM"
        ));
        PlannedKernel::Tiled(TiledDispatch {
            entry: Entry::Gemm,
            tile: GEMM_TILE,
            coop: None,
        })
    } else {
        if n > GEMV_MAX_N {
            // tiled_gemm is off on CPU adapters with the texture GEMV or subgroups.
            reasons.push(format!(
                "n = {n} > {GEMV_MAX_N} without the tiled GEMM (GEMV blocks beat it on CPU \
                 adapters): GEMV in blocks of at most {GEMV_MAX_N} columns"
            ));
        }
        let texture = (config.texture_gemv && weight_textures)
            .then(|| texture_gemv_blocks(adapter, config, format, k, n, &mut reasons))
            .flatten();
        match texture {
            Some(blocks) => PlannedKernel::Gemv(
                blocks
                    .into_iter()
                    .map(|(cols, group, x)| {
                        let entry = x.texture_entry().unwrap_or(Entry::GemvLanes);
                        gemv_dispatch(adapter, config, format, entry, cols, group, x)
                    })
                    .collect(),
            ),
            None => {
                if config.texture_gemv {
                    reasons.push(
                        "the weight (or x) exceeds the texture limits: the buffer GEMV".into(),
                    );
                }
                let group = n.min(GEMV_MAX_N);
                let entry = config.buffer_gemv_entry(group);
                reasons.push(buffer_gemv_reason(config, entry));
                PlannedKernel::Gemv(vec![gemv_dispatch(
                    adapter,
                    config,
                    format,
                    entry,
                    0..n,
                    group,
                    XSource::Caller,
                )])
            }
        }
    };
    if let PlannedKernel::Gemv(blocks) = &kernel {
        let mut seen = Vec::new();
        for d in blocks.iter().filter(|d| {
            let first = !seen.contains(&d.group);
            seen.push(d.group);
            first
        }) {
            reasons.push(gemv_settings_reason(adapter, config, d));
        }
    }
    Ok(MatmulPlan {
        format,
        shape,
        n,
        kernel,
        chunk_rows,
        chunks: m.div_ceil(chunk_rows),
        reasons,
    })
}

fn buffer_gemv_reason(config: &KernelConfig, entry: Entry) -> String {
    let why = match entry {
        Entry::GemvSubgroup => "lane groups are subgroups reduced with subgroupAdd",
        _ if config.subgroups => {
            "3-8 columns: one 64-lane lane group per workgroup, reduced in workgroup memory \
             (twice the lanes per row group; gemv_wide_workgroup)"
        }
        _ => "no subgroups: lane groups are workgroups reduced in workgroup memory",
    };
    format!("{}: {why}", entry.entry_point())
}

/// Why `d` runs its ROWS, SPLIT and UNROLL.
fn gemv_settings_reason(
    adapter: &AdapterProfile,
    config: &KernelConfig,
    d: &GemvDispatch,
) -> String {
    let base = config.gemv_rows.rows(d.entry, d.group);
    let source = if config.gemv_rows.for_cols(d.group).is_some() {
        "configuration: GPU default or tuned"
    } else {
        "entry's fixed default"
    };
    let rows = if d.rows == base {
        source.to_string()
    } else {
        let cols = if d.group == 1 { "column" } else { "columns" };
        format!(
            "{base}, {source}, raised by texture_gemv_rows at {} {cols}",
            d.group
        )
    };
    let steps = config
        .gemv_steps
        .for_cols(d.group)
        .map_or("a whole chunk".into(), |s| s.to_string());
    let unroll = if d.entry.reads_textures() {
        "the texture GEMV loads one chunk at a time"
    } else if adapter.is_cpu() {
        "CPU adapters load one chunk ahead"
    } else {
        "8 chunk loads in flight per lane on GPUs"
    };
    format!(
        "columns {}..{}: ROWS = {} ({rows}); SPLIT = {} (lanes per chunk of codes, steps per \
         lane setting: {steps}); UNROLL = {} ({unroll})",
        d.cols.start, d.cols.end, d.rows, d.split, d.unroll
    )
}

/// A GEMV dispatch of `entry` over `cols` in groups of `group`, with the settings `config`
/// gives it on `adapter`.
fn gemv_dispatch(
    adapter: &AdapterProfile,
    config: &KernelConfig,
    format: Format,
    entry: Entry,
    cols: Range<usize>,
    group: usize,
    x: XSource,
) -> GemvDispatch {
    let rows = config.gemv_rows.rows_for(entry, format, group);
    let split = gemv_split(
        entry,
        format,
        config.gemv_steps.for_cols(group),
        gemv_min_lanes(entry, &adapter.info),
    );
    let unroll = gemv_unroll(entry, rows, config.gemv_unroll, !adapter.is_cpu());
    let lane_groups_per_workgroup = match entry {
        // One invocation per row group.
        e if e.reads_textures() => GEMV_LANES_WG as usize,
        // Sized for the smallest subgroups: on an H100, sizing for 4-lane subgroups launched
        // an eighth of the workgroups (52 GB/s for the f32 GEMV); wider subgroups stride over
        // the extra row groups.
        Entry::GemvSubgroup => (GEMV_WG_SIZE / gemv_min_lanes(entry, &adapter.info)) as usize,
        _ => 1,
    };
    GemvDispatch {
        entry,
        cols,
        group,
        rows,
        split,
        unroll,
        x,
        lane_groups_per_workgroup,
    }
}

/// The texture GEMV's blocks for a batch of `n` columns at row length `k`: (columns,
/// columns per invocation, where x goes), or None where x does not fit a texture.
///
/// Columns go [`texture_gemv_cols`] per invocation (up to 8 with
/// [`KernelConfig::texture_x_storage`]); x goes into uniform buffers where that many
/// columns fit one (a block, and a dispatch, per buffer: as many columns as fit), else into
/// one storage buffer where the config says ([`KernelConfig::texture_x_storage`]) and the
/// binding limit allows, else into one texture. Columns left over after the last whole group
/// get a block of their own with a pipeline of their width, since a group reads and
/// computes all its columns (beyond the batch it repeats the last).
fn texture_gemv_blocks(
    adapter: &AdapterProfile,
    config: &KernelConfig,
    format: Format,
    k: usize,
    n: usize,
    reasons: &mut Vec<String>,
) -> Option<Vec<(Range<usize>, usize, XSource)>> {
    let limits = &adapter.limits;
    let fit = if X_UNIFORM_BYTES <= limits.max_uniform_buffer_binding_size {
        (X_UNIFORM_BYTES / (k.max(1) as u64 * 4)) as usize
    } else {
        0
    };
    // Four columns per invocation pay on drivers that read long x from a texture; with
    // it in a storage buffer, whole groups of 8 are faster (texture_x_storage).
    let group = if config.texture_x_storage {
        n.min(GEMV_MAX_N)
    } else {
        texture_gemv_cols(format, n, fit >= GEMV_MAX_N)
    };
    let whole = n / group * group;
    let mut plan = Vec::new();
    for (cols, group) in [(0..whole, group), (whole..n, n - whole)] {
        if cols.is_empty() {
            continue;
        }
        if fit >= group {
            let per_buffer = fit / group * group;
            for start in cols.clone().step_by(per_buffer) {
                let end = (start + per_buffer).min(cols.end);
                plan.push((start..end, group, XSource::Uniform));
            }
        } else {
            let bytes = (cols.len() * k * 4) as u64;
            let to = if config.texture_x_storage && bytes <= limits.max_storage_buffer_binding_size
            {
                XSource::Storage(bytes)
            } else {
                XSource::Texture(folded_extent(cols.len() * k / 4, limits)?)
            };
            plan.push((cols, group, to));
        }
    }
    reasons.push(format!(
        "CPU adapter: the texture GEMV (weights in textures, one invocation per row group); \
         {group} column{} per invocation{}; x of {fit} column{} fits the {} KiB uniform buffer{}",
        if group == 1 { "" } else { "s" },
        if config.texture_x_storage {
            " (x too long for the uniform buffer goes to a storage buffer: Mesa 26+)"
        } else if group < n.min(GEMV_MAX_N) {
            " (texture_gemv_cols: two dispatches of 4 beat one of 8 for this format)"
        } else {
            ""
        },
        if fit == 1 { "" } else { "s" },
        X_UNIFORM_BYTES >> 10,
        if fit < group {
            ", longer x is copied to a storage buffer or texture"
        } else {
            ""
        },
    ));
    Some(plan)
}

/// Whether a `shape` = (m, k) weight of `format` uploaded on `adapter` gets textures as well
/// ([`uses_textures_on`] and every chunk's planes within the texture limits), as
/// [`GpuWeight::upload`](crate::gpu::GpuWeight::upload) decides.
pub fn weight_gets_textures(
    adapter: &AdapterProfile,
    format: Format,
    shape: (usize, usize),
) -> bool {
    let (m, k) = shape;
    if !uses_textures_on(adapter) {
        return false;
    }
    let Ok(rows) = rows_per_chunk(format, m, k, max_plane_bytes(&adapter.limits)) else {
        return false;
    };
    let (code_bytes, param_bytes) = plane_row_bytes(format, k);
    let code_texels = rows * code_bytes / 16;
    let param_texels = if format.codec().chunk_param_texel().is_some() {
        code_texels
    } else {
        (rows * (param_bytes / 4).next_multiple_of(4) / 4).max(1)
    };
    [code_texels, param_texels]
        .iter()
        .all(|&t| folded_extent(t, &adapter.limits).is_some())
}

impl MatmulPlan {
    /// One line: each dispatch's entry point, columns/group, ROWS, SPLIT, UNROLL, lane groups
    /// per workgroup and x source, then the chunks (the form `tests/data/kernel_plans.txt`
    /// pins).
    pub fn compact(&self) -> String {
        let kernel = match &self.kernel {
            PlannedKernel::Tiled(t) => match (t.coop, t.entry.coop_fragment()) {
                (Some(c), Some(f)) => format!(
                    "gemm_coop{f} {}x{} sg{} f{}",
                    t.tile.0, t.tile.1, c.subgroup_size, c.warp_n_frags
                ),
                _ => format!("{} {}x{}", t.entry.entry_point(), t.tile.0, t.tile.1),
            },
            PlannedKernel::Gemv(blocks) => blocks
                .iter()
                .map(|d| {
                    format!(
                        "{} {}..{}/{} r{} s{} u{} w{} x:{}",
                        d.entry.entry_point(),
                        d.cols.start,
                        d.cols.end,
                        d.group,
                        d.rows,
                        d.split,
                        d.unroll,
                        d.lane_groups_per_workgroup,
                        d.x.name()
                    )
                })
                .collect::<Vec<_>>()
                .join(" + "),
        };
        format!("{kernel} | chunks {}x{}", self.chunks, self.chunk_rows)
    }

    /// The entry points the prepared dispatch runs, in order (x copies included), as
    /// [`Dispatch::entry_points`](crate::gpu::Dispatch::entry_points) reports them.
    pub fn entry_points(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        match &self.kernel {
            PlannedKernel::Tiled(t) => {
                v.extend(std::iter::repeat_n(t.entry.entry_point(), self.chunks))
            }
            PlannedKernel::Gemv(blocks) => {
                for d in blocks {
                    match d.x {
                        XSource::Caller => {}
                        XSource::Texture(_) => v.push("x_to_texture"),
                        XSource::Uniform | XSource::Storage(_) => v.push("x_to_buffer"),
                    }
                    v.extend(std::iter::repeat_n(d.entry.entry_point(), self.chunks));
                }
            }
        }
        v
    }
}

impl std::fmt::Display for MatmulPlan {
    /// Several lines: the dispatches with their settings, then the reasons.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (m, k) = self.shape;
        writeln!(f, "{} weight {m} x {k}, batch n = {}", self.format, self.n)?;
        let per_chunk = if self.chunks > 1 {
            format!(
                ", once per chunk ({} chunks of {} rows)",
                self.chunks, self.chunk_rows
            )
        } else {
            String::new()
        };
        match &self.kernel {
            PlannedKernel::Tiled(t) => {
                writeln!(
                    f,
                    "  {}: {} x {} outputs per workgroup{per_chunk}",
                    t.entry.entry_point(),
                    t.tile.0,
                    t.tile.1
                )?;
                if let Some(c) = t.coop {
                    writeln!(
                        f,
                        "    SUBGROUP = {}, WARP_N_FRAGS = {}",
                        c.subgroup_size, c.warp_n_frags
                    )?;
                }
            }
            PlannedKernel::Gemv(blocks) => {
                for d in blocks {
                    let x = match d.x {
                        XSource::Caller => "x from the caller's buffer".to_string(),
                        XSource::Uniform => "x copied to a uniform buffer".to_string(),
                        XSource::Storage(b) => format!("x copied to a {b}-byte storage buffer"),
                        XSource::Texture(e) => {
                            format!("x copied to a {} x {} texture", e.width, e.height)
                        }
                    };
                    writeln!(
                        f,
                        "  {} ({:?}) columns {}..{}, {} per invocation{per_chunk}; {x}",
                        d.entry.entry_point(),
                        d.entry,
                        d.cols.start,
                        d.cols.end,
                        d.group
                    )?;
                    writeln!(
                        f,
                        "    N_COLS = {}, ROWS = {}, SPLIT = {}, UNROLL = {}; {} lane group{} per workgroup",
                        d.group,
                        d.rows,
                        d.split,
                        d.unroll,
                        d.lane_groups_per_workgroup,
                        if d.lane_groups_per_workgroup == 1 { "" } else { "s" }
                    )?;
                }
            }
        }
        writeln!(f, "why:")?;
        for r in &self.reasons {
            writeln!(f, "  - {r}")?;
        }
        Ok(())
    }
}
