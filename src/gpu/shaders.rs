//! Shader composition: a kernel module is `common.wgsl`, then where its operands live
//! (`weights_buffer.wgsl` and the activation type's file, `act_f32.wgsl` or `act_f16.wgsl`,
//! which declare x and y and define `load_x4` and `store_y`; for the texture GEMV
//! `io_texture.wgsl` and `x_texture.wgsl` or `x_uniform.wgsl`), then the format's WGSL file,
//! then the entry point's files, concatenated in that order; an f16 module starts with
//! `enable f16;`. Variants differ by pipeline override
//! constants: the format's layout constants from its codec, plus the GEMV column and row
//! counts.

use crate::format::Format;

const COMMON: &str = include_str!("../../shaders/common.wgsl");
const WEIGHTS_BUFFER: &str = include_str!("../../shaders/weights_buffer.wgsl");
const IO_TEXTURE: &str = include_str!("../../shaders/io_texture.wgsl");
const X_TEXTURE: &str = include_str!("../../shaders/x_texture.wgsl");
const X_UNIFORM: &str = include_str!("../../shaders/x_uniform.wgsl");
const X_STORAGE: &str = include_str!("../../shaders/x_storage.wgsl");
const X_COPY: &str = include_str!("../../shaders/x_copy.wgsl");
/// Texels per row of the folded textures (`TEXTURE_WIDTH` in `shaders/io_texture.wgsl` and
/// `shaders/x_copy.wgsl`): plane element i sits at (i % width, i / width).
pub const TEXTURE_WIDTH: u32 = 4096;
const ACT_F32: &str = include_str!("../../shaders/act_f32.wgsl");
const ACT_F16: &str = include_str!("../../shaders/act_f16.wgsl");
const GEMV_CORE: &str = include_str!("../../shaders/gemv.wgsl");
const GEMM_SLICES: &str = include_str!("../../shaders/gemm_slices.wgsl");
const WORKGROUP_SUM: &str = include_str!("../../shaders/workgroup_sum.wgsl");
const GEMM_COOP: &str = include_str!("../../shaders/gemm_coop.wgsl");
// The tensor-core GEMM's fragment shape (gemm_coop.wgsl uses FRAG and these types).
const COOP_FRAGMENT_16: &str = "const FRAG: u32 = 16u;
alias FragA = coop_mat16x16<f16, A>;
alias FragB = coop_mat16x16<f16, B>;
alias FragC = coop_mat16x16<f32, C>;
";
const COOP_FRAGMENT_8: &str = "const FRAG: u32 = 8u;
alias FragA = coop_mat8x8<f16, A>;
alias FragB = coop_mat8x8<f16, B>;
alias FragC = coop_mat8x8<f32, C>;
";

/// A kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelKind {
    /// Matrix-vector product for batches of 1..=8 activation rows.
    Gemv,
    /// Matrix-matrix product for larger batches.
    Gemm,
    /// Weights to f32.
    Dequantize,
}

impl KernelKind {
    pub const ALL: [KernelKind; 3] = [KernelKind::Gemv, KernelKind::Gemm, KernelKind::Dequantize];

    /// The family's name (the entry point of its portable variant).
    pub fn entry_point(self) -> &'static str {
        match self {
            KernelKind::Gemv => "gemv",
            KernelKind::Gemm => "gemm",
            KernelKind::Dequantize => "dequantize",
        }
    }

    /// The portable entry (no optional features) of this family.
    pub fn entry(self) -> Entry {
        match self {
            KernelKind::Gemv => Entry::Gemv,
            KernelKind::Gemm => Entry::Gemm,
            KernelKind::Dequantize => Entry::Dequantize,
        }
    }

    /// The most workgroup memory any of the family's entry points declares, in bytes, not
    /// counting the cooperative-matrix GEMM (built only where the device offers it, and
    /// checked against the device on its own).
    pub fn workgroup_memory_bytes(self) -> u32 {
        Entry::ALL
            .iter()
            .filter(|e| e.kind() == self && !e.needs_cooperative_matrix())
            .map(|e| e.workgroup_memory_bytes())
            .max()
            .unwrap_or(0)
    }

    /// Invocations per workgroup (kept in step with its WGSL).
    pub fn invocations(self) -> u32 {
        match self {
            KernelKind::Gemv | KernelKind::Dequantize => 64,
            KernelKind::Gemm => 256,
        }
    }
}

/// One compiled entry point: a module of its own (subgroup builtins only appear in modules
/// built for devices with `Features::SUBGROUP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Entry {
    /// GEMV reduced through workgroup memory (any device).
    Gemv,
    /// GEMV reduced with subgroupAdd, no workgroup memory or barriers (`Features::SUBGROUP`).
    GemvSubgroup,
    /// GEMV with one invocation per row group, reading weights and x from textures
    /// (CPU adapters).
    GemvLanes,
    /// The texture GEMV with x in a uniform buffer ([`X_UNIFORM_BYTES`]), for rows of x
    /// short enough: [`KernelConfig::gemv_entry`](crate::gpu::plan::KernelConfig::gemv_entry) names [`Entry::GemvLanes`] and the kernels
    /// pick this variant per matmul.
    GemvLanesUniformX,
    /// The texture GEMV with x in a storage buffer, for rows of x too long for the uniform
    /// buffer where [`KernelConfig::texture_x_storage`](crate::gpu::plan::KernelConfig::texture_x_storage) says so (else x goes into a texture).
    GemvLanesStorageX,
    /// Workgroup-memory tiled GEMM.
    Gemm,
    /// Tensor-core GEMM: f16 tiles in workgroup memory, 16x16x16 cooperative-matrix
    /// multiply-accumulate in f32 (`Features::EXPERIMENTAL_COOPERATIVE_MATRIX` and
    /// `SHADER_F16`, subgroups of one size: see [`coop_entry`](super::coop_entry)).
    GemmCoop16,
    /// The tensor-core GEMM with 8x8x8 fragments (lavapipe, subgroups of 8).
    GemmCoop8,
    /// Weights to f32.
    Dequantize,
    /// Selected rows to f32 (embedding lookup); shares the dequantize module's source.
    GatherRows,
}

