//! The GEMV autotuner and its cache, and every allowed `ROWS` setting against the CPU
//! reference. No timing assertions: speed belongs in benchmarks.

mod common;

use common::ctx;
use common::temp::TempDir;
use wgquant::bench::Timing;
use wgquant::format::Format;
use wgquant::gpu::plan::{GemvRows, GemvSteps, KernelConfig, GPU_GEMV_ROWS, GPU_GEMV_STEPS};
use wgquant::gpu::shaders::{Entry, GEMV_MAX_ROWS, GEMV_MAX_STEPS};
use wgquant::gpu::tune::{self, TuneOptions, Tuning, TUNE_BATCHES};
use wgquant::gpu::Kernels;
use wgquant::verify;

fn sample(entry: Entry) -> Tuning {
    Tuning {
        entry,
        wide_entry: entry,
        rows: GemvRows {
            narrow: Some(2),
            wide: Some(4),
        },
        steps: Some(GemvSteps {
            narrow: Some(4),
            wide: Some(1),
        }),
        shape: (64, 128),
        copies: 1,
        timing: Timing::WallClock,
        measurements: Vec::new(),
    }
}

/// The tuner on the device's own configuration and, where the device has subgroups, on the
/// buffer GEMV a GPU runs (both lane-group shapes timed for 8 columns).
#[test]
fn tuner_picks_allowed_values() {
    let ctx = ctx();
    let own = KernelConfig::untuned(&ctx.device);
    let mut bases = vec![own];
    if ctx.device.features().contains(wgpu::Features::SUBGROUP) {
        bases.push(KernelConfig {
            subgroups: true,
            texture_gemv: false,
            gemv_rows: GPU_GEMV_ROWS,
            gemv_steps: GemvSteps::fixed(GPU_GEMV_STEPS),
            gemv_wide_workgroup: true,
            ..own
        });
    }
    // One weight for the device's own configuration; rotating copies for the GPU's.
    let weight_bytes = common::random_weight(Format::Q4_0, 64, 256, 3).gpu_bytes();
    for (i, base) in bases.into_iter().enumerate() {
        let bytes_in_flight = if i == 0 { 0 } else { 2 * weight_bytes + 1 };
        let opts = TuneOptions {
            shape: (64, 256),
            warmup: 1,
            runs: 2,
            bytes_in_flight,
            base,
        };
        let mut seen = Vec::new();
        let t = tune::tune(ctx, &opts, |m| seen.push((m.entry, m.rows, m.n))).unwrap();
        assert_eq!(t.copies, if i == 0 { 1 } else { 3 });
        assert_eq!(t.entry, base.gemv_entry(1));
        let wide_entries = tune::wide_entries(&base);
        assert!(wide_entries.contains(&t.wide_entry), "{:?}", t.wide_entry);
        if base.subgroups && !base.texture_gemv {
            assert_eq!(wide_entries, [Entry::GemvSubgroup, Entry::Gemv]);
        }
        // Every rows candidate at the default steps (for 8 columns, of every lane-group
        // shape), then every other steps with the best choices, per bucket.
        let narrow = tune::candidates(t.entry);
        let wide: usize = wide_entries
            .iter()
            .map(|&e| tune::candidates(e).len())
            .sum();
        let steps = tune::step_candidates(ctx, &[t.entry, t.wide_entry]);
        let other_steps: usize = if steps.len() > 1 {
            TUNE_BATCHES
                .iter()
                .map(|&n| {
                    let base_steps = base.gemv_steps.for_cols(n).unwrap_or(GEMV_MAX_STEPS);
                    steps.iter().filter(|&&s| s != base_steps).count()
                })
                .sum()
        } else {
            0
        };
        assert_eq!(seen.len(), narrow.len() + wide + other_steps);
        for e in &wide_entries {
            assert!(seen.iter().any(|&(se, _, n)| se == *e && n == 8), "{e:?}");
        }
        match t.steps {
            Some(s) => {
                for b in [s.narrow, s.wide] {
                    assert!(b.is_some_and(|b| steps.contains(&b)), "{s:?}: {steps:?}");
                }
            }
            None => assert_eq!(steps.len(), 1),
        }
        assert_eq!(t.measurements.len(), seen.len());
        assert!(t.measurements.iter().all(|m| m.seconds >= 0.0));
        let (rn, rw) = (t.rows.narrow.unwrap(), t.rows.wide.unwrap());
        assert!(narrow.contains(&rn), "{rn} not among {narrow:?}");
        assert!(tune::candidates(t.wide_entry).contains(&rw), "{rw}");
        assert!(t.rows.validate().is_ok());
        // The tuned config builds, runs the chosen entries and computes correctly.
        let config = KernelConfig {
            gemv_rows: t.rows,
            gemv_steps: t.steps.unwrap_or(base.gemv_steps),
            gemv_wide_workgroup: t.wide_entry == Entry::Gemv,
            ..base
        };
        assert_eq!(config.gemv_entry(8), t.wide_entry);
        let kernels = Kernels::with_config(&ctx.device, Format::Q4_0, config).unwrap();
        let w = common::random_weight(Format::Q4_0, 37, 256, 12);
        let x = ctx.storage_buffer("x", &vec![0.5; 8 * 256]);
        let y = ctx.output_buffer("y", 8 * 37);
        for n in [1, 8] {
            let r = verify::matmul_case(ctx, &kernels, 37, 256, n, 11).unwrap();
            assert!(r.passed(), "{r:?}");
            let op = kernels.matmul(&w, &x, &y, n).unwrap();
            let want = config.gemv_entry(n).entry_point();
            assert!(op.entry_points().contains(&want), "{n}: {want}");
        }
    }
}

