//! Kernels for one format: a [`MatmulPlan`] (from [`plan::plan_matmul`], which decides
//! which kernel runs) turned into pipelines built once and dispatches prepared (bind groups
//! and uniforms made) once per set of buffers, encoded into the caller's encoder or pass as
//! often as wanted. Nothing here chooses a variant, and nothing submits, except the one-line
//! `run_*` helpers.

use super::device::GpuContext;
use super::plan::{
    self, check_fits, coop_gemm, AdapterProfile, GemvDispatch, KernelConfig, MatmulPlan,
    PlannedKernel, TiledDispatch, XSource,
};
use super::shaders::{self, ActType, Entry, KernelKind};
use super::tensor::{GpuWeight, WeightChunk};
use crate::error::{Error, Result};
use crate::format::Format;
use std::collections::HashMap;
use std::sync::Mutex;
use wgpu::util::DeviceExt;

const DEQUANT_WG: usize = 64;
/// Mirrors `struct Dims` in `shaders/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct Dims {
    pub(super) k: u32,
    pub(super) rows: u32,
    pub(super) n: u32,
    pub(super) row_offset: u32,
    pub(super) y_stride: u32,
    pub(super) blocks_per_row: u32,
    pub(super) _pad: [u32; 2],
}

impl Dims {
    /// The dims of a kernel over one weight binding chunk: `n` activation rows, output rows
    /// `y_stride` apart, the chunk's rows counted from its first row among all rows.
    pub(super) fn for_chunk(
        format: Format,
        k: usize,
        chunk: &WeightChunk,
        n: usize,
        y_stride: usize,
    ) -> Dims {
        Dims {
            k: k as u32,
            rows: chunk.rows as u32,
            n: n as u32,
            row_offset: chunk.row_start as u32,
            y_stride: y_stride as u32,
            blocks_per_row: (k / format.codec().block_values()) as u32,
            _pad: [0; 2],
        }
    }
}

/// The compiled kernels of one format.
#[derive(Debug)]
pub struct Kernels {
    format: Format,
    device: wgpu::Device,
    config: KernelConfig,
    matmul_layout: wgpu::BindGroupLayout,
    dequant_layout: wgpu::BindGroupLayout,
    /// What the plan reads of the device.
    adapter: AdapterProfile,
    /// Matmul pipelines by entry, activation type and override settings, built on first
    /// use. One tensor-core pipeline serves every shape: its cooperative loads and stores
    /// touch only workgroup memory, with constant strides.
    matmul: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    /// The texture GEMV's layouts and the copies of x to where it reads it (CPU adapters).
    texture: Option<TexturePipelines>,
    dequantize: wgpu::ComputePipeline,
    gather_layout: wgpu::BindGroupLayout,
    gather: wgpu::ComputePipeline,
}

/// A matmul pipeline's identity: entry, activation type, and its settings (GEMV: columns,
/// rows, split, unroll; tensor-core GEMM: subgroup size and fragments along the batch).
type PipelineKey = (Entry, ActType, [u32; 4]);

#[derive(Debug)]
struct TexturePipelines {
    /// The texture GEMV's, x in a texture ([`Entry::GemvLanes`]).
    matmul_layout: wgpu::BindGroupLayout,
    /// The texture GEMV's, x in a uniform buffer ([`Entry::GemvLanesUniformX`]).
    matmul_uniform_x_layout: wgpu::BindGroupLayout,
    /// The texture GEMV's, x in a storage buffer ([`Entry::GemvLanesStorageX`]).
    matmul_storage_x_layout: wgpu::BindGroupLayout,
    x_layout: wgpu::BindGroupLayout,
    /// The copy's into a buffer (for a uniform or a storage binding).
    x_buffer_layout: wgpu::BindGroupLayout,
    /// The copies of f32 x, and of f16 x (built on first use).
    x_copy_f32: XCopyPipelines,
    x_copy_f16: std::sync::OnceLock<XCopyPipelines>,
}

/// The copies of x of one activation type to a texture and to a buffer
/// ([`ActType::x_copy_wgsl`]).
#[derive(Debug)]
struct XCopyPipelines {
    to_texture: wgpu::ComputePipeline,
    to_buffer: wgpu::ComputePipeline,
}

impl TexturePipelines {
    /// The bind group layout of texture GEMV `entry` (x in a texture, a uniform buffer or a
    /// storage buffer), `None` for other entries.
    fn gemv_layout(&self, entry: Entry) -> Option<&wgpu::BindGroupLayout> {
        match entry {
            Entry::GemvLanes => Some(&self.matmul_layout),
            Entry::GemvLanesUniformX => Some(&self.matmul_uniform_x_layout),
            Entry::GemvLanesStorageX => Some(&self.matmul_storage_x_layout),
            _ => None,
        }
    }

