// The matrix kernels of the train-sae example in WebAssembly SIMD (AssemblyScript; compiled by
// scripts/build-wasm.mjs into dist/wasm/train-sae.wasm).
//
// Every pointer is a byte address in the imported (shared) memory; every matrix is row-major
// float32, `[rows, columns]`. The module uses no memory of its own (no data segments, no stack):
// only the pointers it is given. A pointer of 0 means "none" (for an optional bias).
//
// What an SAE step costs, and where the sparsity of ReLU codes is used:
// - denseNT (the encoder, A · Bᵀ): dense, the bulk of the work; 4 rows of A by 2 rows of B per
//   micro-kernel (8 f32x4 accumulators), over tiles of 32 rows of B so that a tile stays in cache;
// - sparseNN (the decoder, S · B), maskedNT (the code gradient, masked A · Bᵀ) and sparseTN (the
//   weight gradients, Sᵀ · A): skip every zero of the sparse operand, 4 at a time (one SIMD compare),
//   so their cost follows the number of active codes, not the dictionary size.

@inline
function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** Dot product of `k` floats at `a` and `b`. */
@inline
function dot(a: usize, b: usize, k: i32): f32 {
  const k4 = <usize>(k & ~3) << 2;
  let acc0 = f32x4.splat(0);
  let acc1 = f32x4.splat(0);
  let i: usize = 0;
  for (; i + 32 <= k4; i += 32) {
    acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + i), v128.load(b + i)));
    acc1 = f32x4.add(acc1, f32x4.mul(v128.load(a + i + 16), v128.load(b + i + 16)));
  }
  for (; i < k4; i += 16) acc0 = f32x4.add(acc0, f32x4.mul(v128.load(a + i), v128.load(b + i)));
  let s = hsum(f32x4.add(acc0, acc1));
  for (let j = k & ~3; j < k; j++) s += load<f32>(a + (<usize>j << 2)) * load<f32>(b + (<usize>j << 2));
  return s;
}

/** `o[0..k) += s * x[0..k)`. */
@inline
function axpy(o: usize, x: usize, s: f32, k: i32): void {
  const k4 = <usize>(k & ~3) << 2;
  const sv = f32x4.splat(s);
  for (let i: usize = 0; i < k4; i += 16) v128.store(o + i, f32x4.add(v128.load(o + i), f32x4.mul(v128.load(x + i), sv)));
  for (let j = k & ~3; j < k; j++) {
    const p = <usize>j << 2;
    store<f32>(o + p, load<f32>(o + p) + s * load<f32>(x + p));
  }
}

@inline
function finish(v: f32, bias: usize, n: i32, relu: i32): f32 {
  let r = v;
  if (bias != 0) r += load<f32>(bias + (<usize>n << 2));
  if (relu != 0 && !(r > 0)) r = 0;
  return r;
}

/**
 * `out[m, n] = dot(a[m, :], b[n, :]) + bias[n]`, then `max(0, ·)` when `relu` is non-zero:
 * `out = A · Bᵀ (+ bias)`, A `[M, K]`, B `[N, K]`, out `[M, N]`; `bias` may be 0 (none).
 */