#[test]
fn defaults_are_the_fixed_values() {
    assert_eq!(GemvRows::default().narrow, None);
    for entry in [Entry::Gemv, Entry::GemvSubgroup, Entry::GemvLanes] {
        for cols in 1..=8 {
            assert_eq!(
                GemvRows::default().rows(entry, cols),
                entry.default_gemv_rows(cols)
            );
        }
    }
    assert_eq!(GemvRows::fixed(8).rows(Entry::Gemv, 1), 4, "clamped");
    let config = KernelConfig::untuned(&ctx().device);
    if ctx().is_cpu() {
        assert_eq!(config.gemv_rows, GemvRows::default());
    } else {
        assert_eq!(config.gemv_rows, GPU_GEMV_ROWS);
    }
    // 64-lane lane groups for 3-8 columns on GPUs only; a lane group per subgroup for 1-2.
    assert_eq!(config.gemv_wide_workgroup, !ctx().is_cpu());
    if config.subgroups && !config.texture_gemv {
        assert_eq!(config.gemv_entry(2), Entry::GemvSubgroup);
        let wide = if ctx().is_cpu() {
            Entry::GemvSubgroup
        } else {
            Entry::Gemv
        };
        assert_eq!(config.gemv_entry(3), wide);
    }
}

#[test]
fn cache_round_trips() {
    let dir = TempDir::new("tune-roundtrip");
    let path = dir.join("sub").join(tune::CACHE_FILE);
    let info = ctx().info.clone();
    assert!(tune::load_from(&path, &info).is_none(), "no file yet");
    let t = Tuning {
        wide_entry: Entry::Gemv,
        copies: 5,
        ..sample(Entry::GemvSubgroup)
    };
    tune::store_to(&path, &info, &t).unwrap();
    let got = tune::load_from(&path, &info).expect("cached");
    assert_eq!(got.entry, t.entry);
    assert_eq!(got.wide_entry, t.wide_entry);
    assert_eq!(got.rows, t.rows);
    assert_eq!(got.steps, t.steps);
    assert_eq!(got.shape, t.shape);
    assert_eq!(got.copies, t.copies);
    assert_eq!(got.timing, t.timing);
    // Another adapter (a different driver) has no entry, and storing it keeps ours.
    let mut other = info.clone();
    other.driver_info.push_str(" (other)");
    assert!(tune::load_from(&path, &other).is_none());
    let t2 = Tuning {
        rows: GemvRows::fixed(8),
        ..sample(Entry::GemvLanes)
    };
    tune::store_to(&path, &other, &t2).unwrap();
    assert_eq!(tune::load_from(&path, &other).unwrap().rows, t2.rows);
    assert_eq!(tune::load_from(&path, &info).unwrap().rows, t.rows);
    assert_ne!(tune::adapter_key(&info), tune::adapter_key(&other));
}