    fn new(device: &wgpu::Device) -> Self {
        let texture = |binding, sample_type| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Texture {
                sample_type,
                view_dimension: wgpu::TextureViewDimension::D2,
                multisampled: false,
            },
            count: None,
        };
        let matmul_layout = |label, x| {
            device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(label),
                entries: &[
                    texture(0, wgpu::TextureSampleType::Uint),
                    texture(1, wgpu::TextureSampleType::Uint),
                    x,
                    storage_entry(3, false),
                    uniform_entry(4),
                ],
            })
        };
        let x_texture = texture(2, wgpu::TextureSampleType::Float { filterable: false });
        let uniform_x_layout = matmul_layout("wgquant texture matmul, uniform x", uniform_entry(2));
        let storage_x_layout =
            matmul_layout("wgquant texture matmul, storage x", storage_entry(2, true));
        let matmul_layout = matmul_layout("wgquant texture matmul", x_texture);
        let x_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("wgquant x to texture"),
            entries: &[
                storage_entry(0, true),
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::StorageTexture {
                        access: wgpu::StorageTextureAccess::WriteOnly,
                        format: wgpu::TextureFormat::Rgba32Float,
                        view_dimension: wgpu::TextureViewDimension::D2,
                    },
                    count: None,
                },
                uniform_entry(2),
            ],
        });
        let x_buffer_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("wgquant x to buffer"),
            entries: &[
                storage_entry(0, true),
                uniform_entry(2),
                storage_entry(3, false),
            ],
        });
        let x_copy_f32 = XCopyPipelines::new(device, ActType::F32, &x_layout, &x_buffer_layout);
        TexturePipelines {
            matmul_layout,
            matmul_uniform_x_layout: uniform_x_layout,
            matmul_storage_x_layout: storage_x_layout,
            x_layout,
            x_buffer_layout,
            x_copy_f32,
            x_copy_f16: Default::default(),
        }
    }

    /// The copies of x with `act` activations.
    fn x_copy(&self, device: &wgpu::Device, act: ActType) -> &XCopyPipelines {
        match act {
            ActType::F32 => &self.x_copy_f32,
            ActType::F16 => self.x_copy_f16.get_or_init(|| {
                XCopyPipelines::new(device, act, &self.x_layout, &self.x_buffer_layout)
            }),
        }
    }
}

impl XCopyPipelines {
    fn new(
        device: &wgpu::Device,
        act: ActType,
        texture_layout: &wgpu::BindGroupLayout,
        buffer_layout: &wgpu::BindGroupLayout,
    ) -> Self {
        let module = shader_module(device, "x_copy", act.x_copy_wgsl(), false);
        XCopyPipelines {
            to_texture: compute_pipeline(device, &module, "x_to_texture", texture_layout, &[]),
            to_buffer: compute_pipeline(device, &module, "x_to_buffer", buffer_layout, &[]),
        }
    }
}

/// x copied for the texture GEMV, to bind as its binding 2.
enum XCopied {
    Texture(wgpu::TextureView),
    /// A uniform or storage buffer.
    Buffer(wgpu::Buffer),
}

impl XCopied {
    fn resource(&self) -> wgpu::BindingResource<'_> {
        match self {
            XCopied::Texture(view) => wgpu::BindingResource::TextureView(view),
            XCopied::Buffer(buffer) => buffer.as_entire_binding(),
        }
    }
}

/// How a dispatch's grid follows a weight chunk's rows.
#[derive(Clone, Copy)]
enum Grid {
    /// GEMV: `rows` weight rows per lane group, `per_wg` lane groups per workgroup,
    /// `group` columns per invocation.
    Gemv {
        rows: u32,
        per_wg: usize,
        group: usize,
    },
    /// Tiled GEMM: (weight rows, activation rows) per workgroup.
    Tiles((usize, usize)),
}

pub(crate) fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

pub(crate) fn uniform_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// Check a kernel's workgroup memory and size against the device (wgpu does not).
pub fn check_kernel_fits(limits: &wgpu::Limits, kernel: KernelKind) -> Result<()> {
    check_fits(
        limits,
        kernel.entry_point(),
        kernel.workgroup_memory_bytes(),
        kernel.invocations(),
    )
}

impl Kernels {
    /// Build the GEMV, GEMM and dequantize pipelines for `format` on `device`, choosing
    /// the variants that suit the device (see [`KernelConfig::for_device`]).
    pub fn new(device: &wgpu::Device, format: Format) -> Result<Self> {
        Self::with_config(device, format, KernelConfig::for_device(device))
    }