export function denseNT(a: usize, b: usize, bias: usize, out: usize, M: i32, N: i32, K: i32, relu: i32): void {
  const row = <usize>K << 2;
  const k4 = <usize>(K & ~3) << 2;
  const TILE = 32;
  for (let n0 = 0; n0 < N; n0 += TILE) {
    const n1 = min(n0 + TILE, N);
    let m = 0;
    for (; m + 4 <= M; m += 4) {
      const a0 = a + <usize>m * row;
      const a1 = a0 + row;
      const a2 = a1 + row;
      const a3 = a2 + row;
      let n = n0;
      for (; n + 2 <= n1; n += 2) {
        const b0 = b + <usize>n * row;
        const b1 = b0 + row;
        let s00 = f32x4.splat(0);
        let s01 = f32x4.splat(0);
        let s10 = f32x4.splat(0);
        let s11 = f32x4.splat(0);
        let s20 = f32x4.splat(0);
        let s21 = f32x4.splat(0);
        let s30 = f32x4.splat(0);
        let s31 = f32x4.splat(0);
        for (let i: usize = 0; i < k4; i += 16) {
          const y0 = v128.load(b0 + i);
          const y1 = v128.load(b1 + i);
          const x0 = v128.load(a0 + i);
          s00 = f32x4.add(s00, f32x4.mul(x0, y0));
          s01 = f32x4.add(s01, f32x4.mul(x0, y1));
          const x1 = v128.load(a1 + i);
          s10 = f32x4.add(s10, f32x4.mul(x1, y0));
          s11 = f32x4.add(s11, f32x4.mul(x1, y1));
          const x2 = v128.load(a2 + i);
          s20 = f32x4.add(s20, f32x4.mul(x2, y0));
          s21 = f32x4.add(s21, f32x4.mul(x2, y1));
          const x3 = v128.load(a3 + i);
          s30 = f32x4.add(s30, f32x4.mul(x3, y0));
          s31 = f32x4.add(s31, f32x4.mul(x3, y1));
        }
        let r00 = hsum(s00);
        let r01 = hsum(s01);
        let r10 = hsum(s10);
        let r11 = hsum(s11);
        let r20 = hsum(s20);
        let r21 = hsum(s21);
        let r30 = hsum(s30);
        let r31 = hsum(s31);
        for (let j = K & ~3; j < K; j++) {
          const p = <usize>j << 2;
          const y0 = load<f32>(b0 + p);
          const y1 = load<f32>(b1 + p);
          r00 += load<f32>(a0 + p) * y0;
          r01 += load<f32>(a0 + p) * y1;
          r10 += load<f32>(a1 + p) * y0;
          r11 += load<f32>(a1 + p) * y1;
          r20 += load<f32>(a2 + p) * y0;
          r21 += load<f32>(a2 + p) * y1;
          r30 += load<f32>(a3 + p) * y0;
          r31 += load<f32>(a3 + p) * y1;
        }
        const o = out + ((<usize>m * <usize>N + <usize>n) << 2);
        const orow = <usize>N << 2;
        store<f32>(o, finish(r00, bias, n, relu));
        store<f32>(o + 4, finish(r01, bias, n + 1, relu));
        store<f32>(o + orow, finish(r10, bias, n, relu));
        store<f32>(o + orow + 4, finish(r11, bias, n + 1, relu));
        store<f32>(o + 2 * orow, finish(r20, bias, n, relu));
        store<f32>(o + 2 * orow + 4, finish(r21, bias, n + 1, relu));
        store<f32>(o + 3 * orow, finish(r30, bias, n, relu));
        store<f32>(o + 3 * orow + 4, finish(r31, bias, n + 1, relu));
      }
      for (; n < n1; n++) {
        const bn = b + <usize>n * row;
        for (let r = 0; r < 4; r++) {
          const v = dot(a0 + <usize>r * row, bn, K);
          store<f32>(out + ((<usize>(m + r) * <usize>N + <usize>n) << 2), finish(v, bias, n, relu));
        }
      }
    }
    for (; m < M; m++) {
      const am = a + <usize>m * row;
      for (let n = n0; n < n1; n++) {
        store<f32>(out + ((<usize>m * <usize>N + <usize>n) << 2), finish(dot(am, b + <usize>n * row, K), bias, n, relu));
      }
    }
  }
}

/**
 * `out = S · B (+ bias)`, S `[M, N]` sparse (its zeros are skipped), B `[N, K]`, out `[M, K]`;
 * `bias` `[K]` may be 0 (none).
 */
export function sparseNN(s: usize, b: usize, bias: usize, out: usize, M: i32, N: i32, K: i32): void {
  const row = <usize>K << 2;
  const zero = f32x4.splat(0);
  const n4 = N & ~3;
  for (let m = 0; m < M; m++) {
    const o = out + <usize>m * row;
    if (bias != 0) memory.copy(o, bias, row);
    else memory.fill(o, 0, row);
    const sm = s + ((<usize>m * <usize>N) << 2);
    for (let n = 0; n < n4; n += 4) {
      const v = v128.load(sm + (<usize>n << 2));
      if (!v128.any_true(f32x4.ne(v, zero))) continue;
      for (let j = 0; j < 4; j++) {
        const x = load<f32>(sm + (<usize>(n + j) << 2));
        if (x != 0) axpy(o, b + <usize>(n + j) * row, x, K);
      }
    }
    for (let n = n4; n < N; n++) {
      const x = load<f32>(sm + (<usize>n << 2));
      if (x != 0) axpy(o, b + <usize>n * row, x, K);
    }
  }
}

/**
 * `out[m, n] = mask[m, n] > 0 ? dot(a[m, :], b[n, :]) + add : 0`: the gradient of a loss through a
 * ReLU (mask: the codes) for `out = A · Bᵀ + add`, computed only where the mask is positive.
 * A `[M, K]`, B `[N, K]`, mask and out `[M, N]`.
 */
export function maskedNT(a: usize, b: usize, mask: usize, add: f32, out: usize, M: i32, N: i32, K: i32): void {
  const row = <usize>K << 2;
  const zero = f32x4.splat(0);
  const n4 = N & ~3;
  for (let m = 0; m < M; m++) {
    const am = a + <usize>m * row;
    const mm = mask + ((<usize>m * <usize>N) << 2);
    const om = out + ((<usize>m * <usize>N) << 2);
    for (let n = 0; n < n4; n += 4) {
      const p = <usize>n << 2;
      const v = v128.load(mm + p);
      if (!v128.any_true(f32x4.gt(v, zero))) {
        v128.store(om + p, zero);
        continue;
      }
      for (let j = 0; j < 4; j++) {
        const q = <usize>(n + j) << 2;
        store<f32>(om + q, load<f32>(mm + q) > 0 ? dot(am, b + <usize>(n + j) * row, K) + add : 0);
      }
    }
    for (let n = n4; n < N; n++) {
      const q = <usize>n << 2;
      store<f32>(om + q, load<f32>(mm + q) > 0 ? dot(am, b + <usize>n * row, K) + add : 0);
    }
  }
}