impl Entry {
    pub const ALL: [Entry; 10] = [
        Entry::Gemv,
        Entry::GemvSubgroup,
        Entry::GemvLanes,
        Entry::GemvLanesUniformX,
        Entry::GemvLanesStorageX,
        Entry::Gemm,
        Entry::GemmCoop16,
        Entry::GemmCoop8,
        Entry::Dequantize,
        Entry::GatherRows,
    ];

    /// The entry point's name.
    pub fn entry_point(self) -> &'static str {
        match self {
            Entry::Gemv => "gemv",
            Entry::GemvSubgroup => "gemv_subgroup",
            Entry::GemvLanes | Entry::GemvLanesUniformX | Entry::GemvLanesStorageX => "gemv_lanes",
            Entry::Gemm => "gemm",
            Entry::GemmCoop16 | Entry::GemmCoop8 => "gemm_coop",
            Entry::Dequantize => "dequantize",
            Entry::GatherRows => "gather_rows",
        }
    }

    /// The family it belongs to.
    pub fn kind(self) -> KernelKind {
        match self {
            Entry::Gemv | Entry::GemvSubgroup => KernelKind::Gemv,
            Entry::GemvLanes | Entry::GemvLanesUniformX | Entry::GemvLanesStorageX => {
                KernelKind::Gemv
            }
            Entry::Gemm | Entry::GemmCoop16 | Entry::GemmCoop8 => KernelKind::Gemm,
            Entry::Dequantize | Entry::GatherRows => KernelKind::Dequantize,
        }
    }

    /// Whether the module uses subgroup builtins.
    pub fn needs_subgroups(self) -> bool {
        matches!(self, Entry::GemvSubgroup)
    }

    /// The most weight rows per lane group the entry accepts: GEMV_SHARED_MAX_ROWS for the
    /// workgroup-memory GEMV, GEMV_MAX_ROWS for the others (and for non-GEMV entries,
    /// which ignore it).
    pub fn max_gemv_rows(self) -> u32 {
        match self {
            Entry::Gemv => GEMV_SHARED_MAX_ROWS,
            _ => GEMV_MAX_ROWS,
        }
    }

    /// Whether the module reads its weights from textures (`io_texture.wgsl`; x from a
    /// texture, a uniform buffer or a storage buffer) rather than storage buffers: the
    /// texture GEMV.
    pub fn reads_textures(self) -> bool {
        matches!(
            self,
            Entry::GemvLanes | Entry::GemvLanesUniformX | Entry::GemvLanesStorageX
        )
    }

    /// Whether the module uses cooperative matrices and f16 (its source starts with their
    /// `enable` directives).
    pub fn needs_cooperative_matrix(self) -> bool {
        self.coop_fragment().is_some()
    }

    /// The edge of the tensor-core GEMM's square cooperative-matrix fragments, `None` for
    /// other entries.
    pub fn coop_fragment(self) -> Option<u32> {
        match self {
            Entry::GemmCoop16 => Some(16),
            Entry::GemmCoop8 => Some(8),
            _ => None,
        }
    }

    /// Whether the GEMV overrides (`N_COLS`, `ROWS`) apply.
    pub fn is_gemv(self) -> bool {
        self.kind() == KernelKind::Gemv
    }

    fn sources(self) -> &'static [&'static str] {
        match self {
            Entry::Gemv => &[
                GEMV_CORE,
                WORKGROUP_SUM,
                include_str!("../../shaders/gemv_shared.wgsl"),
            ],
            Entry::GemvSubgroup => &[GEMV_CORE, include_str!("../../shaders/gemv_subgroup.wgsl")],
            Entry::GemvLanes | Entry::GemvLanesUniformX | Entry::GemvLanesStorageX => {
                &[GEMV_CORE, include_str!("../../shaders/gemv_lanes.wgsl")]
            }
            Entry::Gemm => &[GEMM_SLICES, include_str!("../../shaders/gemm.wgsl")],
            Entry::GemmCoop16 => &[GEMM_SLICES, COOP_FRAGMENT_16, GEMM_COOP],
            Entry::GemmCoop8 => &[GEMM_SLICES, COOP_FRAGMENT_8, GEMM_COOP],
            Entry::Dequantize | Entry::GatherRows => {
                &[include_str!("../../shaders/dequantize.wgsl")]
            }
        }
    }

    /// Workgroup memory the entry declares, in bytes (kept in step with its WGSL).
    pub fn workgroup_memory_bytes(self) -> u32 {
        match self {
            Entry::Gemv => GEMV_WG_SIZE * WORKGROUP_SUM_VALUES * 4,
            Entry::GemvSubgroup
            | Entry::GemvLanes
            | Entry::GemvLanesUniformX
            | Entry::GemvLanesStorageX => 0,
            Entry::Dequantize | Entry::GatherRows => 0,
            Entry::Gemm => 2 * 32 * 64 * 4,
            // f16 weight and activation tiles (rows padded to 40; the activations' sized for
            // the wide tile), one f32 fragment per subgroup.
            Entry::GemmCoop16 | Entry::GemmCoop8 => {
                let f = self.coop_fragment().unwrap_or(0);
                let (m, n) = coop_tile(f, true);
                (m + n) as u32 * 40 * 2 + COOP_WARPS * f * f * 4
            }
        }
    }
}