    /// Build the kernels for `format` with the variants `config` names.
    pub fn with_config(
        device: &wgpu::Device,
        format: Format,
        config: KernelConfig,
    ) -> Result<Self> {
        if config.subgroups && !device.features().contains(wgpu::Features::SUBGROUP) {
            return Err(Error::DeviceLimit(
                "subgroup kernels need a device with Features::SUBGROUP".into(),
            ));
        }
        let adapter = AdapterProfile::of(device);
        if config.coop_matrix {
            coop_gemm(&adapter)?;
        }
        config.gemv_rows.validate()?;
        config.gemv_steps.validate()?;
        plan::validate_gemv_unroll(config.gemv_unroll)?;
        if !config.act.supported_by(device) {
            return Err(missing_f16());
        }
        let limits = device.limits();
        for kind in KernelKind::ALL {
            check_kernel_fits(&limits, kind)?;
        }
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let matmul_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("wgquant matmul"),
            entries: &[
                storage_entry(0, true),
                storage_entry(1, true),
                storage_entry(2, true),
                storage_entry(3, false),
                uniform_entry(4),
            ],
        });
        let dequant_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("wgquant dequantize"),
            entries: &[
                storage_entry(0, true),
                storage_entry(1, true),
                storage_entry(3, false),
                uniform_entry(4),
            ],
        });
        let gather_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("wgquant gather rows"),
            entries: &[
                storage_entry(0, true),
                storage_entry(1, true),
                storage_entry(3, false),
                uniform_entry(4),
                storage_entry(5, true),
            ],
        });
        let texture = config.texture_gemv.then(|| TexturePipelines::new(device));
        let constants = shaders::constants(format);
        let f32_pipeline =
            |entry, layout| build_pipeline(device, format, entry, ActType::F32, layout, &constants);
        let dequantize = f32_pipeline(Entry::Dequantize, &dequant_layout);
        let gather = f32_pipeline(Entry::GatherRows, &gather_layout);
        if let Some(e) = crate::gpu::pop_scope(scope) {
            return Err(Error::Gpu(format!(
                "building the {format} kernels failed: {e}"
            )));
        }
        Ok(Kernels {
            format,
            device: device.clone(),
            adapter,
            config,
            matmul_layout,
            dequant_layout,
            matmul: Mutex::new(HashMap::new()),
            texture,
            dequantize,
            gather_layout,
            gather,
        })
    }

    /// The variants these kernels were built with.
    pub fn config(&self) -> KernelConfig {
        self.config
    }

    /// The activation type callers should prefer on this device (see [`ActType::preferred_for`]).
    pub fn preferred_act(&self) -> ActType {
        self.config.act
    }

    /// The pipeline of a planned GEMV dispatch with `act` activations, built on first use.
    fn gemv_pipeline(&self, d: &GemvDispatch, act: ActType) -> Result<wgpu::ComputePipeline> {
        let key = (d.entry, act, [d.group as u32, d.rows, d.split, d.unroll]);
        let what = format!("GEMV kernel for {} columns", d.group);
        self.pipeline(key, &d.constants(self.format), &what)
    }

    /// The pipeline of a planned tiled GEMM with `act` activations, built on first use.
    fn tiled_pipeline(&self, t: &TiledDispatch, act: ActType) -> Result<wgpu::ComputePipeline> {
        let coop = t.coop.map_or([0; 2], |c| [c.subgroup_size, c.warp_n_frags]);
        let key = (t.entry, act, [0, coop[0], coop[1], 0]);
        self.pipeline(key, &t.constants(self.format), t.entry.entry_point())
    }

    fn pipeline(
        &self,
        key: PipelineKey,
        constants: &[(&'static str, f64)],
        what: &str,
    ) -> Result<wgpu::ComputePipeline> {
        let mut cache = self.matmul.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.get(&key) {
            return Ok(p.clone());
        }
        let (entry, act, _) = key;
        let layout = (self.texture.as_ref())
            .and_then(|t| t.gemv_layout(entry))
            .unwrap_or(&self.matmul_layout);
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = build_pipeline(&self.device, self.format, entry, act, layout, constants);
        if let Some(e) = crate::gpu::pop_scope(scope) {
            return Err(Error::Gpu(format!(
                "building the {} {what} with {act} activations failed: {e}",
                self.format
            )));
        }
        cache.insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// What a matmul of `n` activation rows on `w` runs here ([`plan::plan_matmul`]), with
    /// the reasons; [`Self::matmul`] prepares exactly this.
    pub fn plan(&self, w: &GpuWeight, n: usize) -> Result<MatmulPlan> {
        let textures = self.texture.is_some() && w.chunks().iter().all(|c| c.textures.is_some());
        let mut plan = plan::plan_matmul(
            &self.adapter,
            &self.config,
            self.format,
            (w.rows(), w.k()),
            n,
            textures,
        )?;
        // The weight's own chunks (an upload may split it finer than the device needs).
        plan.chunks = w.chunks().len();
        plan.chunk_rows = w.chunks().first().map_or(plan.chunk_rows, |c| c.rows);
        Ok(plan)
    }

    pub fn format(&self) -> Format {
        self.format
    }

    fn uniform(&self, dims: Dims) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgquant dims"),
                contents: bytemuck::bytes_of(&dims),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    fn check_weight(&self, w: &GpuWeight) -> Result<()> {
        if w.format() != self.format {
            return Err(Error::InvalidArgument(format!(
                "kernels for {} given a {} weight",
                self.format,
                w.format()
            )));
        }
        Ok(())
    }

    /// Prepare `y = x w^T`: `x` holds `n` rows of `k` f32, `y` receives `n` rows of
    /// `w.rows()` f32. GEMV for `n <= 8`, GEMM above: the tensor-core GEMM for
    /// `n >= COOP_MIN_N` where the config enables it.
    pub fn matmul<'a>(
        &self,
        w: &GpuWeight,
        x: impl Into<Operand<'a>>,
        y: impl Into<Operand<'a>>,
        n: usize,
    ) -> Result<Dispatch> {
        self.matmul_as(w, x.into(), y.into(), n, ActType::F32)
    }

    /// [`matmul`](Self::matmul) with f16 activations and outputs (IEEE binary16,
    /// little-endian): `x` holds `n` rows of `k` f16 (`2 n k` bytes), `y` receives `n` rows
    /// of `w.rows()` f16 and must hold `2 n rows` bytes rounded up to a multiple of 4 (storage
    /// bindings are whole words; the padding is never written). Accumulation stays f32; each
    /// output is rounded to f16 once. Needs `Features::SHADER_F16` (else
    /// [`Error::DeviceLimit`]). Runs the same kernels as [`matmul`](Self::matmul); the
    /// texture GEMV of CPU adapters widens x to f32 as it copies it.
    pub fn matmul_f16<'a>(
        &self,
        w: &GpuWeight,
        x: impl Into<Operand<'a>>,
        y: impl Into<Operand<'a>>,
        n: usize,
    ) -> Result<Dispatch> {
        self.matmul_as(w, x.into(), y.into(), n, ActType::F16)
    }

    fn matmul_as(
        &self,
        w: &GpuWeight,
        x: Operand<'_>,
        y: Operand<'_>,
        n: usize,
        act: ActType,
    ) -> Result<Dispatch> {
        self.check_weight(w)?;
        if !act.supported_by(&self.device) {
            return Err(missing_f16());
        }
        if n == 0 {
            return Err(Error::Shape(
                "a matmul needs at least one activation row".into(),
            ));
        }
        let (k, m) = (w.k(), w.rows());
        let limits = self.device.limits();
        let max_binding = limits.max_storage_buffer_binding_size;
        let x_bytes = checked_bytes(n, k, act.bytes())?;
        // Storage bindings are whole 4-byte words (an odd count of f16 outputs is padded).
        let y_bytes = checked_bytes(n, m, act.bytes())?.next_multiple_of(4);
        for (what, op, need) in [("x", &x, x_bytes), ("y", &y, y_bytes)] {
            op.check(what, need, &limits)?;
            if need > max_binding {
                return Err(Error::DeviceLimit(format!(
                    "{what} ({need} bytes) exceeds the {max_binding}-byte storage binding limit; \
                     split the batch"
                )));
            }
        }
        if m > u32::MAX as usize || k > u32::MAX as usize || n > u32::MAX as usize {
            return Err(Error::Shape("dimensions must fit in 32 bits".into()));
        }
        let kind = plan::kernel_for_batch(n);
        let mut steps = Vec::new();
        match self.plan(w, n)?.kernel {
            PlannedKernel::Gemv(blocks) => {
                for d in &blocks {
                    let x_copied = match (&self.texture, d.x) {
                        (Some(t), to) if to != XSource::Caller => {
                            let texels = d.cols.start * k / 4..d.cols.end * k / 4;
                            let x = (&x, x_bytes, act);
                            Some(self.copy_x(t, x, texels, to, &mut steps)?)
                        }
                        _ => None,
                    };
                    let grid = Grid::Gemv {
                        rows: d.rows,
                        per_wg: d.lane_groups_per_workgroup,
                        group: d.group,
                    };
                    let pipeline = self.gemv_pipeline(d, act)?;
                    self.add_matmul_steps(
                        w,
                        (d.entry, &pipeline, grid),
                        (&x, x_bytes, x_copied.as_ref()),
                        (&y, y_bytes),
                        d.cols.clone(),
                        &mut steps,
                    )?;
                }
            }
            PlannedKernel::Tiled(t) => {
                let pipeline = self.tiled_pipeline(&t, act)?;
                self.add_matmul_steps(
                    w,
                    (t.entry, &pipeline, Grid::Tiles(t.tile)),
                    (&x, x_bytes, None),
                    (&y, y_bytes),
                    0..n,
                    &mut steps,
                )?
            }
        }
        Ok(Dispatch { kind, steps })
    }

    /// Add `kernel_entry`'s dispatches over each binding chunk of `w` for the activation
    /// columns `cols` (x copied for the texture GEMV, or the caller's).
    fn add_matmul_steps(
        &self,
        w: &GpuWeight,
        (kernel_entry, pipeline, grid): (Entry, &wgpu::ComputePipeline, Grid),
        (x, x_bytes, x_copied): (&Operand<'_>, u64, Option<&XCopied>),
        (y, y_bytes): (&Operand<'_>, u64),
        cols: std::ops::Range<usize>,
        steps: &mut Vec<Step>,
    ) -> Result<()> {
        let (k, m) = (w.k(), w.rows());
        let limits = self.device.limits();
        // A block's outputs start cols.start rows of y further on (y_stride = m): the GEMV
        // adds row_offset to every output index.
        let y_block = u32::try_from(cols.start * m)
            .map_err(|_| Error::Shape("y must have fewer than 2^32 elements".into()))?;
        let texture_layout = (self.texture.as_ref()).and_then(|t| t.gemv_layout(kernel_entry));
        for chunk in w.chunks() {
            let mut dims = Dims::for_chunk(self.format, k, chunk, cols.len(), m);
            dims.row_offset += y_block;
            let uniform = self.uniform(dims);
            let bind_group = match (texture_layout, x_copied, &chunk.textures) {
                (Some(layout), Some(x_copied), Some(tex)) => {
                    self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some("wgquant texture matmul"),
                        layout,
                        entries: &[
                            entry(0, wgpu::BindingResource::TextureView(&tex.codes)),
                            entry(1, wgpu::BindingResource::TextureView(&tex.params)),
                            entry(2, x_copied.resource()),
                            entry(3, y.binding(y_bytes)),
                            entry(4, uniform.as_entire_binding()),
                        ],
                    })
                }
                _ => self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("wgquant matmul"),
                    layout: &self.matmul_layout,
                    entries: &[
                        entry(0, chunk.codes.as_entire_binding()),
                        entry(1, chunk.params.as_entire_binding()),
                        entry(2, x.binding(x_bytes)),
                        entry(3, y.binding(y_bytes)),
                        entry(4, uniform.as_entire_binding()),
                    ],
                }),
            };
            let groups = match grid {
                Grid::Gemv {
                    rows,
                    per_wg,
                    group,
                } => {
                    let wgs = chunk.rows.div_ceil(rows as usize).div_ceil(per_wg);
                    let [gx, gy, _] = grid_1d(wgs, &limits)?;
                    let gz = cols.len().div_ceil(group);
                    check_grid(gz, 1, &limits)?;
                    [gx, gy, gz as u32]
                }
                Grid::Tiles(tile) => {
                    let gx = chunk.rows.div_ceil(tile.0);
                    let gy = cols.len().div_ceil(tile.1);
                    check_grid(gx, gy, &limits)?;
                    [gx as u32, gy as u32, 1]
                }
            };
            steps.push(Step {
                entry: kernel_entry.entry_point(),
                pipeline: pipeline.clone(),
                bind_group,
                groups,
                _uniform: uniform,
            });
        }
        Ok(())
    }

    /// Add the step that copies the vec4s `texels` of x (`act` values) to where the texture
    /// GEMV reads them as f32 (`to`: a new folded texture, a new uniform-capable buffer of
    /// [`shaders::X_UNIFORM_BYTES`] or a new storage buffer), and return that.
    fn copy_x(
        &self,
        t: &TexturePipelines,
        (x, x_bytes, act): (&Operand<'_>, u64, ActType),
        texels: std::ops::Range<usize>,
        to: XSource,
        steps: &mut Vec<Step>,
    ) -> Result<XCopied> {
        let copies = t.x_copy(&self.device, act);
        let copied = match to {
            XSource::Texture(size) => {
                let texture = self.device.create_texture(&wgpu::TextureDescriptor {
                    label: Some("wgquant x texture"),
                    size,
                    mip_level_count: 1,
                    sample_count: 1,
                    dimension: wgpu::TextureDimension::D2,
                    format: wgpu::TextureFormat::Rgba32Float,
                    usage: wgpu::TextureUsages::TEXTURE_BINDING
                        | wgpu::TextureUsages::STORAGE_BINDING,
                    view_formats: &[],
                });
                XCopied::Texture(texture.create_view(&Default::default()))
            }
            XSource::Caller => {
                return Err(Error::Gpu(
                    "internal: a copy of x was planned into the caller's own buffer".into(),
                ))
            }
            XSource::Uniform => {
                XCopied::Buffer(self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("wgquant x uniform"),
                    size: shaders::X_UNIFORM_BYTES,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::UNIFORM,
                    mapped_at_creation: false,
                }))
            }
            XSource::Storage(bytes) => {
                XCopied::Buffer(self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("wgquant x storage"),
                    size: bytes,
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                }))
            }
        };
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgquant x texels"),
                contents: bytemuck::cast_slice(&[texels.len() as u32, texels.start as u32, 0, 0]),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let (entry_point, pipeline, layout, out_binding) = match &copied {
            XCopied::Texture(_) => ("x_to_texture", &copies.to_texture, &t.x_layout, 1),
            XCopied::Buffer(_) => ("x_to_buffer", &copies.to_buffer, &t.x_buffer_layout, 3),
        };
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry_point),
            layout,
            entries: &[
                entry(0, x.binding(x_bytes)),
                entry(out_binding, copied.resource()),
                entry(2, uniform.as_entire_binding()),
            ],
        });
        let [gx, gy, _] = grid_1d(texels.len().div_ceil(64), &self.device.limits())?;
        steps.push(Step {
            entry: entry_point,
            pipeline: pipeline.clone(),
            bind_group,
            groups: [gx, gy, 1],
            _uniform: uniform,
        });
        Ok(copied)
    }

    /// Prepare dequantization of `w` into `out` (`rows * k` f32, row-major).
    pub fn dequantize<'a>(&self, w: &GpuWeight, out: impl Into<Operand<'a>>) -> Result<Dispatch> {
        let out = out.into();
        self.check_weight(w)?;
        let k = w.k();
        let limits = self.device.limits();
        out.check("output", checked_bytes(w.rows(), k, 4)?, &limits)?;
        let max_binding = limits.max_storage_buffer_binding_size;
        let row_bytes = (k * 4) as u64;
        // Rows per dispatch: the f32 slice must fit one binding and start 256-byte aligned.
        let rows_per_step = ((max_binding / row_bytes) as usize
            / super::layout::CHUNK_ROW_MULTIPLE
            * super::layout::CHUNK_ROW_MULTIPLE)
            .max(1);
        let blocks_per_row = (k / self.format.codec().block_values()) as u32;
        let chunk_values = 4 * self.format.codec().word_values();
        let mut steps = Vec::new();
        for chunk in w.chunks() {
            let mut local = 0;
            while local < chunk.rows {
                let rows = (chunk.rows - local).min(rows_per_step);
                let offset = out.offset + (chunk.row_start + local) as u64 * row_bytes;
                if !offset.is_multiple_of(limits.min_storage_buffer_offset_alignment as u64) {
                    return Err(Error::DeviceLimit(format!(
                        "dequantize output offset {offset} is not aligned to {}",
                        limits.min_storage_buffer_offset_alignment
                    )));
                }
                let dims = Dims {
                    k: k as u32,
                    rows: rows as u32,
                    n: 0,
                    row_offset: local as u32,
                    y_stride: k as u32,
                    blocks_per_row,
                    _pad: [0; 2],
                };
                let uniform = self.uniform(dims);
                let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("wgquant dequantize"),
                    layout: &self.dequant_layout,
                    entries: &[
                        entry(0, chunk.codes.as_entire_binding()),
                        entry(1, chunk.params.as_entire_binding()),
                        entry(
                            3,
                            Operand {
                                buffer: out.buffer,
                                offset,
                            }
                            .binding(rows as u64 * row_bytes),
                        ),
                        entry(4, uniform.as_entire_binding()),
                    ],
                });
                let invocations = rows * (k / chunk_values);
                steps.push(Step {
                    entry: Entry::Dequantize.entry_point(),
                    pipeline: self.dequantize.clone(),
                    bind_group,
                    groups: grid_1d(invocations.div_ceil(DEQUANT_WG), &limits)?,
                    _uniform: uniform,
                });
                local += rows;
            }
        }
        Ok(Dispatch::from_steps(KernelKind::Dequantize, steps))
    }

    /// Prepare a row gather (an embedding lookup): `out` receives `n` rows of `w.k()` f32,
    /// row `i` being weight row `ids[i]`, where `ids` holds `n` u32 row indices. The ids are
    /// read when the dispatch runs; the caller must keep them below `w.rows()` (a row out of
    /// range is not written).
    pub fn gather_rows<'a>(
        &self,
        w: &GpuWeight,
        ids: impl Into<Operand<'a>>,
        out: impl Into<Operand<'a>>,
        n: usize,
    ) -> Result<Dispatch> {
        let (ids, out) = (ids.into(), out.into());
        self.check_weight(w)?;
        if n == 0 {
            return Err(Error::Shape("a gather needs at least one row id".into()));
        }
        let k = w.k();
        let limits = self.device.limits();
        let out_bytes = checked_bytes(n, k, 4)?;
        let ids_bytes = checked_bytes(n, 1, 4)?;
        ids.check("ids", ids_bytes, &limits)?;
        out.check("output", out_bytes, &limits)?;
        if out_bytes > limits.max_storage_buffer_binding_size {
            return Err(Error::DeviceLimit(format!(
                "gathered rows ({out_bytes} bytes) exceed the {}-byte storage binding limit",
                limits.max_storage_buffer_binding_size
            )));
        }
        let chunk_values = 4 * self.format.codec().word_values();
        let mut steps = Vec::new();
        for chunk in w.chunks() {
            let uniform = self.uniform(Dims::for_chunk(self.format, k, chunk, n, k));
            let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("wgquant gather rows"),
                layout: &self.gather_layout,
                entries: &[
                    entry(0, chunk.codes.as_entire_binding()),
                    entry(1, chunk.params.as_entire_binding()),
                    entry(3, out.binding(out_bytes)),
                    entry(4, uniform.as_entire_binding()),
                    entry(5, ids.binding(ids_bytes)),
                ],
            });
            let invocations = n * (k / chunk_values);
            steps.push(Step {
                entry: Entry::GatherRows.entry_point(),
                pipeline: self.gather.clone(),
                bind_group,
                groups: grid_1d(invocations.div_ceil(DEQUANT_WG), &limits)?,
                _uniform: uniform,
            });
        }
        Ok(Dispatch::from_steps(KernelKind::Dequantize, steps))
    }

    /// One line: upload `x` (`n` x `k`), run the matmul, wait, return `y` (`n` x `rows`).
    pub fn run_matmul(
        &self,
        ctx: &GpuContext,
        w: &GpuWeight,
        x: &[f32],
        n: usize,
    ) -> Result<Vec<f32>> {
        crate::format::check_len("x", x.len(), n, w.k())?;
        let xb = ctx.storage_buffer("wgquant x", x);
        let yb = ctx.output_buffer("wgquant y", n * w.rows());
        let op = self.matmul(w, &xb, &yb, n)?;
        self.submit(ctx, &op)?;
        ctx.read_f32(&yb, n * w.rows())
    }

    /// One line: upload f16 `x` (`n` x `k`), run [`matmul_f16`](Self::matmul_f16), wait,
    /// return f16 `y` (`n` x `rows`).
    pub fn run_matmul_f16(
        &self,
        ctx: &GpuContext,
        w: &GpuWeight,
        x: &[half::f16],
        n: usize,
    ) -> Result<Vec<half::f16>> {
        crate::format::check_len("x", x.len(), n, w.k())?;
        let xb = ctx.storage_buffer_f16("wgquant x f16", x);
        let yb = ctx.output_buffer("wgquant y f16", (n * w.rows()).div_ceil(2));
        let op = self.matmul_f16(w, &xb, &yb, n)?;
        self.submit(ctx, &op)?;
        ctx.read_f16(&yb, n * w.rows())
    }

    /// One line: dequantize `w` on the GPU and return its f32 weights.
    pub fn run_dequantize(&self, ctx: &GpuContext, w: &GpuWeight) -> Result<Vec<f32>> {
        let out = ctx.output_buffer("wgquant dequantized", w.rows() * w.k());
        let op = self.dequantize(w, &out)?;
        self.submit(ctx, &op)?;
        ctx.read_f32(&out, w.rows() * w.k())
    }

    fn submit(&self, ctx: &GpuContext, op: &Dispatch) -> Result<()> {
        ctx.submit_checked(|enc| op.encode(enc))
    }
}

