//! CPU f32 kernels for the work that runs on the host: the calibration pass over a model
//! (`llama::calibrate`), Hessians and output errors of the quantization methods.
//!
//! One product does it all: `C = A B^T` with both operands row-major along the summed
//! dimension ([`matmul_nt`]), so every inner loop is a contiguous dot product. The micro
//! kernel keeps a 4 x 4 tile of dot products in eight-lane accumulators; on x86-64 it is
//! compiled a second time with AVX2 and FMA and that copy is chosen at run time where the
//! CPU has them (results then differ from the portable copy in the last bits, as any
//! change of summation order does). Accumulation is f32: callers that sum over many
//! thousands of terms (Hessians) add chunks of a few hundred into f64 themselves.

/// Lanes of one accumulator: the compiler turns `[f32; LANES]` arithmetic into vector
/// instructions (two SSE or one AVX register).
const LANES: usize = 8;
/// Rows of B per cache block: 64 rows of up to 2048 f32 stay in the L2 cache while every
/// 4-row group of A runs over them.
const B_BLOCK: usize = 64;

/// A row-major matrix view: `rows` rows of `cols` values, row `i` at `data[i * stride..]`.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub stride: usize,
}

impl<'a> View<'a> {
    /// A dense `rows` x `cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> View<'a> {
        assert!(
            data.len() >= rows * cols,
            "{rows} x {cols} view of {} values",
            data.len()
        );
        View {
            data,
            rows,
            cols,
            stride: cols,
        }
    }

    /// Columns `c0..c0 + cols` of every row (a strided view).
    pub fn columns(self, c0: usize, cols: usize) -> View<'a> {
        assert!(c0 + cols <= self.cols);
        View {
            data: &self.data[c0.min(self.data.len())..],
            cols,
            ..self
        }
    }

    /// Rows `r0..r0 + rows`.
    pub fn rows(self, r0: usize, rows: usize) -> View<'a> {
        assert!(r0 + rows <= self.rows);
        View {
            data: &self.data[(r0 * self.stride).min(self.data.len())..],
            rows,
            ..self
        }
    }

    #[inline(always)]
    fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.stride..i * self.stride + self.cols]
    }
}

/// `C = A B^T`: `a` is m x k, `b` is n x k, the result m x n (row-major), computed on every
/// core the machine has (rows of A split between threads).
pub fn matmul_nt(a: View, b: View) -> Vec<f32> {
    let (m, n) = (a.rows, b.rows);
    let mut c = vec![0f32; m * n];
    matmul_nt_into(a, b, &mut c, n, true);
    c
}

/// `C = A B^T` into `c` (row `i` at `c[i * ldc..]`, `n` values each), overwriting it;
/// `parallel` splits A's rows across the machine's cores.
pub fn matmul_nt_into(a: View, b: View, c: &mut [f32], ldc: usize, parallel: bool) {
    assert_eq!(a.cols, b.cols, "A has {} columns, B {}", a.cols, b.cols);
    let (m, n) = (a.rows, b.rows);
    if m == 0 || n == 0 {
        return;
    }
    assert!(ldc >= n && c.len() >= (m - 1) * ldc + n, "C too small");
    let threads = if parallel {
        threads_for(m * n * a.cols)
    } else {
        1
    };
    if threads <= 1 {
        kernel(a, b, c, ldc);
        return;
    }
    // Whole groups of four rows per thread.
    let per = m.div_ceil(threads).div_ceil(4) * 4;
    std::thread::scope(|s| {
        let mut rest = c;
        let mut r0 = 0;
        while r0 < m {
            let rows = per.min(m - r0);
            let take = if r0 + rows == m {
                rest.len()
            } else {
                rows * ldc
            };
            let (mine, tail) = rest.split_at_mut(take);
            rest = tail;
            let ar = a.rows(r0, rows);
            s.spawn(move || kernel(ar, b, mine, ldc));
            r0 += rows;
        }
    });
}

/// Threads worth starting for `work` multiply-adds (a thread costs about as much as a few
/// hundred thousand of them).
pub fn threads_for(work: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |t| t.get());
    cores.min(work / (1 << 18)).max(1)
}

/// Run `f(i)` for `i` in `0..n` on every core, items handed out one at a time.
pub fn parallel_for(n: usize, f: impl Fn(usize) + Sync) {
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(n);
    if threads <= 1 {
        (0..n).for_each(f);
        return;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                f(i);
            });
        }
    });
}

fn kernel(a: View, b: View, c: &mut [f32], ldc: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { kernel_avx2(a, b, c, ldc) };
            return;
        }
    }
    kernel_body::<false>(a, b, c, ldc);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2(a: View, b: View, c: &mut [f32], ldc: usize) {
    kernel_body::<true>(a, b, c, ldc);
}