/**
 * `out = Sᵀ · A`, S `[M, N]` sparse (its zeros are skipped), A `[M, K]`, out `[N, K]` (overwritten).
 */
export function sparseTN(s: usize, a: usize, out: usize, M: i32, N: i32, K: i32): void {
  const row = <usize>K << 2;
  const zero = f32x4.splat(0);
  const n4 = N & ~3;
  memory.fill(out, 0, <usize>N * row);
  for (let m = 0; m < M; m++) {
    const am = a + <usize>m * row;
    const sm = s + ((<usize>m * <usize>N) << 2);
    for (let n = 0; n < n4; n += 4) {
      const v = v128.load(sm + (<usize>n << 2));
      if (!v128.any_true(f32x4.ne(v, zero))) continue;
      for (let j = 0; j < 4; j++) {
        const x = load<f32>(sm + (<usize>(n + j) << 2));
        if (x != 0) axpy(out + <usize>(n + j) * row, am, x, K);
      }
    }
    for (let n = n4; n < N; n++) {
      const x = load<f32>(sm + (<usize>n << 2));
      if (x != 0) axpy(out + <usize>n * row, am, x, K);
    }
  }
}

/**
 * One Adam step on `count` parameters: `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g²`,
 * `p -= lr (m / c1) / (sqrt(v / c2) + eps)` with the bias corrections `c1 = 1 - b1^t`, `c2 = 1 - b2^t`.
 */
export function adam(p: usize, g: usize, m: usize, v: usize, count: i32, lr: f32, b1: f32, b2: f32, eps: f32, c1: f32, c2: f32): void {
  const n4 = <usize>(count & ~3) << 2;
  const vb1 = f32x4.splat(b1);
  const vb1c = f32x4.splat(1 - b1);
  const vb2 = f32x4.splat(b2);
  const vb2c = f32x4.splat(1 - b2);
  const step = f32x4.splat(lr / c1);
  const inv2 = f32x4.splat(1 / c2);
  const veps = f32x4.splat(eps);
  for (let i: usize = 0; i < n4; i += 16) {
    const gi = v128.load(g + i);
    const mi = f32x4.add(f32x4.mul(vb1, v128.load(m + i)), f32x4.mul(vb1c, gi));
    const vi = f32x4.add(f32x4.mul(vb2, v128.load(v + i)), f32x4.mul(vb2c, f32x4.mul(gi, gi)));
    v128.store(m + i, mi);
    v128.store(v + i, vi);
    const d = f32x4.add(f32x4.sqrt(f32x4.mul(vi, inv2)), veps);
    v128.store(p + i, f32x4.sub(v128.load(p + i), f32x4.div(f32x4.mul(step, mi), d)));
  }
  for (let j = count & ~3; j < count; j++) {
    const q = <usize>j << 2;
    const gi = load<f32>(g + q);
    const mi = b1 * load<f32>(m + q) + (1 - b1) * gi;
    const vi = b2 * load<f32>(v + q) + (1 - b2) * gi * gi;
    store<f32>(m + q, mi);
    store<f32>(v + q, vi);
    store<f32>(p + q, load<f32>(p + q) - (lr / c1) * mi / (Mathf.sqrt(vi / c2) + eps));
  }
}

/** `g[n] -= (g[n] · w[n] / |w[n]|²) w[n]` for each row: removes the part of a gradient that would change a row's norm. */
export function projectRows(w: usize, g: usize, N: i32, K: i32): void {
  const row = <usize>K << 2;
  for (let n = 0; n < N; n++) {
    const wn = w + <usize>n * row;
    const gn = g + <usize>n * row;
    const ww = dot(wn, wn, K);
    if (ww > 0) axpy(gn, wn, -dot(gn, wn, K) / ww, K);
  }
}

/** Scales every row of `w` `[N, K]` to unit norm (a zero row stays zero). */
export function normaliseRows(w: usize, N: i32, K: i32): void {
  const row = <usize>K << 2;
  const k4 = <usize>(K & ~3) << 2;
  for (let n = 0; n < N; n++) {
    const wn = w + <usize>n * row;
    const norm = Mathf.sqrt(dot(wn, wn, K));
    if (!(norm > 0)) continue;
    const inv: f32 = <f32>1.0 / norm;
    const sv = f32x4.splat(inv);
    for (let i: usize = 0; i < k4; i += 16) v128.store(wn + i, f32x4.mul(v128.load(wn + i), sv));
    for (let j = K & ~3; j < K; j++) store<f32>(wn + (<usize>j << 2), load<f32>(wn + (<usize>j << 2)) * inv);
  }
}