pub(crate) fn entry(binding: u32, resource: wgpu::BindingResource<'_>) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry { binding, resource }
}

/// A buffer and a byte offset into it where an operand starts (e.g. an output that lands
/// inside a larger buffer). The offset must be a multiple of the device's
/// `min_storage_buffer_offset_alignment` (256 on most devices).
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub offset: u64,
}

impl<'a> From<&'a wgpu::Buffer> for Operand<'a> {
    fn from(buffer: &'a wgpu::Buffer) -> Self {
        Operand { buffer, offset: 0 }
    }
}

impl<'a> Operand<'a> {
    pub(crate) fn check(&self, what: &str, need: u64, limits: &wgpu::Limits) -> Result<()> {
        let align = limits.min_storage_buffer_offset_alignment as u64;
        if !self.offset.is_multiple_of(align) {
            return Err(Error::InvalidArgument(format!(
                "{what} offset {} is not a multiple of {align}",
                self.offset
            )));
        }
        let avail = self.buffer.size().saturating_sub(self.offset);
        if avail < need {
            return Err(Error::Shape(format!(
                "{what} needs {need} bytes from offset {}; the buffer holds {}",
                self.offset,
                self.buffer.size()
            )));
        }
        Ok(())
    }

    pub(crate) fn binding(&self, bytes: u64) -> wgpu::BindingResource<'a> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(bytes),
        })
    }
}