/// A tuning applies to the configuration whose one-column GEMV entry it tuned, with the
/// wide bucket's lane group; to no other.
#[test]
fn tunings_apply_to_their_entry() {
    let base = KernelConfig {
        subgroups: true,
        texture_gemv: false,
        gemv_wide_workgroup: true,
        ..KernelConfig::untuned(&ctx().device)
    };
    let t = Tuning {
        wide_entry: Entry::GemvSubgroup,
        ..sample(Entry::GemvSubgroup)
    };
    let tuned = base.with_tuning(&t);
    assert_eq!((tuned.gemv_rows, Some(tuned.gemv_steps)), (t.rows, t.steps));
    assert!(!tuned.gemv_wide_workgroup);
    assert_eq!(tuned.gemv_entry(8), Entry::GemvSubgroup);
    let t = Tuning {
        wide_entry: Entry::Gemv,
        ..t
    };
    let tuned = base.with_tuning(&t);
    assert_eq!(tuned.gemv_entry(8), Entry::Gemv);
    assert_eq!(tuned.gemv_entry(2), Entry::GemvSubgroup);
    // What bench prints: each bucket's entry and rows, the steps.
    let summary = tuned.gemv_summary();
    for part in [
        "gemv_subgroup with 2 rows",
        "3-8 columns: gemv with 4 rows",
        "steps per lane: 4 (3-8 columns: 1)",
    ] {
        assert!(summary.contains(part), "{summary}");
    }
    // Another entry's tuning leaves the configuration as it was.
    for other in [Entry::Gemv, Entry::GemvLanes] {
        assert_eq!(base.with_tuning(&sample(other)), base);
    }
    // A tuning without steps keeps the configuration's.
    let t = Tuning {
        steps: None,
        ..sample(Entry::GemvSubgroup)
    };
    assert_eq!(base.with_tuning(&t).gemv_steps, base.gemv_steps);
}

