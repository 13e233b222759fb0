//! The kernel plan (`src/gpu/plan/`) against the choices recorded before the plan was split
//! out of the shader and kernel modules (`tests/data/kernel_plans.txt`, written by the code
//! of that time for the same table of adapters, configurations, formats, shapes and batch
//! sizes): the refactor moved the policy, it did not change it. And on the test machine's
//! adapter, the dispatches `Kernels::matmul` prepares are the ones the plan names.

mod common;

use wgquant::gpu::plan::{
    plan_matmul, weight_gets_textures, AdapterProfile, GemvRows, GemvSteps, KernelConfig,
    PlannedKernel,
};
use wgquant::gpu::{GpuWeight, Kernels};
use wgquant::{Format, QuantizedTensor};

/// The configurations planned per preset: its untuned defaults, and on two presets forced
/// settings (as `bench` flags and tests force them).
fn configs(name: &str, base: KernelConfig) -> Vec<(&'static str, KernelConfig)> {
    let mut v = vec![("default", base)];
    if name == "h100" {
        v.push((
            "tuned",
            KernelConfig {
                gemv_rows: GemvRows {
                    narrow: Some(8),
                    wide: Some(1),
                },
                gemv_steps: GemvSteps {
                    narrow: Some(2),
                    wide: None,
                },
                gemv_unroll: Some(1),
                gemv_wide_workgroup: false,
                coop_wide_tile: true,
                ..base
            },
        ));
        v.push((
            "no-coop",
            KernelConfig {
                coop_matrix: false,
                ..base
            },
        ));
    }
    if name == "lavapipe-mesa22" {
        v.push((
            "buffer-gemv",
            KernelConfig {
                texture_gemv: false,
                ..base
            },
        ));
    }
    v
}

fn plan_table() -> String {
    let cpu_formats = "f32 q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q4_k q5_k q6_k iq4_nl mxfp4 tq1_0 tq2_0 \
                       nf4 b1_g128 int8_g32 int4_g128 int4_g64_asym";
    let gpu_formats = "f32 q8_0 q4_0 q4_k q6_k iq4_nl int4_g128";
    let mut out = String::new();
    for (name, _) in AdapterProfile::PRESETS {
        let adapter = AdapterProfile::preset(name).unwrap();
        let cpu = adapter.is_cpu();
        let formats: Vec<Format> = (if cpu { cpu_formats } else { gpu_formats })
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        let shapes: &[(usize, usize)] = if cpu {
            &[(100, 1536), (4096, 4096), (4096, 14336)]
        } else {
            &[(100, 1536), (4096, 4096), (4096, 14336), (32768, 14336)]
        };
        let batches: &[usize] = if cpu {
            &[1, 2, 3, 4, 5, 6, 8, 9, 16]
        } else {
            &[1, 2, 3, 8, 9, 15, 16, 64]
        };
        for (label, config) in configs(name, KernelConfig::untuned_for(&adapter)) {
            for &f in &formats {
                for &(m, k) in shapes {
                    if k % f.codec().block_values() != 0 {
                        continue;
                    }
                    let textures = weight_gets_textures(&adapter, f, (m, k));
                    for &n in batches {
                        let plan = plan_matmul(&adapter, &config, f, (m, k), n, textures).unwrap();
                        out += &format!("{name}/{label} {f} {m}x{k} n{n}: {}\n", plan.compact());
                    }
                }
            }
        }
    }
    out
}

#[test]
fn plans_equal_the_recorded_choices() {
    let want = include_str!("data/kernel_plans.txt");
    let got = plan_table();
    let (want_lines, got_lines): (Vec<&str>, Vec<&str>) =
        (want.lines().collect(), got.lines().collect());
    let differing: Vec<String> = want_lines
        .iter()
        .zip(&got_lines)
        .filter(|(w, g)| w != g)
        .take(5)
        .map(|(w, g)| format!("recorded: {w}\nplanned:  {g}"))
        .collect();
    assert!(
        differing.is_empty(),
        "{} cases differ:\n{}",
        differing.len(),
        differing.join("\n")
    );
    assert_eq!(
        want_lines.len(),
        got_lines.len(),
        "the table has another size"
    );
    assert!(got_lines.len() > 3000);
}