/// Bytes of an `a` x `b` array of `elem`-byte values.
fn checked_bytes(a: usize, b: usize, elem: usize) -> Result<u64> {
    a.checked_mul(b)
        .and_then(|v| v.checked_mul(elem))
        .map(|v| v as u64)
        .ok_or_else(|| Error::Shape(format!("{a} x {b} values of {elem} bytes overflow")))
}

fn missing_f16() -> Error {
    Error::DeviceLimit("f16 activations need a device with Features::SHADER_F16".into())
}

pub(crate) fn check_grid(gx: usize, gy: usize, limits: &wgpu::Limits) -> Result<()> {
    let max = limits.max_compute_workgroups_per_dimension as usize;
    if gx > max || gy > max {
        return Err(Error::DeviceLimit(format!(
            "a {gx} x {gy} workgroup grid exceeds the device's {max} per dimension"
        )));
    }
    Ok(())
}

/// `count` workgroups as a 2-D grid (x up to the per-dimension limit), for kernels that
/// linearise `workgroup_id` themselves.
pub(crate) fn grid_1d(count: usize, limits: &wgpu::Limits) -> Result<[u32; 3]> {
    let max = limits.max_compute_workgroups_per_dimension as usize;
    let gx = count.clamp(1, max);
    let gy = count.div_ceil(gx);
    check_grid(gx, gy, limits)?;
    Ok([gx as u32, gy as u32, 1])
}