#[test]
fn corrupt_cache_is_ignored() {
    let dir = TempDir::new("tune-corrupt");
    let path = dir.join(tune::CACHE_FILE);
    let info = ctx().info.clone();
    let key = tune::adapter_key(&info);
    let mut bad_entries = vec![
        "{ not json".to_string(),
        "[1, 2, 3]".to_string(),
        format!(r#"{{"adapters": {{"{key}": 5}}}}"#),
        format!(
            r#"{{"adapters": {{"{key}": {{"entry": "gemv_subgroup", "rows_narrow": 9, "rows_wide": 4, "shape": [1, 32], "timing": "wall"}}}}}}"#
        ),
        format!(
            r#"{{"adapters": {{"{key}": {{"entry": "gemv", "rows_narrow": 8, "rows_wide": 4, "shape": [1, 32], "timing": "wall"}}}}}}"#
        ),
        format!(
            r#"{{"adapters": {{"{key}": {{"entry": "gemm", "rows_narrow": 1, "rows_wide": 4, "shape": [1, 32], "timing": "wall"}}}}}}"#
        ),
        format!(
            r#"{{"adapters": {{"{key}": {{"entry": "gemv", "rows_narrow": 1, "rows_wide": 4, "steps": 3, "shape": [1, 32], "timing": "wall"}}}}}}"#
        ),
        format!(
            r#"{{"adapters": {{"{key}": {{"entry": "gemv", "rows_narrow": 1, "rows_wide": 4, "steps": "4", "shape": [1, 32], "timing": "wall"}}}}}}"#
        ),
        format!(
            r#"{{"adapters": {{"{key}": {{"entry": "gemv", "rows_narrow": 1, "rows_wide": 4, "shape": [1, 32], "copies": 0, "timing": "wall"}}}}}}"#
        ),
        format!(
            r#"{{"adapters": {{"{key}": {{"entry": "gemv", "rows_narrow": 1, "rows_wide": 4, "steps": 4, "steps_wide": 3, "shape": [1, 32], "timing": "wall"}}}}}}"#
        ),
        // Wide steps without narrow ones.
        format!(
            r#"{{"adapters": {{"{key}": {{"entry": "gemv", "rows_narrow": 1, "rows_wide": 4, "steps_wide": 4, "shape": [1, 32], "timing": "wall"}}}}}}"#
        ),
    ];
    // The wide bucket's entry: only the workgroup-memory GEMV beside the subgroup one, and
    // rows within its maximum.
    for (entry, wide, rows_wide) in [
        ("gemv_subgroup", "gemv_lanes", 4),
        ("gemv", "gemv_subgroup", 4),
        ("gemv_subgroup", "gemm", 4),
        ("gemv_subgroup", "gemv", 8),
    ] {
        bad_entries.push(format!(
            r#"{{"adapters": {{"{key}": {{"entry": "{entry}", "entry_wide": "{wide}", "rows_narrow": 1, "rows_wide": {rows_wide}, "shape": [1, 32], "timing": "wall"}}}}}}"#
        ));
    }
    for text in &bad_entries {
        std::fs::write(&path, text).unwrap();
        assert!(tune::load_from(&path, &info).is_none(), "{text}");
    }
    // A tuning without steps (the texture GEMV's) round-trips as one.
    let t = Tuning {
        steps: None,
        ..sample(Entry::GemvLanes)
    };
    tune::store_to(&path, &info, &t).unwrap();
    let got = tune::load_from(&path, &info).expect("a tuning without steps");
    assert_eq!((got.rows, got.steps), (t.rows, None));
    // A cache from before each bucket had its own steps: one value for both.
    let old = format!(
        r#"{{"adapters": {{"{key}": {{"entry": "gemv", "rows_narrow": 1, "rows_wide": 4, "steps": 2, "shape": [1, 32], "timing": "wall"}}}}}}"#
    );
    std::fs::write(&path, old).unwrap();
    let t = tune::load_from(&path, &info).expect("steps for both buckets");
    assert_eq!(t.steps, Some(GemvSteps::fixed(2)));
    // A cache from before steps per lane were tuned: its rows, the default steps.
    let old = format!(
        r#"{{"adapters": {{"{key}": {{"entry": "gemv", "rows_narrow": 1, "rows_wide": 4, "shape": [1, 32], "timing": "wall"}}}}}}"#
    );
    std::fs::write(&path, old).unwrap();
    let t = tune::load_from(&path, &info).expect("rows without steps");
    assert_eq!((t.rows.narrow, t.steps), (Some(1), None));
    // And from before the wide bucket had its own entry: the same entry for both; from
    // before the tuner rotated copies: one copy.
    assert_eq!(t.wide_entry, Entry::Gemv);
    assert_eq!(t.copies, 1);
    // Binary garbage.
    std::fs::write(&path, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    assert!(tune::load_from(&path, &info).is_none());
    // Storing over a corrupt file replaces it.
    let t = sample(Entry::Gemv);
    tune::store_to(&path, &info, &t).unwrap();
    assert_eq!(tune::load_from(&path, &info).unwrap().rows, t.rows);
    std::fs::remove_file(&path).unwrap();
    // A directory where the file should be.
    std::fs::create_dir(&path).unwrap();
    assert!(tune::load_from(&path, &info).is_none());
}

/// Every GEMV entry this adapter can run with every allowed ROWS value (per bucket) against
/// the CPU reference, q4_0, with row and column tails.
#[test]
fn every_rows_value_matches_the_reference() {
    let ctx = ctx();
    let subgroups = ctx.device.features().contains(wgpu::Features::SUBGROUP);
    let mut configs = vec![(false, false), (false, true)];
    if subgroups {
        configs.push((true, false));
    }
    let mut failures = Vec::new();
    let mut cases = 0;
    for (sg, texture_gemv) in configs {
        // Every value in both buckets, and two mixed settings.
        let mut settings: Vec<GemvRows> = (1..=GEMV_MAX_ROWS).map(GemvRows::fixed).collect();
        // The last runs one column (the narrow bucket alternates 1 and 2 columns): the texture
        // GEMV's twice the most rows for q4_0 (texture_gemv_rows).
        for (narrow, wide) in [(1, GEMV_MAX_ROWS), (GEMV_MAX_ROWS, 3), (GEMV_MAX_ROWS, 2)] {
            settings.push(GemvRows {
                narrow: Some(narrow),
                wide: Some(wide),
            });
        }
        for (s, gemv_rows) in settings.into_iter().enumerate() {
            let config = KernelConfig {
                subgroups: sg,
                texture_gemv,
                texture_x_storage: false,
                tiled_gemm: true,
                coop_matrix: false,
                coop_wide_tile: false,
                gemv_rows,
                // The rows against whole chunks per lane and chunks shared by 2 or 4 lanes.
                gemv_steps: GemvSteps {
                    narrow: Some([8, 4, 2][gemv_rows.narrow.unwrap_or(0) as usize % 3]),
                    wide: Some([1, 2, 4, 8][gemv_rows.wide.unwrap_or(0) as usize % 4]),
                },
                // And against 1 to 4 chunks loaded ahead.
                gemv_unroll: Some(1 + gemv_rows.wide.unwrap_or(0) % 4),
                // Each entry with its own rows (the wide bucket's lane group is the one the
                // config names: run in tuner_picks_allowed_values and kernels_variants).
                gemv_wide_workgroup: false,
                act: wgquant::gpu::ActType::F32,
            };
            let kernels = Kernels::with_config(&ctx.device, Format::Q4_0, config).unwrap();
            // One batch in each bucket (each a pipeline of its own, so two per setting keep
            // lavapipe's compile time in check); across the settings every width 1..=8 runs.
            // Rows prime (no multiple of any ROWS), k an odd number of chunks.
            let narrow = 1 + s % 2;
            let wide = 3 + s % 6;
            for (i, (m, k, n)) in [(37, 96, narrow), (29, 160, wide)].into_iter().enumerate() {
                let r = verify::matmul_case(ctx, &kernels, m, k, n, 900 + i as u64).unwrap();
                cases += 1;
                if !r.passed() {
                    failures.push(format!("{config:?} {r:?}"));
                }
            }
        }
    }
    assert!(cases > 0);
    common::assert_no_failures(&failures);
}

/// Steps per lane below a whole chunk, with every format, on the buffer GEMVs this adapter
/// can run (workgroup-memory and subgroup reduction), against the CPU reference: sharing a
/// chunk among lanes moves
/// which lane unpacks which 4-value step of a chunk, so every format's unpacking runs at
/// steps that are no longer compile-time constants. Rows and columns with tails.
#[test]
fn every_steps_value_matches_the_reference() {
    let ctx = ctx();
    let mut sgs = vec![false];
    if ctx.device.features().contains(wgpu::Features::SUBGROUP) {
        sgs.push(true);
    }
    let mut failures = Vec::new();
    let mut cases = 0;
    for sg in sgs {
        // 4 (the GPU default) for every format, 1 (a lane per x vec4) for a few; 8 and 2
        // run in every_rows_value_matches_the_reference.
        for steps in [4, 1] {
            let config = KernelConfig {
                subgroups: sg,
                texture_gemv: false,
                texture_x_storage: false,
                tiled_gemm: true,
                coop_matrix: false,
                coop_wide_tile: false,
                gemv_rows: GemvRows {
                    narrow: Some(3),
                    wide: Some(2),
                },
                gemv_steps: GemvSteps::fixed(steps),
                gemv_unroll: None,
                gemv_wide_workgroup: false,
                act: wgquant::gpu::ActType::F32,
            };
            let formats = if steps == 4 {
                Format::all()
            } else {
                vec![Format::Q4_0, Format::Q8_0, Format::Q6_K, Format::Q2_K]
            };
            for format in formats {
                let kernels = Kernels::with_config(&ctx.device, format, config).unwrap();
                // k: three K-quant super-blocks, six chunks of 1-bit codes; 13 rows; one
                // and five columns.
                let k = 768;
                for (i, n) in [1, 5].into_iter().enumerate() {
                    let seed = 1300 + steps as u64 * 10 + i as u64;
                    let r = verify::matmul_case(ctx, &kernels, 13, k, n, seed).unwrap();
                    cases += 1;
                    if !r.passed() {
                        failures.push(format!("steps {steps} subgroups {sg} {r:?}"));
                    }
                }
            }
        }
    }
    assert!(cases > 0);
    common::assert_no_failures(&failures);
}

#[test]
fn invalid_steps_are_a_typed_error() {
    let ctx = ctx();
    for bad in [0, 3, 16] {
        for gemv_steps in [
            GemvSteps {
                narrow: Some(bad),
                wide: None,
            },
            GemvSteps {
                narrow: Some(4),
                wide: Some(bad),
            },
        ] {
            let config = KernelConfig {
                gemv_steps,
                ..KernelConfig::untuned(&ctx.device)
            };
            let r = Kernels::with_config(&ctx.device, Format::Q4_0, config);
            assert!(
                matches!(r, Err(wgquant::Error::InvalidArgument(_))),
                "{bad}: {r:?}"
            );
        }
    }
}

#[test]
fn invalid_rows_are_a_typed_error() {
    let ctx = ctx();
    let base = KernelConfig::untuned(&ctx.device);
    for bad in [
        GemvRows {
            narrow: Some(0),
            wide: None,
        },
        GemvRows {
            narrow: None,
            wide: Some(GEMV_MAX_ROWS + 1),
        },
        GemvRows::fixed(16),
    ] {
        let config = KernelConfig {
            gemv_rows: bad,
            ..base
        };
        let r = Kernels::with_config(&ctx.device, Format::Q4_0, config);
        assert!(
            matches!(r, Err(wgquant::Error::InvalidArgument(_))),
            "{bad:?}: {r:?}"
        );
    }
}