/// Subgroups per workgroup of the tensor-core GEMM (`WARPS` in the WGSL): a workgroup has
/// `COOP_WARPS` x the subgroup size invocations.
pub const COOP_WARPS: u32 = 8;
/// Subgroups along the weight rows (`WARPS_M`); the others lie along the batch.
pub(crate) const COOP_WARPS_M: usize = 4;

/// Fragments along the batch of each subgroup's tile (`WARP_N_FRAGS`): 2, or 4 with the
/// wide batch tile ([`KernelConfig::coop_wide_tile`](crate::gpu::KernelConfig::coop_wide_tile)).
pub fn coop_warp_n_frags(wide: bool) -> u32 {
    if wide {
        4
    } else {
        2
    }
}

/// The tensor-core GEMM's output tile (weight rows x activation rows) for fragments of
/// `fragment` x `fragment`: each subgroup owns 2 x 2 fragments (2 x 4 if `wide`), 4
/// subgroups along the rows and 2 along the batch (128 x 64 with 16 x 16 fragments, 128 x 128
/// wide; 64 x 32 or 64 x 64 with 8 x 8).
pub fn coop_tile(fragment: u32, wide: bool) -> (usize, usize) {
    let f = fragment as usize;
    (
        COOP_WARPS_M * 2 * f,
        (COOP_WARPS as usize / COOP_WARPS_M) * coop_warp_n_frags(wide) as usize * f,
    )
}

/// The FMA GEMM's output tile (weight rows x activation rows), kept in step with
/// `shaders/gemm.wgsl`.
pub const GEMM_TILE: (usize, usize) = (64, 64);

/// The element type of a matmul's activations `x` and outputs `y`. Either way the kernels
/// widen x to f32 and accumulate in f32; f16 halves the activation traffic and rounds each
/// output to f16 once (see `docs/ACCURACY.md` for the error bound).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ActType {
    /// IEEE binary32 (any device).
    #[default]
    F32,
    /// IEEE binary16, little-endian (needs `Features::SHADER_F16`).
    F16,
}

impl ActType {
    pub const ALL: [ActType; 2] = [ActType::F32, ActType::F16];

    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            ActType::F32 => 4,
            ActType::F16 => 2,
        }
    }

    /// `"f32"` or `"f16"`.
    pub fn name(self) -> &'static str {
        match self {
            ActType::F32 => "f32",
            ActType::F16 => "f16",
        }
    }

    /// Whether kernels with this activation type can run on `device`.
    pub fn supported_by(self, device: &wgpu::Device) -> bool {
        match self {
            ActType::F32 => true,
            ActType::F16 => device.features().contains(wgpu::Features::SHADER_F16),
        }
    }

    fn source(self) -> &'static str {
        match self {
            ActType::F32 => ACT_F32,
            ActType::F16 => ACT_F16,
        }
    }

    /// The texture GEMV's outputs of this type (`y` and `store_y`).
    fn texture_y_source(self) -> &'static str {
        match self {
            ActType::F32 => include_str!("../../shaders/y_f32.wgsl"),
            ActType::F16 => include_str!("../../shaders/y_f16.wgsl"),
        }
    }

    /// The WGSL module that copies x of this type to where the texture GEMV reads it, as
    /// f32 (entry points `x_to_texture` and `x_to_buffer`).
    pub fn x_copy_wgsl(self) -> String {
        let x_in = match self {
            ActType::F32 => include_str!("../../shaders/x_in_f32.wgsl"),
            ActType::F16 => include_str!("../../shaders/x_in_f16.wgsl"),
        };
        format!("{x_in}\n{X_COPY}")
    }
}

impl std::fmt::Display for ActType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Most 4-value steps per lane per chunk ([`KernelConfig::gemv_steps`](crate::gpu::plan::KernelConfig::gemv_steps)): a whole chunk of
/// 4-bit codes.
pub const GEMV_MAX_STEPS: u32 = 8;

/// Most activation rows one GEMV pipeline handles (`MAX_N` in `shaders/gemv.wgsl`).
pub const GEMV_MAX_COLS: u32 = 8;
/// Most weight rows per GEMV lane group (`MAX_ROWS` in `shaders/gemv.wgsl`), and the most a
/// setting ([`GemvRows`](crate::gpu::plan::GemvRows)) may ask for.
pub const GEMV_MAX_ROWS: u32 = 8;
/// Most weight rows per invocation of the texture GEMV (`LANES_MAX_ROWS` in
/// `shaders/gemv_lanes.wgsl`), where it fetches params once per texel
/// ([`param_texel_chunks`] > 0); [`GEMV_MAX_ROWS`] otherwise.
pub const GEMV_LANES_MAX_ROWS: u32 = 16;