#[derive(Debug)]
pub(crate) struct Step {
    /// The entry point it runs (reported by [`Dispatch::entry_points`]).
    pub(crate) entry: &'static str,
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) bind_group: wgpu::BindGroup,
    pub(crate) groups: [u32; 3],
    /// The step's uniform buffer, kept alive as long as the bind group that reads it.
    pub(crate) _uniform: wgpu::Buffer,
}

/// A prepared kernel launch (one dispatch per weight chunk), reusable across frames.
#[derive(Debug)]
pub struct Dispatch {
    kind: KernelKind,
    steps: Vec<Step>,
}

impl Dispatch {
    /// A dispatch of `steps`, run in order in one compute pass.
    pub(crate) fn from_steps(kind: KernelKind, steps: Vec<Step>) -> Self {
        Dispatch { kind, steps }
    }

    /// Which kernel family this runs.
    pub fn kind(&self) -> KernelKind {
        self.kind
    }

    /// The entry points its dispatches run, in order (which variant was chosen).
    pub fn entry_points(&self) -> Vec<&'static str> {
        self.steps.iter().map(|s| s.entry).collect()
    }

    /// The kernel's name for reports: its family's entry point, or `gemm_coop` for the
    /// tensor-core GEMM.
    pub fn kernel_name(&self) -> &'static str {
        if self.f16_products() {
            // Both fragment shapes' entry point.
            Entry::GemmCoop16.entry_point()
        } else {
            self.kind.entry_point()
        }
    }

    /// Whether it multiplies in f16 (the tensor-core GEMM: x and the dequantized weights
    /// rounded to f16, products accumulated in f32) rather than in f32.
    pub fn f16_products(&self) -> bool {
        // Both fragment shapes' entry point.
        let coop = Entry::GemmCoop16.entry_point();
        self.steps.iter().any(|s| s.entry == coop)
    }

    /// Encode into a new compute pass of `encoder`.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        self.encode_with_timestamps(encoder, None);
    }

    /// Encode into a new compute pass that writes the given timestamps (for benchmarks).
    pub fn encode_with_timestamps(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        timestamp_writes: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(self.kind.entry_point()),
            timestamp_writes,
        });
        self.encode_in_pass(&mut pass);
    }

    /// Encode into a compute pass the caller already has open.
    pub fn encode_in_pass(&self, pass: &mut wgpu::ComputePass<'_>) {
        for s in &self.steps {
            pass.set_pipeline(&s.pipeline);
            pass.set_bind_group(0, &s.bind_group, &[]);
            pass.dispatch_workgroups(s.groups[0], s.groups[1], s.groups[2]);
        }
    }
}

