//! The benchmark timer's run order (no timing assertions: speed belongs in benchmarks).

mod common;

use common::ctx;
use std::cell::RefCell;
use wgquant::bench::{Timed, Timer};

/// An empty compute pass that notes its name each time it is timed.
struct Named<'a> {
    name: char,
    timed: &'a RefCell<String>,
}

impl Timed for Named<'_> {
    fn encode_timed(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        timestamp_writes: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) {
        if timestamp_writes.is_some() {
            self.timed.borrow_mut().push(self.name);
        }
        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wgquant timer test"),
            timestamp_writes,
        });
    }
}

#[test]
fn paired_runs_alternate_so_even_runs_are_the_ops_and_odd_ones_the_baseline() {
    let ctx = ctx();
    if !ctx
        .device
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY)
    {
        eprintln!("skipped: the adapter has no timestamp queries");
        return;
    }
    let timed = RefCell::new(String::new());
    let op = |name| Named {
        name,
        timed: &timed,
    };
    // Three copies of the ops, two of the baseline; 5 runs each, in batches of at most 3.
    let (ops, baseline) = ([op('a'), op('b'), op('c')], [op('X'), op('Y')]);
    let timer = Timer::new(ctx, 3);
    let (a, b) = timer.time_paired(&ops, &baseline, 1, 5).unwrap();
    assert_eq!(*timed.borrow(), "aXbYcXaYbX");
    assert!(a >= 0.0 && b >= 0.0, "{a} {b}");
}