#[inline(always)]
fn fmadd<const FMA: bool>(x: f32, y: f32, acc: f32) -> f32 {
    if FMA {
        x.mul_add(y, acc)
    } else {
        acc + x * y
    }
}

#[inline(always)]
fn kernel_body<const FMA: bool>(a: View, b: View, c: &mut [f32], ldc: usize) {
    let (m, n, k) = (a.rows, b.rows, a.cols);
    let kv = k / LANES * LANES;
    for j0 in (0..n).step_by(B_BLOCK) {
        let j1 = (j0 + B_BLOCK).min(n);
        let mut i = 0;
        while i < m {
            let ir = (m - i).min(4);
            let mut j = j0;
            while j < j1 {
                let jr = (j1 - j).min(4);
                if ir == 4 && jr == 4 {
                    tile4x4::<FMA>(a, b, i, j, kv, c, ldc);
                } else {
                    for ii in i..i + ir {
                        for jj in j..j + jr {
                            c[ii * ldc + jj] = dot::<FMA>(a.row(ii), b.row(jj), kv);
                        }
                    }
                }
                j += jr;
            }
            i += ir;
        }
    }
}

/// The 16 dot products of A rows `i..i+4` and B rows `j..j+4`.
#[inline(always)]
fn tile4x4<const FMA: bool>(
    a: View,
    b: View,
    i: usize,
    j: usize,
    kv: usize,
    c: &mut [f32],
    ldc: usize,
) {
    let ar = [a.row(i), a.row(i + 1), a.row(i + 2), a.row(i + 3)];
    let br = [b.row(j), b.row(j + 1), b.row(j + 2), b.row(j + 3)];
    let mut acc = [[[0f32; LANES]; 4]; 4];
    let mut t = 0;
    while t < kv {
        let lane = |row: &[f32]| -> [f32; LANES] { row[t..t + LANES].try_into().unwrap() };
        let av = ar.map(lane);
        let bv = br.map(lane);
        for r in 0..4 {
            for s in 0..4 {
                for l in 0..LANES {
                    acc[r][s][l] = fmadd::<FMA>(av[r][l], bv[s][l], acc[r][s][l]);
                }
            }
        }
        t += LANES;
    }
    let k = a.cols;
    for (r, accr) in acc.iter().enumerate() {
        for (s, accc) in accr.iter().enumerate() {
            let mut sum = hsum(accc);
            for tt in kv..k {
                sum = fmadd::<FMA>(ar[r][tt], br[s][tt], sum);
            }
            c[(i + r) * ldc + j + s] = sum;
        }
    }
}

#[inline(always)]
fn dot<const FMA: bool>(x: &[f32], y: &[f32], kv: usize) -> f32 {
    let mut acc = [0f32; LANES];
    for (xs, ys) in x[..kv].chunks_exact(LANES).zip(y[..kv].chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] = fmadd::<FMA>(xs[l], ys[l], acc[l]);
        }
    }
    let mut sum = hsum(&acc);
    for (&p, &q) in x[kv..].iter().zip(&y[kv..]) {
        sum = fmadd::<FMA>(p, q, sum);
    }
    sum
}

#[inline(always)]
fn hsum(v: &[f32; LANES]) -> f32 {
    let h: [f32; 4] = std::array::from_fn(|l| v[l] + v[l + 4]);
    (h[0] + h[2]) + (h[1] + h[3])
}

/// `dst` (cols x rows) = the transpose of `src` (rows x cols).
pub fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut dst = vec![0f32; rows * cols];
    // Tiles of 32 x 32 keep both sides in the cache.
    for r0 in (0..rows).step_by(32) {
        for c0 in (0..cols).step_by(32) {
            for r in r0..(r0 + 32).min(rows) {
                for cc in c0..(c0 + 32).min(cols) {
                    dst[cc * rows + r] = src[r * cols + cc];
                }
            }
        }
    }
    dst
}

/// Adds `X^T X` of the `n` x `k` rows `x` into the symmetric `k` x `k` f64 accumulator `h`
/// (both triangles), summing in f32 over chunks of [`GRAM_CHUNK`] rows.
pub fn add_gram(h: &mut [f64], x: &[f32], n: usize, k: usize) {
    assert_eq!(h.len(), k * k);
    assert!(x.len() >= n * k);
    let mut part = vec![0f32; k * k];
    for r0 in (0..n).step_by(GRAM_CHUNK) {
        let rows = GRAM_CHUNK.min(n - r0);
        let xt = transpose(&x[r0 * k..(r0 + rows) * k], rows, k);
        let xt = View::new(&xt, k, rows);
        // Upper triangle only, by row blocks: block i0.. against rows i0..k.
        let blocks: Vec<usize> = (0..k).step_by(B_BLOCK).collect();
        let part_rows = SyncSlice(part.as_mut_ptr(), part.len());
        parallel_for(blocks.len(), |bi| {
            let i0 = blocks[bi];
            let ib = B_BLOCK.min(k - i0);
            // SAFETY: block bi writes rows i0..i0 + ib only, disjoint between blocks.
            let rows_out = unsafe { part_rows.rows_mut(i0 * k, ib * k) };
            matmul_nt_into(
                xt.rows(i0, ib),
                xt.rows(i0, k - i0),
                &mut rows_out[i0..],
                k,
                false,
            );
        });
        for i in 0..k {
            for j in i..k {
                let v = part[i * k + j] as f64;
                h[i * k + j] += v;
                if j != i {
                    h[j * k + i] += v;
                }
            }
        }
    }
}