/// A shader module from wgquant's own WGSL (every module is built here), with wgpu's loop
/// bounding where [`plan::force_loop_bounding`] says (`unroll_on_cpu`: the texture GEMV).
/// Bounds checks and the other runtime checks stay on everywhere.
pub(crate) fn shader_module(
    device: &wgpu::Device,
    label: &str,
    wgsl: String,
    unroll_on_cpu: bool,
) -> wgpu::ShaderModule {
    let cpu = device.adapter_info().device_type == wgpu::DeviceType::Cpu;
    let checks = wgpu::ShaderRuntimeChecks {
        force_loop_bounding: plan::force_loop_bounding(cpu, unroll_on_cpu),
        ..wgpu::ShaderRuntimeChecks::checked()
    };
    // SAFETY: the one check turned off guards against infinite loops, and every loop in
    // wgquant's shaders ends: each advances its counter by a positive constant or stride
    // (a lane count, subgroup count or grid size, all at least 1) toward a bound from the
    // dims uniform or an override constant, or halves a positive stride down to zero. The
    // dims describe buffers of at most 2^32 bytes, so no counter can wrap past its bound.
    unsafe {
        device.create_shader_module_trusted(
            wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(wgsl.into()),
            },
            checks,
        )
    }
}

fn build_pipeline(
    device: &wgpu::Device,
    format: Format,
    entry: Entry,
    act: ActType,
    layout: &wgpu::BindGroupLayout,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    let module = shader_module(
        device,
        entry.entry_point(),
        shaders::compose_variant(format, entry, act),
        entry.reads_textures(),
    );
    compute_pipeline(device, &module, entry.entry_point(), layout, constants)
}

/// A compute pipeline for `entry_point` of `module` with one bind group of `layout`.
pub(crate) fn compute_pipeline(
    device: &wgpu::Device,
    module: &wgpu::ShaderModule,
    entry_point: &str,
    layout: &wgpu::BindGroupLayout,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(entry_point),
        bind_group_layouts: &[Some(layout)],
        immediate_size: 0,
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry_point),
        layout: Some(&pipeline_layout),
        module,
        entry_point: Some(entry_point),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants,
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    })
}