/// The most weight rows per lane group `entry` can run for `format`: [`GEMV_LANES_MAX_ROWS`]
/// for the texture GEMV where it fetches params per texel, else [`Entry::max_gemv_rows`].
pub fn gemv_rows_limit(entry: Entry, format: Format) -> u32 {
    if entry.reads_textures() && param_texel_chunks(format) > 0 {
        GEMV_LANES_MAX_ROWS
    } else {
        entry.max_gemv_rows()
    }
}

/// Bytes of x the texture GEMV reads from a uniform buffer ([`Entry::GemvLanesUniformX`],
/// `X_UNIFORM_VEC4S` vec4s in `shaders/x_uniform.wgsl`), on devices whose uniform bindings
/// take it: a batch runs one dispatch per block of as many columns as fit (whole groups of
/// the GEMV's columns per invocation, [`texture_gemv_cols`](crate::gpu::plan::texture_gemv_cols), k x 4 bytes each; the columns
/// after the last whole group in a block of their own); where not even one group fits, x
/// goes into a texture.
pub const X_UNIFORM_BYTES: u64 = 64 << 10;

/// Most weight rows per workgroup of the workgroup-memory GEMV (`SHARED_MAX_ROWS`).
pub const GEMV_SHARED_MAX_ROWS: u32 = 4;
/// Values per lane the workgroup-memory lane sums hold (`SUM_VALUES` in
/// `shaders/workgroup_sum.wgsl`): columns x rows of [`Entry::Gemv`] and the int8 GEMV.
pub const WORKGROUP_SUM_VALUES: u32 = 32;
const _: () = assert!(
    GEMV_MAX_COLS * GEMV_SHARED_MAX_ROWS <= WORKGROUP_SUM_VALUES
        && GEMV_MAX_COLS * GEMV_I8_ROWS <= WORKGROUP_SUM_VALUES
);
/// Invocations per workgroup of the texture GEMV (`LANES_WG` in `shaders/gemv_lanes.wgsl`).
pub const GEMV_LANES_WG: u32 = 16;
/// Invocations per GEMV workgroup (`WG_SIZE` in `shaders/gemv.wgsl`).
pub const GEMV_WG_SIZE: u32 = 64;

/// The WGSL source of the portable variant of `kernel` for `format`.
pub fn compose(format: Format, kernel: KernelKind) -> String {
    compose_entry(format, kernel.entry())
}

/// The WGSL source of `entry` for `format` with f32 activations.
pub fn compose_entry(format: Format, entry: Entry) -> String {
    compose_variant(format, entry, ActType::F32)
}

/// The WGSL source of `entry` for `format` with `act` activations and outputs.
pub fn compose_variant(format: Format, entry: Entry, act: ActType) -> String {
    let mut s = String::with_capacity(8192);
    if act == ActType::F16 || entry.needs_cooperative_matrix() {
        // Enable directives must come before any declaration.
        s.push_str("enable f16;\n");
    }
    if entry.needs_cooperative_matrix() {
        s.push_str("enable wgpu_cooperative_matrix;\n");
    }
    s.push_str(COMMON);
    // Each further part under a comment line naming it.
    let mut part = |label: &str, src: &str| {
        s.push_str("\n// ---- ");
        s.push_str(label);
        s.push_str(" ----\n");
        s.push_str(src);
    };
    if entry.reads_textures() {
        part("operands: textures", IO_TEXTURE);
        let (x_name, x_source) = match entry {
            Entry::GemvLanesUniformX => ("uniform buffer", X_UNIFORM),
            Entry::GemvLanesStorageX => ("storage buffer", X_STORAGE),
            _ => ("texture", X_TEXTURE),
        };
        part(&format!("x: {x_name}"), x_source);
        part(&format!("y: {}", act.name()), act.texture_y_source());
    } else {
        part("weights: buffers", WEIGHTS_BUFFER);
        part(&format!("activations: {}", act.name()), act.source());
    }
    part(&format!("format: {format}"), format.codec().wgsl());
    for src in entry.sources() {
        part("kernel", src);
    }
    s
}

/// The pipeline override constants for `format`: layout constants every format sets, plus
/// the format's own.
pub fn constants(format: Format) -> Vec<(&'static str, f64)> {
    let c = format.codec();
    let mut v = vec![
        ("WORD_VALUES", c.word_values() as f64),
        ("BLOCK_VALUES", c.block_values() as f64),
        ("PARAM_HALVES", c.param_halves() as f64),
    ];
    v.extend(c.wgsl_constants());
    v
}

/// Chunks of a weight row whose params lie in one 16-byte texel of the params texture
/// (`PARAM_TEXEL_CHUNKS` in `shaders/io_texture.wgsl`), where no chunk's params straddle two
/// texels: the texture GEMV then fetches each row's params once per texel instead of once per
/// chunk (on lavapipe q4_0's per-chunk scale fetch was a third of its GEMV's time). 0 for the
/// formats whose chunks' params straddle texels (q5_0, the k-quants but Q4_K: their textures
/// hold a texel per chunk instead, [`Format::chunk_param_texels`]) or that have none (f32).
/// It assumes what every format's `chunk_params` does: a chunk reads the params of
/// its own block, or of the blocks it spans; `verify` and the kernel tests (every format
/// through the texture GEMV on lavapipe) catch a format that reads others.
pub fn param_texel_chunks(format: Format) -> u32 {
    const TEXEL_HALVES: usize = 8;
    let c = format.codec();
    let (halves, block, chunk) = (c.param_halves(), c.block_values(), 4 * c.word_values());
    // Halves a chunk's params span: its block's (a chunk within a block) or its blocks'.
    let span = if chunk <= block {
        halves
    } else {
        halves * chunk / block
    };
    if span == 0 || !TEXEL_HALVES.is_multiple_of(span) {
        return 0;
    }
    (TEXEL_HALVES * block / (halves * chunk)) as u32
}