/// Rows summed in f32 before [`add_gram`] adds them into f64: 1024 products of f32 lose
/// about 1e-5 relative, far below what a damped Hessian needs.
pub const GRAM_CHUNK: usize = 1024;

/// A raw slice shared between threads that write disjoint ranges of it.
#[derive(Clone, Copy)]
struct SyncSlice(*mut f32, usize);
unsafe impl Send for SyncSlice {}
unsafe impl Sync for SyncSlice {}

impl SyncSlice {
    /// # Safety
    /// No two live results may overlap.
    #[allow(clippy::mut_from_ref)]
    unsafe fn rows_mut(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(start + len <= self.1);
        std::slice::from_raw_parts_mut(self.0.add(start), len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn reference(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
        let mut c = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|t| a[i * k + t] as f64 * b[j * k + t] as f64)
                    .sum();
            }
        }
        c
    }

    /// Every tail of the 4 x 4 tile, the 8 lanes and the 64-row blocks.
    #[test]
    fn matmul_matches_f64_on_awkward_shapes() {
        let mut rng = Rng::new(5);
        for &(m, n, k) in &[
            (1, 1, 1),
            (3, 5, 7),
            (4, 4, 8),
            (9, 70, 13),
            (33, 130, 64),
            (130, 9, 200),
            (257, 66, 17),
        ] {
            let a = rng.normal_vec(m * k);
            let b = rng.normal_vec(n * k);
            let want = reference(&a, &b, m, n, k);
            for parallel in [false, true] {
                let mut got = vec![f32::NAN; m * n];
                matmul_nt_into(
                    View::new(&a, m, k),
                    View::new(&b, n, k),
                    &mut got,
                    n,
                    parallel,
                );
                for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g as f64 - w).abs() <= 1e-5 * (k as f64).sqrt() * 4.0,
                        "{m}x{n}x{k} [{i}]: {g} vs {w}"
                    );
                }
            }
        }
    }

    /// Strided views (a column range of a wider matrix) and a wider C leave the rest alone.
    #[test]
    fn strided_views_and_ldc() {
        let mut rng = Rng::new(9);
        let (m, n, k, wide) = (6, 5, 11, 20);
        let a = rng.normal_vec(m * wide);
        let b = rng.normal_vec(n * wide);
        let av = View::new(&a, m, wide).columns(3, k);
        let bv = View::new(&b, n, wide).columns(3, k);
        let ldc = n + 3;
        let mut c = vec![-7f32; m * ldc];
        matmul_nt_into(av, bv, &mut c, ldc, true);
        for i in 0..m {
            for j in 0..ldc {
                if j >= n {
                    assert_eq!(c[i * ldc + j], -7.0);
                    continue;
                }
                let w: f64 = (0..k)
                    .map(|t| a[i * wide + 3 + t] as f64 * b[j * wide + 3 + t] as f64)
                    .sum();
                assert!((c[i * ldc + j] as f64 - w).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn gram_is_x_transpose_x() {
        let mut rng = Rng::new(2);
        for &(n, k) in &[(1, 3), (300, 70), (513, 9)] {
            let x = rng.normal_vec(n * k);
            let mut h = vec![1.0f64; k * k];
            add_gram(&mut h, &x, n, k);
            for i in 0..k {
                for j in 0..k {
                    let w: f64 = 1.0
                        + (0..n)
                            .map(|t| x[t * k + i] as f64 * x[t * k + j] as f64)
                            .sum::<f64>();
                    assert!(
                        (h[i * k + j] - w).abs() <= 1e-4 * n as f64,
                        "{n}x{k} ({i},{j}): {} vs {w}",
                        h[i * k + j]
                    );
                }
            }
        }
    }

    #[test]
    fn transpose_round_trip() {
        let v: Vec<f32> = (0..35 * 70).map(|i| i as f32).collect();
        let t = transpose(&v, 35, 70);
        assert_eq!(t[3 * 35 + 2], v[2 * 70 + 3]);
        assert_eq!(transpose(&t, 70, 35), v);
    }
}