#[test]
fn kernels_prepare_what_the_plan_names() {
    let ctx = common::ctx();
    let adapter = AdapterProfile::of(&ctx.device);
    let mut kinds = std::collections::BTreeSet::new();
    for f in ["q4_0", "q8_0", "q6_k", "iq4_nl", "f32", "int4_g128"] {
        let f: Format = f.parse().unwrap();
        let kernels = Kernels::new(&ctx.device, f).unwrap();
        for (m, k) in [(100, 256), (72, 4096), (40, 14336)] {
            let w = QuantizedTensor::quantize(f, &vec![0.25; m * k], m, k).unwrap();
            let weight = GpuWeight::upload(ctx, &w).unwrap();
            let textures = weight.chunks().iter().all(|c| c.textures.is_some());
            assert_eq!(
                weight_gets_textures(&adapter, f, (m, k)),
                textures,
                "{f} {m}x{k}"
            );
            for n in [1, 2, 3, 5, 8, 9, 16, 40] {
                let x = ctx.storage_buffer("x", &vec![0.0; n * k]);
                let y = ctx.output_buffer("y", n * m);
                let dispatch = kernels.matmul(&weight, &x, &y, n).unwrap();
                let plan = kernels.plan(&weight, n).unwrap();
                let direct =
                    plan_matmul(&adapter, &kernels.config(), f, (m, k), n, textures).unwrap();
                assert_eq!(plan.compact(), direct.compact());
                assert_eq!(
                    dispatch.entry_points(),
                    plan.entry_points(),
                    "{f} {m}x{k} n = {n}"
                );
                kinds.insert(match &plan.kernel {
                    PlannedKernel::Gemv(b) => b[0].entry.entry_point(),
                    PlannedKernel::Tiled(t) => t.entry.entry_point(),
                });
            }
        }
    }
    assert!(!kinds.is_empty());
}

#[test]
fn chunked_weights_run_a_dispatch_per_chunk() {
    let ctx = common::ctx();
    let f = Format::Q4_0;
    let (m, k) = (200, 256);
    let w = QuantizedTensor::quantize(f, &vec![0.5; m * k], m, k).unwrap();
    // 64-row chunks: 4 chunks for 200 rows.
    let weight = GpuWeight::upload_with_max_binding(ctx, &w, 64 * 128).unwrap();
    let kernels = Kernels::new(&ctx.device, f).unwrap();
    let x = ctx.storage_buffer("x", &vec![0.0; k]);
    let y = ctx.output_buffer("y", m);
    let dispatch = kernels.matmul(&weight, &x, &y, 1).unwrap();
    let gemv = dispatch
        .entry_points()
        .into_iter()
        .filter(|e| e.starts_with("gemv"))
        .count();
    assert_eq!(gemv, weight.chunks().len());
    assert_eq!(weight.chunks().len(), 4);
    // The plan of this weight names its own chunks, not the device's.
    let plan = kernels.plan(&weight, 1).unwrap();
    assert_eq!(plan.entry_points(), dispatch.entry_points());
    assert_eq!((plan.chunks, plan.chunk_rows), (4, 64));
}

#[test]
fn the_plan_command_prints_the_plan_and_its_reasons() {
    use common::cli::{fails, ok};
    let (out, _) = ok(&[
        "plan",
        "--adapter",
        "h100",
        "-f",
        "q4_0",
        "--shape",
        "4096x14336",
        "--batch",
        "1,8,64",
    ]);
    let adapter = AdapterProfile::preset("h100").unwrap();
    let config = KernelConfig::untuned_for(&adapter);
    for n in [1, 8, 64] {
        let plan = plan_matmul(&adapter, &config, Format::Q4_0, (4096, 14336), n, false).unwrap();
        assert!(out.contains(&plan.to_string()), "n = {n}:\n{out}");
    }
    assert!(out.contains("gemv_subgroup") && out.contains("gemm_coop") && out.contains("why:"));
    // The machine's own adapter: what the kernels prepare.
    let (out, _) = ok(&["plan", "-f", "q6_k", "--shape", "100x256", "--batch", "5"]);
    let ctx = common::ctx();
    let w = QuantizedTensor::quantize(Format::Q6_K, &vec![0.5; 100 * 256], 100, 256).unwrap();
    let weight = GpuWeight::upload(ctx, &w).unwrap();
    let plan = Kernels::new(&ctx.device, Format::Q6_K)
        .unwrap()
        .plan(&weight, 5)
        .unwrap();
    assert!(out.contains(&plan.to_string()), "{out}\n{plan}");
    // Bad input: a typed message, no plan.
    let err = fails(&["plan", "-f", "q4_k", "--shape", "4096x100"]);
    assert!(err.contains("multiple of 256"), "{err}");
    let err = fails(&["plan", "--batch", "0"]);
    assert!(err.contains("at least 1"), "{err}");
    let err = fails(&["plan", "--adapter", "no-such-gpu-xyz"]);
    assert!(
        err.contains("no-such-gpu-xyz") && err.contains("h100"),
        "{err}"
    );
}