/// [`constants`] plus the GEMV overrides: `cols` activation rows per dispatch (1..=8),
/// `rows` weight rows per lane group (1..=8), `split` lanes per chunk ([`gemv_split`](crate::gpu::plan::gemv_split)) and
/// the chunks each lane loads ahead ([`gemv_unroll`](crate::gpu::plan::gemv_unroll)), and for the texture GEMV
/// ([`Entry::reads_textures`]) the chunks per params texel ([`param_texel_chunks`]) and
/// whether the params texture holds a texel per chunk (`CHUNK_PARAM_TEXELS`,
/// [`Format::chunk_param_texels`]).
pub fn gemv_constants(
    entry: Entry,
    format: Format,
    cols: u32,
    rows: u32,
    split: u32,
    unroll: u32,
) -> Vec<(&'static str, f64)> {
    assert!((1..=GEMV_MAX_COLS).contains(&cols));
    assert!((1..=gemv_rows_limit(entry, format)).contains(&rows));
    assert!(split.is_power_of_two() && split <= format.codec().word_values() as u32);
    // The texture GEMV loads one chunk per row at a time (UNROLL = 1, gemv_unroll).
    let loads = if entry.reads_textures() { 1 } else { rows };
    assert!((1..=GEMV_MAX_UNROLL).contains(&unroll) && loads * unroll <= GEMV_MAX_LOADS);
    let mut v = constants(format);
    v.push(("N_COLS", cols as f64));
    v.push(("ROWS", rows as f64));
    v.push(("SPLIT", split as f64));
    v.push(("UNROLL", unroll as f64));
    if entry.reads_textures() {
        v.push(("PARAM_TEXEL_CHUNKS", param_texel_chunks(format) as f64));
        let chunk_texels = format.codec().chunk_param_texel().is_some();
        v.push(("CHUNK_PARAM_TEXELS", f64::from(u8::from(chunk_texels))));
    }
    v
}

/// Most chunks per row a GEMV lane loads ahead ([`KernelConfig::gemv_unroll`](crate::gpu::plan::KernelConfig::gemv_unroll)).
pub const GEMV_MAX_UNROLL: u32 = 4;
/// Most chunk loads a GEMV lane issues before computing, rows x chunks per row (`MAX_LOADS`
/// in `shaders/gemv.wgsl`).
pub const GEMV_MAX_LOADS: u32 = 8;

/// The int8-activation kernels (`shaders/act_quant.wgsl`, `shaders/gemv_i8.wgsl`): modules of
/// `common.wgsl` plus the kernel, without the format's WGSL (they read integer codes directly).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Int8Entry {
    /// Activations to int8 codes and per-group scales (dynamic or static).
    ActQuant,
    /// Int8 x int8 GEMV with i32 accumulation per group of 32.
    GemvI8,
}

impl Int8Entry {
    pub const ALL: [Int8Entry; 2] = [Int8Entry::ActQuant, Int8Entry::GemvI8];

    pub fn entry_point(self) -> &'static str {
        match self {
            Int8Entry::ActQuant => "act_quant",
            Int8Entry::GemvI8 => "gemv_i8",
        }
    }

    /// Workgroup memory the entry declares, in bytes (kept in step with its WGSL).
    pub fn workgroup_memory_bytes(self) -> u32 {
        match self {
            Int8Entry::ActQuant => 64 * 4,
            Int8Entry::GemvI8 => GEMV_WG_SIZE * WORKGROUP_SUM_VALUES * 4,
        }
    }

    /// Invocations per workgroup.
    pub fn invocations(self) -> u32 {
        64
    }

    /// The module's WGSL source.
    pub fn compose(self) -> String {
        let (src, sums) = match self {
            Int8Entry::ActQuant => (include_str!("../../shaders/act_quant.wgsl"), ""),
            Int8Entry::GemvI8 => (include_str!("../../shaders/gemv_i8.wgsl"), WORKGROUP_SUM),
        };
        format!(
            "{COMMON}\n// ---- weights: buffers ----\n{WEIGHTS_BUFFER}\n// ---- activations: f32 ----\n{ACT_F32}\n// ---- kernel ----\n{src}\n{sums}"
        )
    }
}

/// Weight rows per workgroup of the int8-activation GEMV (`ROWS_I8`).
pub const GEMV_I8_ROWS: u32 = 4;

/// Override constants of the int8-activation GEMV for `format` (Q8_0 or symmetric int8 /
/// int4), `cols` activation rows per dispatch, and whether it writes its accumulators.
pub fn gemv_i8_constants(format: Format, cols: u32, debug_acc: bool) -> Vec<(&'static str, f64)> {
    assert!((1..=GEMV_MAX_COLS).contains(&cols));
    let c = format.codec();
    let w_kind = match format {
        Format::Q8_0 => 0,
        Format::Int(f) if f.bits == 8 && !f.asym => 1,
        Format::Int(f) if f.bits == 4 && !f.asym => 2,
        _ => panic!("{format} has no int8-activation kernel"),
    };
    vec![
        ("WORD_VALUES", c.word_values() as f64),
        ("BLOCK_VALUES", c.block_values() as f64),
        ("PARAM_HALVES", c.param_halves() as f64),
        ("W_KIND", w_kind as f64),
        ("N_COLS", cols as f64),
        ("DEBUG_ACC", debug_acc as u32 as f64),
    ]
}

/// Override constants of the activation quantizer.
pub fn act_quant_constants(static_scales: bool) -> Vec<(&'static str, f64)> {
    vec![("STATIC_SCALES", static_scales as u32 as f64)]
}

/// Validate `src` with naga and translate `entry_point` to SPIR-V with `consts` applied (tests).
#[cfg(test)]
pub(crate) fn validate_src(src: &str, entry_point: &str, consts: &[(&'static str, f64)]) {
    let what = format!("{entry_point} {consts:?}");
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(src)));
    let caps = naga::valid::Capabilities::all()
        - naga::valid::Capabilities::SUBGROUP
        - naga::valid::Capabilities::SUBGROUP_BARRIER
        - naga::valid::Capabilities::SUBGROUP_VERTEX_STAGE;
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
        .validate(&module)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(src)));
    let consts: naga::back::PipelineConstants =
        consts.iter().map(|&(k, v)| (k.to_string(), v)).collect();
    let (module, info) =
        naga::back::pipeline_constants::process_overrides(&module, &info, None, &consts)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    let pipeline = naga::back::spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: entry_point.to_string(),
    };
    naga::back::spv::write_vec(&module, &info, &Default::default(), Some(&pipeline))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::plan::{gemv_split, gemv_unroll};

    /// The naga capabilities a device offering exactly what `entry` with `act` activations
    /// needs would have: subgroups only for subgroup entries, f16 only for f16 activations
    /// and the tensor-core GEMM, cooperative matrices only for the latter.
    fn capabilities(entry: Entry, act: ActType) -> naga::valid::Capabilities {
        use naga::valid::Capabilities as C;
        let mut caps = C::all() - C::COOPERATIVE_MATRIX - C::SHADER_FLOAT16;
        if !entry.needs_subgroups() {
            caps -= C::SUBGROUP | C::SUBGROUP_BARRIER | C::SUBGROUP_VERTEX_STAGE;
        }
        if act == ActType::F16 {
            caps |= C::SHADER_FLOAT16;
        }
        if entry.needs_cooperative_matrix() {
            caps |= C::COOPERATIVE_MATRIX | C::SHADER_FLOAT16;
        }
        caps
    }

    /// Parse, validate (with `caps`), specialise and write SPIR-V: with naga's default
    /// options and with the bounds-check policies wgpu's Vulkan backend uses.
    fn validate_with(
        src: &str,
        entry_point: &str,
        caps: naga::valid::Capabilities,
        consts: &[(&'static str, f64)],
    ) -> Result<(), String> {
        let module = naga::front::wgsl::parse_str(src).map_err(|e| e.emit_to_string(src))?;
        let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
        if caps.contains(naga::valid::Capabilities::SUBGROUP) {
            validator.subgroup_stages(naga::valid::ShaderStages::COMPUTE);
            validator.subgroup_operations(naga::valid::SubgroupOperationSet::all());
        }
        let info = validator
            .validate(&module)
            .map_err(|e| e.emit_to_string(src))?;
        let consts: naga::back::PipelineConstants =
            consts.iter().map(|&(k, v)| (k.to_string(), v)).collect();
        let (module, info) =
            naga::back::pipeline_constants::process_overrides(&module, &info, None, &consts)
                .map_err(|e| e.to_string())?;
        let pipeline = naga::back::spv::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: entry_point.to_string(),
        };
        let restrict = naga::back::spv::Options {
            bounds_check_policies: naga::proc::BoundsCheckPolicies {
                index: naga::proc::BoundsCheckPolicy::Restrict,
                buffer: naga::proc::BoundsCheckPolicy::Restrict,
                image_load: naga::proc::BoundsCheckPolicy::Restrict,
                binding_array: naga::proc::BoundsCheckPolicy::Unchecked,
            },
            ..Default::default()
        };
        for opts in [naga::back::spv::Options::default(), restrict] {
            naga::back::spv::write_vec(&module, &info, &opts, Some(&pipeline))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn validate(format: Format, entry: Entry, act: ActType, consts: &[(&'static str, f64)]) {
        let src = compose_variant(format, entry, act);
        validate_with(&src, entry.entry_point(), capabilities(entry, act), consts)
            .unwrap_or_else(|e| panic!("{format} {entry:?} {act} {consts:?}: {e}"));
    }

    /// Every variant parses, validates, specialises and compiles to SPIR-V with naga: every
    /// format, entry point and activation type, and the GEMV column / row counts and lanes
    /// per chunk at their ends and between.
    #[test]
    fn every_variant_validates_with_naga() {
        for format in Format::all() {
            for entry in Entry::ALL {
                for act in ActType::ALL {
                    if entry.is_gemv() {
                        let settings = [(1, 1, 1), (3, 2, 2), (8, 4, 4), (1, 8, 8), (8, 8, 1)];
                        // The texture GEMV's most rows, where the format allows them.
                        let most = (1, gemv_rows_limit(entry, format), 1);
                        for (cols, rows, steps) in settings.into_iter().chain([(5, 3, 4), most]) {
                            if entry == Entry::Gemv && rows > GEMV_SHARED_MAX_ROWS {
                                continue;
                            }
                            let split = gemv_split(entry, format, Some(steps), GEMV_WG_SIZE);
                            let unroll = gemv_unroll(entry, rows, None, true);
                            let consts = gemv_constants(entry, format, cols, rows, split, unroll);
                            validate(format, entry, act, &consts);
                        }
                    } else {
                        validate(format, entry, act, &constants(format));
                    }
                }
            }
        }
    }

    /// The copies of x to the texture GEMV, for each activation type.
    #[test]
    fn x_copies_validate_with_naga() {
        for act in ActType::ALL {
            let src = act.x_copy_wgsl();
            let enables = src.lines().any(|l| l.starts_with("enable"));
            assert!(!enables, "f16 x is unpacked, not an f16 type");
            for entry_point in ["x_to_texture", "x_to_buffer"] {
                validate_src(&src, entry_point, &[]);
            }
        }
    }

    /// The f16 module starts with its directive and needs the f16 capability.
    #[test]
    fn f16_modules_enable_f16() {
        let src = compose_variant(Format::Q4_0, Entry::Gemv, ActType::F16);
        assert!(src.starts_with("enable f16;"));
        assert!(!compose_entry(Format::Q4_0, Entry::Gemv)
            .lines()
            .any(|l| l.starts_with("enable")));
        let module = naga::front::wgsl::parse_str(&src).unwrap();
        let caps = naga::valid::Capabilities::all() - naga::valid::Capabilities::SHADER_FLOAT16;
        assert!(
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
                .validate(&module)
                .is_err()
        );
    }

    #[test]
    fn int8_activation_kernels_validate_with_naga() {
        use crate::format::IntFormat;
        for st in [false, true] {
            let src = Int8Entry::ActQuant.compose();
            validate_src(&src, "act_quant", &act_quant_constants(st));
        }
        let src = Int8Entry::GemvI8.compose();
        for format in [
            Format::Q8_0,
            Format::Int(IntFormat::new(8, 32, false)),
            Format::Int(IntFormat::new(4, 128, false)),
        ] {
            for (cols, debug) in [(1, false), (3, true), (8, false), (8, true)] {
                validate_src(&src, "gemv_i8", &gemv_i8_constants(format, cols, debug));
            }
        }
        for e in Int8Entry::ALL {
            let module = naga::front::wgsl::parse_str(&e.compose()).unwrap();
            let bytes: u32 = module
                .global_variables
                .iter()
                .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
                .map(|(_, g)| module.types[g.ty].inner.size(module.to_ctx()))
                .sum();
            assert_eq!(bytes, e.workgroup_memory_bytes(), "{e:?}");
        }
        assert!(src.contains(&format!("const ROWS_I8: u32 = {GEMV_I8_ROWS}u;")));
    }

    /// The fake-quantization shader (QAT) parses, validates and compiles to SPIR-V for both
    /// entry points, without subgroups or workgroup memory.
    #[test]
    fn fake_quant_validates_with_naga() {
        use crate::gpu::{FAKE_QUANT_ENTRIES, FAKE_QUANT_WGSL};
        let module = naga::front::wgsl::parse_str(FAKE_QUANT_WGSL).unwrap();
        assert!(!module
            .global_variables
            .iter()
            .any(|(_, g)| g.space == naga::AddressSpace::WorkGroup));
        for name in FAKE_QUANT_ENTRIES {
            assert!(module.entry_points.iter().any(|e| e.name == name), "{name}");
            validate_src(FAKE_QUANT_WGSL, name, &[]);
        }
    }

    #[test]
    fn workgroup_memory_matches_the_wgsl() {
        for entry in Entry::ALL {
            let src = compose_entry(Format::Q4_0, entry);
            let module = naga::front::wgsl::parse_str(&src).unwrap();
            let bytes: u32 = module
                .global_variables
                .iter()
                .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
                .map(|(_, g)| module.types[g.ty].inner.size(module.to_ctx()))
                .sum();
            assert_eq!(bytes, entry.workgroup_memory_bytes(), "{entry:?}");
        }
        for kind in KernelKind::ALL {
            assert!(kind.workgroup_memory_bytes() <= 16 * 1024, "{kind:?}");
        }
    }

    /// The tensor-core GEMM, with either fragment shape, for every format parses, validates
    /// with the cooperative-matrix and f16 capabilities (and not without them), specialises
    /// for subgroups of 8 and 32 and both batch tiles, and compiles to SPIR-V. It declares no
    /// override beyond the format's (the same set as the FMA GEMM), the subgroup size and the
    /// batch tile: every coopLoad /
    /// coopStore stride is a module constant, so one pipeline per format serves every shape
    /// (m, n, k, rows not multiples of the tile included).
    #[test]
    fn gemm_coop_validates_with_naga() {
        let override_names = |src: &str| -> Vec<String> {
            let module = naga::front::wgsl::parse_str(src).unwrap();
            let mut v: Vec<String> = module
                .overrides
                .iter()
                .filter_map(|(_, o)| o.name.clone())
                .collect();
            v.sort();
            v
        };
        for entry in [Entry::GemmCoop16, Entry::GemmCoop8] {
            for format in Format::all() {
                for act in ActType::ALL {
                    for (subgroup, frags) in [(8.0, 2.0), (32.0, 2.0), (8.0, 4.0), (32.0, 4.0)] {
                        let mut consts = constants(format);
                        consts.push(("SUBGROUP", subgroup));
                        consts.push(("WARP_N_FRAGS", frags));
                        validate(format, entry, act, &consts);
                    }
                }
                let mut expected = override_names(&compose_entry(format, Entry::Gemm));
                // The subgroup size, the batch tile's fragments, and what follows from them.
                let coop = ["SUBGROUP", "THREADS", "WARP_N_FRAGS", "WARP_N", "TILE_N"];
                expected.extend(coop.map(String::from));
                expected.sort();
                assert_eq!(
                    override_names(&compose_entry(format, entry)),
                    expected,
                    "{format}"
                );
            }
            let src = compose_entry(Format::Q4_0, entry);
            assert!(src.starts_with("enable f16;\nenable wgpu_cooperative_matrix;\n"));
            let consts = constants(Format::Q4_0);
            assert!(validate_with(
                &src,
                "gemm_coop",
                capabilities(Entry::Gemm, ActType::F32),
                &consts
            )
            .is_err());
            assert!(entry.workgroup_memory_bytes() <= 32 * 1024);
        }
    }

    /// Why the strides are constants: naga 30's SPIR-V writer fails (panics with "Expression
    /// [N] is not cached") on a runtime coopStore stride, here the y row stride.
    #[test]
    fn gemm_coop_runtime_stride_does_not_compile() {
        let constant = "coopStore(c, &c_scratch[scratch], FRAG);";
        let src = compose_entry(Format::Q4_0, Entry::GemmCoop16);
        assert!(src.contains(constant));
        let runtime = src.replace(
            constant,
            "coopStore(c, &c_scratch[scratch], dims.y_stride);",
        );
        let consts = constants(Format::Q4_0);
        let caps = capabilities(Entry::GemmCoop16, ActType::F32);
        let outcome =
            std::panic::catch_unwind(|| validate_with(&runtime, "gemm_coop", caps, &consts));
        assert!(!matches!(outcome, Ok(Ok(()))), "a runtime stride compiled");
    }

    #[test]
    fn gemv_constants_match_the_wgsl() {
        let src = compose_entry(Format::Q4_0, Entry::Gemv);
        for (name, value) in [
            ("MAX_N", GEMV_MAX_COLS),
            ("MAX_ROWS", GEMV_MAX_ROWS),
            ("MAX_LOADS", GEMV_MAX_LOADS),
            ("MAX_UNROLL", GEMV_MAX_UNROLL),
            ("SHARED_MAX_ROWS", GEMV_SHARED_MAX_ROWS),
            ("WG_SIZE", GEMV_WG_SIZE),
            ("SUM_VALUES", WORKGROUP_SUM_VALUES),
        ] {
            let line = format!("const {name}: u32 = {value}u;");
            assert!(src.contains(&line), "expected `{line}` in the GEMV WGSL");
        }
        // The texture GEMV and the copy of x into its texture fold planes at the same width.
        let lanes = compose_entry(Format::Q4_0, Entry::GemvLanes);
        let width = format!("const TEXTURE_WIDTH: u32 = {TEXTURE_WIDTH}u;");
        for (what, src) in [("gemv_lanes", &lanes[..]), ("x_copy", X_COPY)] {
            assert!(src.contains(&width), "expected `{width}` in {what}");
        }
        for line in [
            format!("const LANES_WG: u32 = {GEMV_LANES_WG}u;"),
            format!("const LANES_MAX_ROWS: u32 = {GEMV_LANES_MAX_ROWS}u;"),
        ] {
            assert!(
                lanes.contains(&line),
                "expected `{line}` in the texture GEMV"
            );
        }
        // The uniform x binding holds X_UNIFORM_BYTES; the texture variant has no uniform x.
        let uniform_x = compose_entry(Format::Q4_0, Entry::GemvLanesUniformX);
        let line = format!("const X_UNIFORM_VEC4S: u32 = {}u;", X_UNIFORM_BYTES / 16);
        assert!(uniform_x.contains(&line), "expected `{line}`");
        assert!(uniform_x.contains("var<uniform> x_uniform") && !uniform_x.contains("var x_tex"));
        assert!(lanes.contains("var x_tex") && !lanes.contains("var<uniform> x_uniform"));
    }

    #[test]
    fn param_texel_chunks_only_where_no_chunk_straddles_a_texel() {
        use crate::format::IntFormat;
        let int = |bits, group, asym| Format::Int(IntFormat::new(bits, group, asym));
        for (format, chunks) in [
            (Format::Q4_0, 8),  // a 16-bit scale per 32-weight chunk: 8 per texel
            (Format::Q8_0, 16), // a scale per 2 chunks of 16 weights
            (Format::Q4_1, 4),  // scale and min: one word per chunk
            (Format::Q5_1, 2),  // scale, min and 32 high bits: two words
            (Format::Q4_K, 8),  // a super-block's 4 words serve its 8 chunks
            (int(4, 128, true), 16),
            (int(8, 128, false), 32),
            (Format::Q5_0, 0), // 3 halves per chunk straddle texels
            (Format::Q5_K, 0),
            (Format::Q6_K, 0),
            (Format::Q2_K, 0),
            (Format::F32, 0), // no params
        ] {
            assert_eq!(param_texel_chunks(format), chunks, "{format}");
        }
    }
}
