// The fused shard pass in WebAssembly SIMD (AssemblyScript; compiled by scripts/build-wasm.mjs).
//
// Every pointer is a byte address in the imported (shared) memory. Tensors are row-major float32
// `[rows, components, features]` (components = 1 for rank 2). Byte offsets are computed in u64
// and then narrowed to usize, so no intermediate product overflows for tensors up to 4 GiB.
//
// Accuracy: absolute sums add blocks of 16 values per float32 lane (64 values a block) and carry
// each block into float64 lanes; squared errors take differences, squares and blocks of 8 values
// per lane in float32, carried the same way. Every term is non-negative, so a block's relative
// error is at most 15u (abs) or about 10u (squares) with u = 2^-24: results stay within 1e-6
// relative of a float64 loop at any size (the float64 carry adds ~1e-16 per block). A vector
// whose float32 block overflowed (a finite result is not possible in float32 but is in float64)
// is recomputed in float64, so overflow is never introduced here; NaN and infinities propagate.
// So is a vector whose squared errors sum below 2^-100, where float32 squares would underflow
// (|x| sums need no such care: float32 addition of subnormals is exact).
// readSum accumulates blocks of 16 values per float32 lane and carries each block into float64.
// Counts are exact (i32 lanes; a lane counts at most rows * features / 4 < 2^31 elements).
// positivesPass lists the fired (x > 0) entries of a shard with their counts: float32 values are
// copied, never computed, so its entries are the same bits as any other kernel's.
// learnedPositivesPass gives learnedPass's statistics (the same bits) and the entries in one read.
// featureStats makes the per-feature statistics of those entries (moments, histogram cells, top k,
// last rows) with the JavaScript parts' operations in their order: the same bits as theirs.
//
// The module uses no memory of its own (no data segments, no stack): only the pointers it gets.

/**
 * i32x4(0x7fffffff), built from a run-time value so that neither Binaryen nor V8 turns it into a
 * constant that is rematerialized inside the loop (`features` is never negative).
 */
@inline
function absMask(features: i32): v128 {
  return i32x4.splat(0x7fffffff & ~(features & 0x80000000));
}

/** `total` plus the four lanes of float32x4 `a`, each promoted exactly. */
@inline
function carry1(total: v128, a: v128): v128 {
  return f64x2.add(total, f64x2.add(f64x2.promote_low_f32x4(a), f64x2.promote_low_f32x4(v128.shuffle<f32>(a, a, 2, 3, 2, 3))));
}

/** The float64 sum of |x| over `n` float32 values at `p` (the slow path for an overflowed block). */
function absSum64(p: usize, n: usize): f64 {
  let s: f64 = 0;
  for (let f: usize = 0; f < n; f++) s += Math.abs(<f64>load<f32>(p + (f << 2)));
  return s;
}

@inline
function hsum64(v: v128): f64 {
  return f64x2.extract_lane(v, 0) + f64x2.extract_lane(v, 1);
}

@inline
function hsum32(v: v128): u32 {
  return <u32>(i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1) + i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3));
}

/** Byte offset of element `(row * components + component) * features`, computed in u64. */
@inline
function offsetOf(row: i32, components: i32, component: i32, features: i32): usize {
  return <usize>((<u64>row * <u64>components + <u64>component) * <u64>features * 4);
}

/**
 * One vector (row, component) of the learned activations: statistics of its `features` values.
 * `nz` is the component's running non-zero count as negative i32 lanes (a true mask is -1).
 */
@inline
function oneVector(
  p: usize,
  features: i32,
  absAt: usize,
  fc: usize,
  nzIn: v128,
  doAbs: bool,
  doNz: bool,
  doFired: bool,
): v128 {
  const zero = f32x4.splat(0);
  const mask = absMask(features);
  let acc = f64x2.splat(0);
  let nz = nzIn;
  const f4 = <usize>(features & ~3);
  const n = <usize>features;
  const end = f4 << 2;
  let b: usize = 0;
  while (b < end) {
    // A block of at most 16 vectors (16 values per lane) in float32, then carried.
    const blockEnd = b + 256 < end ? b + 256 : end;
    let a = f32x4.splat(0);
    for (; b < blockEnd; b += 16) {
      const v = v128.load(p + b);
      if (doAbs) a = f32x4.add(a, v128.and(v, mask));
      if (doNz) nz = i32x4.add(nz, f32x4.ne(v, zero));
      if (doFired) v128.store(fc + b, i32x4.sub(v128.load(fc + b), f32x4.gt(v, zero)));
    }
    if (doAbs) acc = carry1(acc, a);
  }
  let s: f64 = 0;
  let nzTail: i32 = 0;
  for (let f: usize = f4; f < n; f++) {
    const value = load<f32>(p + (f << 2));
    if (doAbs) s += <f64>Mathf.abs(value);
    if (doNz) nzTail += <i32>(value != 0);
    if (doFired) {
      if (value > 0) store<u32>(fc + (f << 2), load<u32>(fc + (f << 2)) + 1);
    }
  }
  if (doAbs) {
    let total = hsum64(acc) + s;
    if (!isFinite(total)) total = absSum64(p, n);
    store<f64>(absAt, total);
  }
  if (doNz) nz = i32x4.sub(nz, i32x4.replace_lane(i32x4.splat(0), 0, nzTail));
  return nz;
}

/** Four rows at once: the fired counts are read and written once per four rows. */
@inline
function fourRows(
  x: usize,
  row: i32,
  rowStart: i32,
  components: i32,
  features: i32,
  absOut: usize,
  nonZeroOut: usize,
  firedOut: usize,
  doAbs: bool,
  doNz: bool,
  doFired: bool,
): void {
  const zero = f32x4.splat(0);
  const mask = absMask(features);
  const rowBytes = <usize>(<u64>components * <u64>features * 4);
  const f4 = <usize>(features & ~3);
  const n = <usize>features;
  for (let c: i32 = 0; c < components; c++) {
    const p0 = x + offsetOf(row, components, c, features);
    const p1 = p0 + rowBytes;
    const p2 = p1 + rowBytes;
    const p3 = p2 + rowBytes;
    const fc = firedOut + (<usize>c) * (n << 2);
    let a0 = f64x2.splat(0);
    let a1 = f64x2.splat(0);
    let a2 = f64x2.splat(0);
    let a3 = f64x2.splat(0);
    let nz = i32x4.splat(0);
    const end = f4 << 2;
    let b: usize = 0;
    while (b < end) {
      // A block of at most 16 vectors per row (16 values per lane) in float32, then carried.
      const blockEnd = b + 256 < end ? b + 256 : end;
      let q0 = f32x4.splat(0);
      let q1 = f32x4.splat(0);
      let q2 = f32x4.splat(0);
      let q3 = f32x4.splat(0);
      for (; b < blockEnd; b += 16) {
        const v0 = v128.load(p0 + b);
        const v1 = v128.load(p1 + b);
        const v2 = v128.load(p2 + b);
        const v3 = v128.load(p3 + b);
        // |x| as bits: x != 0 exactly where they are not 0 (NaN included, -0 not), so the zero test
        // is an integer compare, which issues beside the float additions and compares (5% faster).
        const m0 = v128.and(v0, mask);
        const m1 = v128.and(v1, mask);
        const m2 = v128.and(v2, mask);
        const m3 = v128.and(v3, mask);
        if (doAbs) {
          q0 = f32x4.add(q0, m0);
          q1 = f32x4.add(q1, m1);
          q2 = f32x4.add(q2, m2);
          q3 = f32x4.add(q3, m3);
        }
        if (doNz) {
          nz = i32x4.add(nz, i32x4.add(i32x4.add(i32x4.eq(m0, zero), i32x4.eq(m1, zero)), i32x4.add(i32x4.eq(m2, zero), i32x4.eq(m3, zero))));
        }
        if (doFired) {
          const fired = i32x4.add(
            i32x4.add(f32x4.gt(v0, zero), f32x4.gt(v1, zero)),
            i32x4.add(f32x4.gt(v2, zero), f32x4.gt(v3, zero)),
          );
          v128.store(fc + b, i32x4.sub(v128.load(fc + b), fired));
        }
      }
      if (doAbs) {
        a0 = carry1(a0, q0);
        a1 = carry1(a1, q1);
        a2 = carry1(a2, q2);
        a3 = carry1(a3, q3);
      }
    }
    // Scalar tail (features not divisible by 4), row by row.
    let s0: f64 = 0;
    let s1: f64 = 0;
    let s2: f64 = 0;
    let s3: f64 = 0;
    let nzTail: i32 = 0;
    for (let f: usize = f4; f < n; f++) {
      const o = f << 2;
      const x0 = load<f32>(p0 + o);
      const x1 = load<f32>(p1 + o);
      const x2 = load<f32>(p2 + o);
      const x3 = load<f32>(p3 + o);
      if (doAbs) {
        s0 += <f64>Mathf.abs(x0);
        s1 += <f64>Mathf.abs(x1);
        s2 += <f64>Mathf.abs(x2);
        s3 += <f64>Mathf.abs(x3);
      }
      if (doNz) nzTail += <i32>(x0 != 0) + <i32>(x1 != 0) + <i32>(x2 != 0) + <i32>(x3 != 0);
      if (doFired) {
        const k = <u32>(<i32>(x0 > 0) + <i32>(x1 > 0) + <i32>(x2 > 0) + <i32>(x3 > 0));
        store<u32>(fc + o, load<u32>(fc + o) + k);
      }
    }
    if (doAbs) {
      const vecs = <usize>components;
      const at = absOut + ((<usize>(row - rowStart) * vecs + <usize>c) << 3);
      let t0 = hsum64(a0) + s0;
      let t1 = hsum64(a1) + s1;
      let t2 = hsum64(a2) + s2;
      let t3 = hsum64(a3) + s3;
      // A float32 block that overflowed: that vector again in float64 (NaN and inf inputs give the same).
      if (!isFinite(t0 + t1 + t2 + t3)) {
        if (!isFinite(t0)) t0 = absSum64(p0, n);
        if (!isFinite(t1)) t1 = absSum64(p1, n);
        if (!isFinite(t2)) t2 = absSum64(p2, n);
        if (!isFinite(t3)) t3 = absSum64(p3, n);
      }
      store<f64>(at, t0);
      store<f64>(at + (vecs << 3), t1);
      store<f64>(at + (vecs << 4), t2);
      store<f64>(at + (vecs << 3) * 3, t3);
    }
    if (doNz) {
      const at = nonZeroOut + (<usize>c << 2);
      // nz holds minus the zeros among the 4 * f4 values read four at a time.
      store<u32>(at, load<u32>(at) + <u32>nzTail + <u32>(f4 << 2) + hsum32(nz));
    }
  }
}

@inline
function pass(
  x: usize,
  rowStart: i32,
  rowEnd: i32,
  components: i32,
  features: i32,
  absOut: usize,
  nonZeroOut: usize,
  firedOut: usize,
  doAbs: bool,
  doNz: bool,
  doFired: bool,
): void {
  let row = rowStart;
  for (; row + 4 <= rowEnd; row += 4) {
    fourRows(x, row, rowStart, components, features, absOut, nonZeroOut, firedOut, doAbs, doNz, doFired);
  }
  const n = <usize>features;
  for (; row < rowEnd; row++) {
    for (let c: i32 = 0; c < components; c++) {
      const p = x + offsetOf(row, components, c, features);
      const absAt = absOut + ((<usize>(row - rowStart) * <usize>components + <usize>c) << 3);
      const fc = firedOut + (<usize>c) * (n << 2);
      const nz = oneVector(p, features, absAt, fc, i32x4.splat(0), doAbs, doNz, doFired);
      if (doNz) {
        const at = nonZeroOut + (<usize>c << 2);
        store<u32>(at, load<u32>(at) - hsum32(nz));
      }
    }
  }
}

/**
 * Statistics of rows `[rowStart, rowEnd)` of the learned activations at `x`, in one pass:
 * `flags & 1` per-vector sums of |x| (f64 `absOut[(r - rowStart) * components + c]`),
 * `flags & 2` per-component counts of x != 0 (u32 `nonZeroOut[c]`; NaN counts),
 * `flags & 4` per-(component, feature) counts of x > 0 (u32 `firedOut[c * features + f]`).
 * The outputs asked for are zeroed first, unless `flags & 8`: then the counts are added to those
 * already there (a shard passed in several calls of consecutive rows gives the same outputs).
 */
export function learnedPass(
  x: usize,
  rowStart: i32,
  rowEnd: i32,
  components: i32,
  features: i32,
  absOut: usize,
  nonZeroOut: usize,
  firedOut: usize,
  flags: i32,
): void {
  const rows = <usize>(rowEnd - rowStart);
  const vecs = <usize>components;
  if (!(flags & 8)) {
    if (flags & 1) memory.fill(absOut, 0, (rows * vecs) << 3);
    if (flags & 2) memory.fill(nonZeroOut, 0, vecs << 2);
    if (flags & 4) memory.fill(firedOut, 0, <usize>(<u64>components * <u64>features * 4));
  }
  switch (flags & 7) {
    case 1:
      pass(x, rowStart, rowEnd, components, features, absOut, nonZeroOut, firedOut, true, false, false);
      break;
    case 2:
      pass(x, rowStart, rowEnd, components, features, absOut, nonZeroOut, firedOut, false, true, false);
      break;
    case 3:
      pass(x, rowStart, rowEnd, components, features, absOut, nonZeroOut, firedOut, true, true, false);
      break;
    case 4:
      pass(x, rowStart, rowEnd, components, features, absOut, nonZeroOut, firedOut, false, false, true);
      break;
    case 5:
      pass(x, rowStart, rowEnd, components, features, absOut, nonZeroOut, firedOut, true, false, true);
      break;
    case 6:
      pass(x, rowStart, rowEnd, components, features, absOut, nonZeroOut, firedOut, false, true, true);
      break;
    case 7:
      pass(x, rowStart, rowEnd, components, features, absOut, nonZeroOut, firedOut, true, true, true);
      break;
    default:
      break;
  }
}

/**
 * The `n` u32 counts at `src` as float64 (exact) at `dst`: the fired counts leave the kernel as
 * float64, converted here 4 at a time rather than one by one in JavaScript.
 */
export function countsToF64(src: usize, dst: usize, n: i32): void {
  const count = <usize>n;
  const n4 = count & ~(<usize>3);
  let i: usize = 0;
  for (; i < n4; i += 4) {
    const v = v128.load(src + (i << 2));
    v128.store(dst + (i << 3), f64x2.convert_low_i32x4_u(v));
    v128.store(dst + (i << 3), f64x2.convert_low_i32x4_u(v128.shuffle<i32>(v, v, 2, 3, 2, 3)), 16);
  }
  for (; i < count; i++) store<f64>(dst + (i << 3), <f64>load<u32>(src + (i << 2)));
}

/** 2^-100: a vector's float32 squared-error sum below it is recomputed in float64. */
const TINY: f64 = 7.888609052210118e-31;

/** The float64 sum of (d - s)^2 over `n` float32 pairs (the slow path for an overflowed block). */
function squaredError64(pd: usize, ps: usize, n: usize): f64 {
  let s: f64 = 0;
  for (let f: usize = 0; f < n; f++) {
    const e = <f64>load<f32>(pd + (f << 2)) - <f64>load<f32>(ps + (f << 2));
    s += e * e;
  }
  return s;
}

/**
 * Per-vector mean over features of (decoded - source)^2 for rows `[rowStart, rowEnd)`, into f64
 * `out[(r - rowStart) * components + c]`. Differences, squares and blocks of 8 values per lane
 * are taken in float32, each block carried into float64.
 */
export function msePass(
  decoded: usize,
  source: usize,
  rowStart: i32,
  rowEnd: i32,
  components: i32,
  features: i32,
  out: usize,
): void {
  const f4 = <usize>(features & ~3);
  const n = <usize>features;
  const end = f4 << 2;
  const vecBytes = n << 2;
  const vectors = <usize>(rowEnd - rowStart) * <usize>components;
  const first = offsetOf(rowStart, components, 0, features);
  let pd = decoded + first;
  let ps = source + first;
  for (let v: usize = 0; v < vectors; v++) {
    let acc = f64x2.splat(0);
    let b: usize = 0;
    while (b < end) {
      // A block of at most 16 float32x4 (8 values per lane in each of two accumulators).
      const blockEnd = b + 256 < end ? b + 256 : end;
      let q0 = f32x4.splat(0);
      let q1 = f32x4.splat(0);
      for (; b + 32 <= blockEnd; b += 32) {
        const e0 = f32x4.sub(v128.load(pd + b), v128.load(ps + b));
        const e1 = f32x4.sub(v128.load(pd + b, 16), v128.load(ps + b, 16));
        q0 = f32x4.add(q0, f32x4.mul(e0, e0));
        q1 = f32x4.add(q1, f32x4.mul(e1, e1));
      }
      if (b < blockEnd) {
        const e0 = f32x4.sub(v128.load(pd + b), v128.load(ps + b));
        q0 = f32x4.add(q0, f32x4.mul(e0, e0));
        b += 16;
      }
      acc = carry1(carry1(acc, q0), q1);
    }
    let s: f64 = 0;
    for (let f: usize = f4; f < n; f++) {
      const e = <f64>load<f32>(pd + (f << 2)) - <f64>load<f32>(ps + (f << 2));
      s += e * e;
    }
    let total = hsum64(acc) + s;
    // Overflowed (inf from finite inputs), or so small that float32 squares lost precision
    // (below 2^-100 every square is, and a subnormal square is not within 1e-6): float64 again.
    if (!isFinite(total) || total < TINY) total = squaredError64(pd, ps, n);
    store<f64>(out + (v << 3), total / <f64>features);
    pd += vecBytes;
    ps += vecBytes;
  }
}

/** `a` and `b`, two float64x2 lane pairs, as one float64 sum. */
@inline
function hsum64x2(a: v128, b: v128): f64 {
  return hsum64(f64x2.add(a, b));
}

/**
 * The moments' sums of `k` consecutive rows (`k` at most 4; row `r` of source at `ps + r * rowBytes`,
 * of decoded at `pd + r * rowBytes`) added into the sums at `mom` (see {@link pairPass}), the
 * `cf` values of a row taken as one flat vector (components one after another, as the sums are).
 * Each sum is loaded and stored once per call and the rows are added in order, one by one: the
 * bits do not depend on how rows are grouped. Deviations and sums in float64.
 */
function momentRows(ps: usize, pd: usize, rowBytes: usize, k: usize, cf: usize, mom: usize, doSource: bool, doResidual: bool): void {
  const cf8 = cf << 3;
  const c4 = cf & ~(<usize>3);
  for (let i: usize = 0; i < c4; i += 4) {
    const b = i << 2;
    const at = mom + (i << 3);
    if (doSource && doResidual) {
      // Both: each source value read and promoted once.
      const rt = at + cf8 * 3;
      const sh0 = v128.load(at);
      const sh1 = v128.load(at, 16);
      const rh0 = v128.load(rt);
      const rh1 = v128.load(rt, 16);
      let a0 = v128.load(at + cf8);
      let a1 = v128.load(at + cf8, 16);
      let q0 = v128.load(at + cf8 * 2);
      let q1 = v128.load(at + cf8 * 2, 16);
      let ra0 = v128.load(rt + cf8);
      let ra1 = v128.load(rt + cf8, 16);
      let rq0 = v128.load(rt + cf8 * 2);
      let rq1 = v128.load(rt + cf8 * 2, 16);
      for (let r: usize = 0; r < k; r++) {
        const vs = v128.load(ps + r * rowBytes + b);
        const vd = v128.load(pd + r * rowBytes + b);
        const s0 = f64x2.promote_low_f32x4(vs);
        const s1 = f64x2.promote_low_f32x4(v128.shuffle<f32>(vs, vs, 2, 3, 2, 3));
        const d0 = f64x2.sub(s0, sh0);
        const d1 = f64x2.sub(s1, sh1);
        a0 = f64x2.add(a0, d0);
        a1 = f64x2.add(a1, d1);
        q0 = f64x2.add(q0, f64x2.mul(d0, d0));
        q1 = f64x2.add(q1, f64x2.mul(d1, d1));
        const e0 = f64x2.sub(f64x2.sub(s0, f64x2.promote_low_f32x4(vd)), rh0);
        const e1 = f64x2.sub(f64x2.sub(s1, f64x2.promote_low_f32x4(v128.shuffle<f32>(vd, vd, 2, 3, 2, 3))), rh1);
        ra0 = f64x2.add(ra0, e0);
        ra1 = f64x2.add(ra1, e1);
        rq0 = f64x2.add(rq0, f64x2.mul(e0, e0));
        rq1 = f64x2.add(rq1, f64x2.mul(e1, e1));
      }
      v128.store(at + cf8, a0);
      v128.store(at + cf8, a1, 16);
      v128.store(at + cf8 * 2, q0);
      v128.store(at + cf8 * 2, q1, 16);
      v128.store(rt + cf8, ra0);
      v128.store(rt + cf8, ra1, 16);
      v128.store(rt + cf8 * 2, rq0);
      v128.store(rt + cf8 * 2, rq1, 16);
      continue;
    }
    if (doSource) {
      const sh0 = v128.load(at);
      const sh1 = v128.load(at, 16);
      let a0 = v128.load(at + cf8);
      let a1 = v128.load(at + cf8, 16);
      let q0 = v128.load(at + cf8 * 2);
      let q1 = v128.load(at + cf8 * 2, 16);
      for (let r: usize = 0; r < k; r++) {
        const vs = v128.load(ps + r * rowBytes + b);
        const d0 = f64x2.sub(f64x2.promote_low_f32x4(vs), sh0);
        const d1 = f64x2.sub(f64x2.promote_low_f32x4(v128.shuffle<f32>(vs, vs, 2, 3, 2, 3)), sh1);
        a0 = f64x2.add(a0, d0);
        a1 = f64x2.add(a1, d1);
        q0 = f64x2.add(q0, f64x2.mul(d0, d0));
        q1 = f64x2.add(q1, f64x2.mul(d1, d1));
      }
      v128.store(at + cf8, a0);
      v128.store(at + cf8, a1, 16);
      v128.store(at + cf8 * 2, q0);
      v128.store(at + cf8 * 2, q1, 16);
    }
    if (doResidual) {
      const rt = at + cf8 * 3;
      const sh0 = v128.load(rt);
      const sh1 = v128.load(rt, 16);
      let a0 = v128.load(rt + cf8);
      let a1 = v128.load(rt + cf8, 16);
      let q0 = v128.load(rt + cf8 * 2);
      let q1 = v128.load(rt + cf8 * 2, 16);
      for (let r: usize = 0; r < k; r++) {
        const vs = v128.load(ps + r * rowBytes + b);
        const vd = v128.load(pd + r * rowBytes + b);
        const e0 = f64x2.sub(f64x2.promote_low_f32x4(vs), f64x2.promote_low_f32x4(vd));
        const e1 = f64x2.sub(
          f64x2.promote_low_f32x4(v128.shuffle<f32>(vs, vs, 2, 3, 2, 3)),
          f64x2.promote_low_f32x4(v128.shuffle<f32>(vd, vd, 2, 3, 2, 3)),
        );
        const d0 = f64x2.sub(e0, sh0);
        const d1 = f64x2.sub(e1, sh1);
        a0 = f64x2.add(a0, d0);
        a1 = f64x2.add(a1, d1);
        q0 = f64x2.add(q0, f64x2.mul(d0, d0));
        q1 = f64x2.add(q1, f64x2.mul(d1, d1));
      }
      v128.store(rt + cf8, a0);
      v128.store(rt + cf8, a1, 16);
      v128.store(rt + cf8 * 2, q0);
      v128.store(rt + cf8 * 2, q1, 16);
    }
  }
  for (let i: usize = c4; i < cf; i++) {
    const at = mom + (i << 3);
    for (let r: usize = 0; r < k; r++) {
      const xs = <f64>load<f32>(ps + r * rowBytes + (i << 2));
      if (doSource) {
        const dx = xs - load<f64>(at);
        store<f64>(at + cf8, load<f64>(at + cf8) + dx);
        store<f64>(at + cf8 * 2, load<f64>(at + cf8 * 2) + dx * dx);
      }
      if (doResidual) {
        const rt = at + cf8 * 3;
        const dr = xs - <f64>load<f32>(pd + r * rowBytes + (i << 2)) - load<f64>(rt);
        store<f64>(rt + cf8, load<f64>(rt + cf8) + dr);
        store<f64>(rt + cf8 * 2, load<f64>(rt + cf8 * 2) + dr * dr);
      }
    }
  }
}

/** Per-vector squared errors and norms of `vectors` vectors from `pd0`, `ps0`, into the outputs from vector `v0` on. */
@inline
function vectorPass(
  pd0: usize,
  ps0: usize,
  vectors: usize,
  features: i32,
  mseOut: usize,
  normsOut: usize,
  v0: usize,
  doMse: bool,
  doNorms: bool,
): void {
  const f4 = <usize>(features & ~3);
  const n = <usize>features;
  const end = f4 << 2;
  const vecBytes = n << 2;
  let pd = pd0;
  let ps = ps0;
  for (let v: usize = v0; v < v0 + vectors; v++) {
    let acc = f64x2.splat(0);
    let ss0 = f64x2.splat(0);
    let ss1 = f64x2.splat(0);
    let dd0 = f64x2.splat(0);
    let dd1 = f64x2.splat(0);
    let dt0 = f64x2.splat(0);
    let dt1 = f64x2.splat(0);
    let b: usize = 0;
    while (b < end) {
      // The float32 blocks of msePass (the same bits), with the float64 terms beside them.
      const blockEnd = b + 256 < end ? b + 256 : end;
      let q0 = f32x4.splat(0);
      let q1 = f32x4.splat(0);
      for (; b < blockEnd; b += 16) {
        const vd = v128.load(pd + b);
        const vs = v128.load(ps + b);
        const e = f32x4.sub(vd, vs);
        // msePass adds the 16-byte steps of a block alternately into q0 and q1, an odd last one into q0.
        if (((b >> 4) & 1) == 0) q0 = f32x4.add(q0, f32x4.mul(e, e));
        else q1 = f32x4.add(q1, f32x4.mul(e, e));
        if (doNorms) {
          const s0 = f64x2.promote_low_f32x4(vs);
          const s1 = f64x2.promote_low_f32x4(v128.shuffle<f32>(vs, vs, 2, 3, 2, 3));
          const d0 = f64x2.promote_low_f32x4(vd);
          const d1 = f64x2.promote_low_f32x4(v128.shuffle<f32>(vd, vd, 2, 3, 2, 3));
          ss0 = f64x2.add(ss0, f64x2.mul(s0, s0));
          ss1 = f64x2.add(ss1, f64x2.mul(s1, s1));
          dd0 = f64x2.add(dd0, f64x2.mul(d0, d0));
          dd1 = f64x2.add(dd1, f64x2.mul(d1, d1));
          dt0 = f64x2.add(dt0, f64x2.mul(s0, d0));
          dt1 = f64x2.add(dt1, f64x2.mul(s1, d1));
        }
      }
      acc = carry1(carry1(acc, q0), q1);
    }
    let s: f64 = 0;
    let ss: f64 = 0;
    let dd: f64 = 0;
    let dt: f64 = 0;
    for (let f: usize = f4; f < n; f++) {
      const xd = <f64>load<f32>(pd + (f << 2));
      const xs = <f64>load<f32>(ps + (f << 2));
      const e = xd - xs;
      s += e * e;
      if (doNorms) {
        ss += xs * xs;
        dd += xd * xd;
        dt += xs * xd;
      }
    }
    let total = hsum64(acc) + s;
    if (!isFinite(total) || total < TINY) total = squaredError64(pd, ps, n);
    if (doMse) store<f64>(mseOut + (v << 3), total / <f64>features);
    if (doNorms) {
      const at = normsOut + (v << 5);
      store<f64>(at, hsum64x2(ss0, ss1) + ss);
      store<f64>(at, hsum64x2(dd0, dd1) + dd, 8);
      store<f64>(at, hsum64x2(dt0, dt1) + dt, 16);
      store<f64>(at, total, 24);
    }
    pd += vecBytes;
    ps += vecBytes;
  }
}

@inline
function pairs(
  decoded: usize,
  source: usize,
  rowStart: i32,
  rowEnd: i32,
  components: i32,
  features: i32,
  mseOut: usize,
  normsOut: usize,
  momentsOut: usize,
  doMse: bool,
  doNorms: bool,
  doSource: bool,
  doResidual: bool,
): void {
  const cf = <usize>(<u64>components * <u64>features);
  const rowBytes = cf << 2;
  const first = offsetOf(rowStart, components, 0, features);
  const perVector = doMse || doNorms;
  // Four rows at a time: their vectors' errors and norms, then their moments while they are in cache.
  for (let row = rowStart; row < rowEnd; row += 4) {
    const k = <usize>(rowEnd - row < 4 ? rowEnd - row : <i32>4);
    const o = first + <usize>(row - rowStart) * rowBytes;
    if (perVector) {
      const v0 = <usize>(row - rowStart) * <usize>components;
      vectorPass(decoded + o, source + o, k * <usize>components, features, mseOut, normsOut, v0, doMse, doNorms);
    }
    if (doSource || doResidual) momentRows(source + o, decoded + o, rowBytes, k, cf, momentsOut, doSource, doResidual);
  }
}

/**
 * One pass over rows `[rowStart, rowEnd)` of decoded and source activations (float32
 * `[rows, components, features]`), computing what `flags` asks:
 * - `flags & 1`: per-vector mean squared errors, f64 `mseOut[v]` (the bits of {@link msePass});
 * - `flags & 2`: per vector, f64 `normsOut[4 v + k]` for k = 0..3: `‖x‖²`, `‖x̂‖²`, `⟨x, x̂⟩` (float64
 *   products of float32 values, exact, summed in float64) and `‖x − x̂‖²` (msePass's sum);
 * - `flags & 4`, `flags & 8`: per-(component, dimension) moments of the source `x` and of the
 *   residual `x − x̂`, at f64 `momentsOut`: six arrays of `components * features` values, source
 *   shift | Σ (x − shift) | Σ (x − shift)² | residual shift | Σ (r − shift) | Σ (r − shift)²,
 *   the shift being the first row's vector. Sums in float64, row after row.
 * The shifts are set from row `rowStart` and the sums zeroed first, unless `flags & 16`: then the
 * rows are added to the sums already there (a shard passed in several calls of consecutive rows
 * gives the same bits as one call).
 */
export function pairPass(
  decoded: usize,
  source: usize,
  rowStart: i32,
  rowEnd: i32,
  components: i32,
  features: i32,
  mseOut: usize,
  normsOut: usize,
  momentsOut: usize,
  flags: i32,
): void {
  const cf = <usize>(<u64>components * <u64>features);
  if (!(flags & 16) && rowEnd > rowStart) {
    const first = offsetOf(rowStart, components, 0, features);
    if (flags & 4) {
      for (let i: usize = 0; i < cf; i++) store<f64>(momentsOut + (i << 3), <f64>load<f32>(source + first + (i << 2)));
      memory.fill(momentsOut + (cf << 3), 0, cf << 4);
    }
    if (flags & 8) {
      const r = momentsOut + cf * 24;
      for (let i: usize = 0; i < cf; i++) {
        const o = first + (i << 2);
        store<f64>(r + (i << 3), <f64>load<f32>(source + o) - <f64>load<f32>(decoded + o));
      }
      memory.fill(r + (cf << 3), 0, cf << 4);
    }
  }
  const doMse = (flags & 1) != 0;
  switch ((flags >> 1) & 7) {
    case 0:
      pairs(decoded, source, rowStart, rowEnd, components, features, mseOut, normsOut, momentsOut, doMse, false, false, false);
      break;
    case 1:
      pairs(decoded, source, rowStart, rowEnd, components, features, mseOut, normsOut, momentsOut, doMse, true, false, false);
      break;
    case 2:
      pairs(decoded, source, rowStart, rowEnd, components, features, mseOut, normsOut, momentsOut, doMse, false, true, false);
      break;
    case 3:
      pairs(decoded, source, rowStart, rowEnd, components, features, mseOut, normsOut, momentsOut, doMse, true, true, false);
      break;
    case 4:
      pairs(decoded, source, rowStart, rowEnd, components, features, mseOut, normsOut, momentsOut, doMse, false, false, true);
      break;
    case 5:
      pairs(decoded, source, rowStart, rowEnd, components, features, mseOut, normsOut, momentsOut, doMse, true, false, true);
      break;
    case 6:
      pairs(decoded, source, rowStart, rowEnd, components, features, mseOut, normsOut, momentsOut, doMse, false, true, true);
      break;
    default:
      pairs(decoded, source, rowStart, rowEnd, components, features, mseOut, normsOut, momentsOut, doMse, true, true, true);
      break;
  }
}

/** Carries four float32x4 partial sums into a float64x2 total (each lane promoted exactly). */
@inline
function carry(total: v128, a: v128, b: v128, c: v128, d: v128): v128 {
  let t = f64x2.add(total, f64x2.promote_low_f32x4(a));
  t = f64x2.add(t, f64x2.promote_low_f32x4(v128.shuffle<f32>(a, a, 2, 3, 2, 3)));
  t = f64x2.add(t, f64x2.promote_low_f32x4(b));
  t = f64x2.add(t, f64x2.promote_low_f32x4(v128.shuffle<f32>(b, b, 2, 3, 2, 3)));
  t = f64x2.add(t, f64x2.promote_low_f32x4(c));
  t = f64x2.add(t, f64x2.promote_low_f32x4(v128.shuffle<f32>(c, c, 2, 3, 2, 3)));
  t = f64x2.add(t, f64x2.promote_low_f32x4(d));
  return f64x2.add(t, f64x2.promote_low_f32x4(v128.shuffle<f32>(d, d, 2, 3, 2, 3)));
}

/**
 * Sum of `n` float32 values at `x`, read once (the bandwidth ceiling): four independent float32x4
 * accumulators over blocks of 256 values (16 per lane), each block carried into float64.
 */
export function readSum(x: usize, n: i32): f64 {
  const count = <usize>n;
  const blocks = count >> 8;
  let total = f64x2.splat(0);
  let p = x;
  for (let k: usize = 0; k < blocks; k++) {
    let a = v128.load(p);
    let b = v128.load(p, 16);
    let c = v128.load(p, 32);
    let d = v128.load(p, 48);
    for (let i = 1; i < 16; i++) {
      p += 64;
      a = f32x4.add(a, v128.load(p));
      b = f32x4.add(b, v128.load(p, 16));
      c = f32x4.add(c, v128.load(p, 32));
      d = f32x4.add(d, v128.load(p, 48));
    }
    p += 64;
    total = carry(total, a, b, c, d);
  }
  let s: f64 = 0;
  const rest = count & 255;
  for (let i: usize = 0; i < rest; i++) s += <f64>load<f32>(p + (i << 2));
  return hsum64(total) + s;
}

/**
 * The fired (x > 0) entries of rows `[rowStart, rowEnd)` of the learned activations at `x`, and
 * (`flags & 4`) their per-(component, feature) counts (u32 `firedOut`, zeroed first unless
 * `flags & 8`), in one read. Vector `v` of the call (row-major (row, component), 0 the call's
 * first) gets u32 `offsetsOut[v]` = the index of its first entry; entries are numbered from
 * `start`, in increasing feature order, as u32 features at `featuresOut` and f32 values at
 * `valuesOut`, written only below `capacity`. Returns the index after the last entry (which may
 * pass `capacity`: then the caller makes room and runs the pass again, without the counts).
 */
export function positivesPass(
  x: usize,
  rowStart: i32,
  rowEnd: i32,
  components: i32,
  features: i32,
  firedOut: usize,
  offsetsOut: usize,
  featuresOut: usize,
  valuesOut: usize,
  start: i32,
  capacity: i32,
  flags: i32,
): i32 {
  if (flags & 4 && !(flags & 8)) memory.fill(firedOut, 0, <usize>(<u64>components * <u64>features * 4));
  if (flags & 4) return positives(x, rowStart, rowEnd, components, features, firedOut, offsetsOut, featuresOut, valuesOut, start, capacity, true);
  return positives(x, rowStart, rowEnd, components, features, firedOut, offsetsOut, featuresOut, valuesOut, start, capacity, false);
}

/** The values at `p + b` whose bits are set in `mask` (bit j: the value at `p + b + 4 j`): listed from `k`, counted when `doFired`. */
@inline
function lanes(mask: i32, p: usize, b: usize, fc: usize, featuresOut: usize, valuesOut: usize, k: u32, cap: u32, doFired: bool): u32 {
  let bits = mask;
  while (bits != 0) {
    const o = b + (<usize>ctz(bits) << 2);
    bits &= bits - 1;
    // Counted from the entries (a few percent of the values), not with a vector add per value.
    if (doFired) store<u32>(fc + o, load<u32>(fc + o) + 1);
    if (k < cap) {
      store<u32>(featuresOut + (<usize>k << 2), <u32>(o >> 2));
      store<f32>(valuesOut + (<usize>k << 2), load<f32>(p + o));
    }
    k++;
  }
  return k;
}

@inline
function positives(
  x: usize,
  rowStart: i32,
  rowEnd: i32,
  components: i32,
  features: i32,
  firedOut: usize,
  offsetsOut: usize,
  featuresOut: usize,
  valuesOut: usize,
  start: i32,
  capacity: i32,
  doFired: bool,
): i32 {
  const zero = f32x4.splat(0);
  const n = <usize>features;
  const end = <usize>(features & ~3) << 2;
  const end16 = <usize>(features & ~15) << 2;
  const vectors = <usize>(rowEnd - rowStart) * <usize>components;
  const cap = <u32>capacity;
  let k = <u32>start;
  let p = x + offsetOf(rowStart, components, 0, features);
  let c: usize = 0;
  for (let v: usize = 0; v < vectors; v++) {
    store<u32>(offsetsOut + (v << 2), k);
    const fc = firedOut + c * (n << 2);
    let b: usize = 0;
    // Sixteen values a test: most such blocks of SAE activations have none fired.
    for (; b < end16; b += 64) {
      const m0 = f32x4.gt(v128.load(p + b), zero);
      const m1 = f32x4.gt(v128.load(p + b, 16), zero);
      const m2 = f32x4.gt(v128.load(p + b, 32), zero);
      const m3 = f32x4.gt(v128.load(p + b, 48), zero);
      if (v128.any_true(v128.or(v128.or(m0, m1), v128.or(m2, m3)))) {
        // One mask of the sixteen lanes, walked once (one loop exit to predict, not four).
        const bits = i32x4.bitmask(m0) | (i32x4.bitmask(m1) << 4) | (i32x4.bitmask(m2) << 8) | (i32x4.bitmask(m3) << 12);
        k = lanes(bits, p, b, fc, featuresOut, valuesOut, k, cap, doFired);
      }
    }
    for (; b < end; b += 16) k = lanes(i32x4.bitmask(f32x4.gt(v128.load(p + b), zero)), p, b, fc, featuresOut, valuesOut, k, cap, doFired);
    for (let o: usize = end; o < n << 2; o += 4) k = lanes(<i32>(load<f32>(p + o) > 0), p, o, fc, featuresOut, valuesOut, k, cap, doFired);
    p += n << 2;
    c = c + 1 == <usize>components ? 0 : c + 1;
  }
  return <i32>k;
}

/**
 * `learnedPass` (flags 1 to 7 as there, 8 to add to the counts) and `positivesPass` in one read of
 * each vector: the |x| sums, non-zero counts and fired counts of `learnedPass` and the fired
 * entries of `positivesPass`, the same outputs and bits (each vector's |x| blocks are added in
 * the same order as `learnedPass` adds them). Fired counts come from the entries. Returns the
 * index after the last entry, as `positivesPass`.
 */
export function learnedPositivesPass(
  x: usize,
  rowStart: i32,
  rowEnd: i32,
  components: i32,
  features: i32,
  absOut: usize,
  nonZeroOut: usize,
  firedOut: usize,
  offsetsOut: usize,
  featuresOut: usize,
  valuesOut: usize,
  start: i32,
  capacity: i32,
  flags: i32,
): i32 {
  if (!(flags & 8)) {
    if (flags & 2) memory.fill(nonZeroOut, 0, <usize>components << 2);
    if (flags & 4) memory.fill(firedOut, 0, <usize>(<u64>components * <u64>features * 4));
  }
  switch (flags & 7) {
    case 1:
      return vectorsAndPositives(x, rowStart, rowEnd, components, features, absOut, nonZeroOut, firedOut, offsetsOut, featuresOut, valuesOut, start, capacity, true, false, false);
    case 2:
      return vectorsAndPositives(x, rowStart, rowEnd, components, features, absOut, nonZeroOut, firedOut, offsetsOut, featuresOut, valuesOut, start, capacity, false, true, false);
    case 3:
      return vectorsAndPositives(x, rowStart, rowEnd, components, features, absOut, nonZeroOut, firedOut, offsetsOut, featuresOut, valuesOut, start, capacity, true, true, false);
    case 4:
      return vectorsAndPositives(x, rowStart, rowEnd, components, features, absOut, nonZeroOut, firedOut, offsetsOut, featuresOut, valuesOut, start, capacity, false, false, true);
    case 5:
      return vectorsAndPositives(x, rowStart, rowEnd, components, features, absOut, nonZeroOut, firedOut, offsetsOut, featuresOut, valuesOut, start, capacity, true, false, true);
    case 6:
      return vectorsAndPositives(x, rowStart, rowEnd, components, features, absOut, nonZeroOut, firedOut, offsetsOut, featuresOut, valuesOut, start, capacity, false, true, true);
    case 7:
      return vectorsAndPositives(x, rowStart, rowEnd, components, features, absOut, nonZeroOut, firedOut, offsetsOut, featuresOut, valuesOut, start, capacity, true, true, true);
    default:
      return vectorsAndPositives(x, rowStart, rowEnd, components, features, absOut, nonZeroOut, firedOut, offsetsOut, featuresOut, valuesOut, start, capacity, false, false, false);
  }
}

@inline
function vectorsAndPositives(
  x: usize,
  rowStart: i32,
  rowEnd: i32,
  components: i32,
  features: i32,
  absOut: usize,
  nonZeroOut: usize,
  firedOut: usize,
  offsetsOut: usize,
  featuresOut: usize,
  valuesOut: usize,
  start: i32,
  capacity: i32,
  doAbs: bool,
  doNz: bool,
  doFired: bool,
): i32 {
  const zero = f32x4.splat(0);
  const mask = absMask(features);
  const n = <usize>features;
  const f4 = <usize>(features & ~3);
  const end = f4 << 2;
  const vectors = <usize>(rowEnd - rowStart) * <usize>components;
  const cap = <u32>capacity;
  let k = <u32>start;
  let p = x + offsetOf(rowStart, components, 0, features);
  let c: usize = 0;
  for (let v: usize = 0; v < vectors; v++) {
    store<u32>(offsetsOut + (v << 2), k);
    const fc = firedOut + c * (n << 2);
    let acc = f64x2.splat(0);
    let nz = i32x4.splat(0);
    let b: usize = 0;
    while (b < end) {
      // A block of at most 16 vectors (16 values per lane) in float32, then carried: learnedPass's blocks.
      const blockEnd = b + 256 < end ? b + 256 : end;
      let a = f32x4.splat(0);
      for (; b + 64 <= blockEnd; b += 64) {
        const v0 = v128.load(p + b);
        const v1 = v128.load(p + b, 16);
        const v2 = v128.load(p + b, 32);
        const v3 = v128.load(p + b, 48);
        if (doAbs) {
          a = f32x4.add(a, v128.and(v0, mask));
          a = f32x4.add(a, v128.and(v1, mask));
          a = f32x4.add(a, v128.and(v2, mask));
          a = f32x4.add(a, v128.and(v3, mask));
        }
        if (doNz) nz = i32x4.add(nz, i32x4.add(i32x4.add(f32x4.ne(v0, zero), f32x4.ne(v1, zero)), i32x4.add(f32x4.ne(v2, zero), f32x4.ne(v3, zero))));
        const bits = i8x16.bitmask(
          i8x16.narrow_i16x8_s(
            i16x8.narrow_i32x4_s(f32x4.gt(v0, zero), f32x4.gt(v1, zero)),
            i16x8.narrow_i32x4_s(f32x4.gt(v2, zero), f32x4.gt(v3, zero)),
          ),
        );
        if (bits != 0) k = lanes(bits, p, b, fc, featuresOut, valuesOut, k, cap, doFired);
      }
      for (; b < blockEnd; b += 16) {
        const v0 = v128.load(p + b);
        if (doAbs) a = f32x4.add(a, v128.and(v0, mask));
        if (doNz) nz = i32x4.add(nz, f32x4.ne(v0, zero));
        const bits = i32x4.bitmask(f32x4.gt(v0, zero));
        if (bits != 0) k = lanes(bits, p, b, fc, featuresOut, valuesOut, k, cap, doFired);
      }
      if (doAbs) acc = carry1(acc, a);
    }
    let s: f64 = 0;
    let nzTail: i32 = 0;
    for (let o: usize = end; o < n << 2; o += 4) {
      const value = load<f32>(p + o);
      if (doAbs) s += <f64>Mathf.abs(value);
      if (doNz) nzTail += <i32>(value != 0);
      k = lanes(<i32>(value > 0), p, o, fc, featuresOut, valuesOut, k, cap, doFired);
    }
    if (doAbs) {
      let total = hsum64(acc) + s;
      if (!isFinite(total)) total = absSum64(p, n);
      store<f64>(absOut + (v << 3), total);
    }
    if (doNz) {
      const at = nonZeroOut + (c << 2);
      store<u32>(at, load<u32>(at) + <u32>nzTail - hsum32(nz));
    }
    p += n << 2;
    c = c + 1 == <usize>components ? 0 : c + 1;
  }
  return <i32>k;
}

// ---------------------------------------------------------------------------------------------
// Per-feature statistics of a shard's fired entries (what src/functional/parts/ computes in
// JavaScript from `positives`: the grouping of fired-by-feature.ts, momentsOf, histogramOf,
// topByFeature and the last-fired rows), the same arithmetic in the same order, so the same bits.

/** The histogram slot of a positive float32 value's bits `b`: the number of edges at or below it. */
@inline
function slotOf(b: u32, table: usize, edgeBits: usize, ne: u32): u32 {
  let slot = load<u32>(table + (<usize>(b >>> 16) << 2));
  while (slot < ne && load<u32>(edgeBits + (<usize>slot << 2)) <= b) slot++;
  return slot;
}

/** The cells of the slots `from + j` set in `bits`, in order, with their counts in `local` (then zeroed), from `k` on. */
@inline
function emitCells(bits: u64, from: u32, local: usize, base: u32, cells: usize, cellCounts: usize, k: u32): u32 {
  while (bits != 0) {
    const j = from + <u32>ctz(bits);
    bits &= bits - 1;
    const c = local + (<usize>j << 2);
    store<u32>(cells + (<usize>k << 2), base + j);
    store<f64>(cellCounts + (<usize>k << 3), <f64>load<u32>(c));
    store<u32>(c, 0);
    k++;
  }
  return k;
}

/** Up to this many entries a feature, the top entries are placed by rank (a compare of every pair). */
const RANK_MAX: u32 = 32;

/**
 * Up to this many kept entries a feature, they are kept sorted by insertion (each entry that gets
 * in walks them all: count x k), past it in a heap (count x log k; faster from k = 5 in
 * bench/top-k.ts, by 1.5x at k = 16 with values that rise by row, even with random ones).
 */
const INSERT_MAX: u32 = 4;

/** Puts `x` into the min-heap `heap` u64[n] at the hole `i`, moving smaller children up past it. */
@inline
function sinkKey(heap: usize, n: u32, i: u32, x: u64): void {
  let c: u32 = 2 * i + 1;
  while (c < n) {
    let y = load<u64>(heap + (<usize>c << 3));
    if (c + 1 < n) {
      const z = load<u64>(heap + (<usize>(c + 1) << 3));
      if (z < y) {
        y = z;
        c++;
      }
    }
    if (y > x) break;
    store<u64>(heap + (<usize>i << 3), y);
    i = c;
    c = 2 * i + 1;
  }
  store<u64>(heap + (<usize>i << 3), x);
}

/**
 * The best `kept` of the keys from `from` to `to` (at least `kept` of them), descending, in `heap`
 * u64[kept]: a min-heap of the best so far (a later key that beats its least takes the least's
 * place, then sinks), then sorted in place: count x log(kept), whatever the order.
 */
@inline
function bestByHeap(heap: usize, kept: u32, from: usize, to: usize): void {
  memory.copy(heap, from, <usize>kept << 3);
  for (let i = kept >> 1; i > 0; i--) sinkKey(heap, kept, i - 1, load<u64>(heap + (<usize>(i - 1) << 3)));
  for (let a = from + (<usize>kept << 3); a < to; a += 8) {
    const x = load<u64>(a);
    if (x > load<u64>(heap)) sinkKey(heap, kept, 0, x);
  }
  // The least to the end, one after another: descending.
  for (let n = kept - 1; n > 0; n--) {
    const p = heap + (<usize>n << 3);
    const x = load<u64>(p);
    store<u64>(p, load<u64>(heap));
    sinkKey(heap, n, 0, x);
  }
}

/** The end of vector `v`'s entries: the next vector's first, or `total` for the last. */
@inline
function entriesEnd(offsets: usize, v: usize, vectors: usize, total: u32): u32 {
  return v + 1 < vectors ? load<u32>(offsets + ((v + 1) << 2)) : total;
}

/** The float32 value of a grouped entry's key (its bits are the key's high half). */
@inline
function keyValue(key: u64): f64 {
  return <f64>reinterpret<f32>(<u32>(key >> 32));
}

/**
 * The per-feature statistics of the fired entries that a positives pass wrote (`offsets` u32 per
 * vector, vectors in (row, component) order; features u32 and values f32 from entry 0 to `total`),
 * per group `g = component * features + feature`:
 *
 * - the entries grouped by `g` in row order (a stable counting sort: `starts` u32[size] ends as
 *   each group's end), each as the u64 key `bits << 32 | ~row` at `grouped`: positive float32
 *   values order as their bits, so a larger key is a larger value or, for equal values, a lower
 *   row: the order of the top activations, in one unsigned compare;
 * - per group that fired (`m` of them, in increasing `g`): `groupsOut` u32 its `g`, `countOut`
 *   f64 its entries; with `flags & 1` its mean (`meanOut`), sum of squared deviations from the
 *   mean (`m2Out`) and maximum (`maxOut`), from the values in row order as `momentsOf` takes them
 *   (sum and maximum, then the squared deviations); with `flags & 2` its last row (`lastOut`, f64);
 *   with `flags & 4` its best `min(k, count)` entries by key (placed by rank in a small group, else
 *   in `topKeys` u64[k] while the group is read: kept sorted for k <= 4, else a min-heap sorted at
 *   the end, count x log k in any order) as f32 `topValues` and f64 `topRows`,
 *   one group after another (both with room for `total` entries), and their number in `keptOut`
 *   (f64);
 * - with `flags & 8`, the histogram's cells: each entry's slot (the number of the `edgeCount`
 *   edges, u32 float32 bits at `edgeBits`, at or below it: from the table `table` u32[0x7f81] of
 *   the slot of each top-16-bit prefix, then past the few edges above it), counted in `local`
 *   u32[edgeCount + 1] and marked in `bitmap` u64[ceil((edgeCount + 1) / 64)], read back in slot
 *   order as u32 `cells` `g * (edgeCount + 1) + slot` and f64 `cellCounts`.
 *
 * Writes `m`, the number of top entries and of cells to u32 `info[0..2]`. `firedCounts`, unless 0,
 * are the entries' counts per group (u32, as the positives pass counts them with `flags & 4`).
 */
export function featureStats(
  offsets: usize,
  features: usize,
  values: usize,
  vectors: i32,
  components: i32,
  nFeatures: i32,
  total: i32,
  starts: usize,
  grouped: usize,
  groupsOut: usize,
  countOut: usize,
  meanOut: usize,
  m2Out: usize,
  maxOut: usize,
  lastOut: usize,
  keptOut: usize,
  topKeys: usize,
  topValues: usize,
  topRows: usize,
  k: i32,
  edgeBits: usize,
  edgeCount: i32,
  table: usize,
  local: usize,
  bitmap: usize,
  cells: usize,
  cellCounts: usize,
  info: usize,
  flags: i32,
  firedCounts: usize,
): void {
  const size = <usize>components * <usize>nFeatures;
  const nv = <usize>vectors;
  const n = <u32>total;
  const f = <usize>nFeatures;
  // Counts of each group (the pass's fired counts where it made them), then each group's start.
  if (firedCounts != 0) memory.copy(starts, firedCounts, size << 2);
  else memory.fill(starts, 0, size << 2);
  if (firedCounts != 0) {
    // Counted already.
  } else if (components == 1) {
    for (let i: usize = 0; i < <usize>n; i++) {
      const a = starts + (<usize>load<u32>(features + (i << 2)) << 2);
      store<u32>(a, load<u32>(a) + 1);
    }
  } else {
    let c: usize = 0;
    for (let v: usize = 0; v < nv; v++) {
      const base = starts + ((c * f) << 2);
      const end = <usize>entriesEnd(offsets, v, nv, n);
      for (let i = <usize>load<u32>(offsets + (v << 2)); i < end; i++) {
        const a = base + (<usize>load<u32>(features + (i << 2)) << 2);
        store<u32>(a, load<u32>(a) + 1);
      }
      c = c + 1 == <usize>components ? 0 : c + 1;
    }
  }
  let acc: u32 = 0;
  for (let g: usize = 0; g < size; g++) {
    const a = starts + (g << 2);
    const count = load<u32>(a);
    store<u32>(a, acc);
    acc += count;
  }
  // Scatter in arrival (row) order: each group's cursor ends at the group's end.
  {
    let c: usize = 0;
    let notRow: u64 = 0xffffffff;
    for (let v: usize = 0; v < nv; v++) {
      const base = starts + ((c * f) << 2);
      const end = <usize>entriesEnd(offsets, v, nv, n);
      for (let i = <usize>load<u32>(offsets + (v << 2)); i < end; i++) {
        const a = base + (<usize>load<u32>(features + (i << 2)) << 2);
        const q = load<u32>(a);
        store<u32>(a, q + 1);
        store<u64>(grouped + (<usize>q << 3), (<u64>load<u32>(values + (i << 2)) << 32) | notRow);
      }
      c = c + 1;
      if (c == <usize>components) {
        c = 0;
        notRow--;
      }
    }
  }
  const doMoments = (flags & 1) != 0;
  const doLast = (flags & 2) != 0;
  const doTop = (flags & 4) != 0;
  const doHistogram = (flags & 8) != 0;
  const ne = <u32>edgeCount;
  const slots = <u32>edgeCount + 1;
  if (doHistogram) {
    // The slot of the smallest value of each prefix, up to +Infinity's (0x7f80).
    let j: u32 = 0;
    for (let prefix: u32 = 0; prefix <= 0x7f80; prefix++) {
      const p = prefix << 16;
      while (j < ne && load<u32>(edgeBits + (<usize>j << 2)) <= p) j++;
      store<u32>(table + (<usize>prefix << 2), j);
    }
    memory.fill(local, 0, <usize>slots << 2);
    memory.fill(bitmap, 0, <usize>((slots + 63) >> 6) << 3);
  }
  const kk = <u32>k;
  let m: usize = 0;
  let o: u32 = 0;
  let cellsOut: u32 = 0;
  let s: u32 = 0;
  for (let g: usize = 0; g < size; g++) {
    const e = load<u32>(starts + (g << 2));
    if (s == e) continue;
    const count = e - s;
    const from = grouped + (<usize>s << 3);
    const to = grouped + (<usize>e << 3);
    store<u32>(groupsOut + (m << 2), <u32>g);
    store<f64>(countOut + (m << 3), <f64>count);
    if (doMoments) {
      let sum: f64 = 0;
      let top: f64 = 0;
      for (let a = from; a < to; a += 8) {
        const x = keyValue(load<u64>(a));
        sum += x;
        if (x > top) top = x;
      }
      const mean = sum / <f64>count;
      let d2: f64 = 0;
      for (let a = from; a < to; a += 8) {
        const d = keyValue(load<u64>(a)) - mean;
        d2 += d * d;
      }
      store<f64>(meanOut + (m << 3), mean);
      store<f64>(m2Out + (m << 3), d2);
      store<f64>(maxOut + (m << 3), top);
    }
    if (doLast) store<f64>(lastOut + (m << 3), <f64>(~<u32>load<u64>(to - 8)));
    if (doTop) {
      const kept = count < kk ? count : kk;
      store<f64>(keptOut + (m << 3), <f64>kept);
      if (count <= RANK_MAX) {
        // Each entry's rank, the number of larger keys (keys are distinct: one entry a vector,
        // and below 2^63, so a signed compare orders them), is its place: no sort, no branch.
        // A rank past `kept` writes into the room of the groups after this one, which write
        // their own entries there later.
        for (let a = from; a < to; a += 8) {
          const x = load<u64>(a);
          const xs = i64x2.splat(<i64>x);
          let acc = i64x2.splat(0);
          let b = from;
          for (; b + 16 <= to; b += 16) acc = i64x2.sub(acc, i64x2.gt_s(v128.load(b), xs));
          let r = <u32>(i64x2.extract_lane(acc, 0) + i64x2.extract_lane(acc, 1));
          if (b < to) r += <u32>(load<u64>(b) > x);
          store<u32>(topValues + (<usize>(o + r) << 2), <u32>(x >> 32));
          store<f64>(topRows + (<usize>(o + r) << 3), <f64>(~<u32>x));
        }
      } else {
        if (kept > INSERT_MAX) bestByHeap(topKeys, kept, from, to);
        else {
          // Slots of 0 (below every key): a slot takes the larger of its key and the smaller of the
          // slot before's and the new key (no branch to mispredict); most entries of a large group
          // fall below the last slot.
          const lastSlot = topKeys + (<usize>(kept - 1) << 3);
          for (let p = topKeys; p <= lastSlot; p += 8) store<u64>(p, 0);
          for (let a = from; a < to; a += 8) {
            const x = load<u64>(a);
            if (load<u64>(lastSlot) >= x) continue;
            let p = lastSlot;
            let cur = load<u64>(p);
            while (p > topKeys) {
              const before = load<u64>(p - 8);
              const lo = before < x ? before : x;
              store<u64>(p, cur > lo ? cur : lo);
              cur = before;
              p -= 8;
            }
            store<u64>(p, cur > x ? cur : x);
          }
        }
        for (let q: u32 = 0; q < kept; q++) {
          const x = load<u64>(topKeys + (<usize>q << 3));
          store<u32>(topValues + (<usize>(o + q) << 2), <u32>(x >> 32));
          store<f64>(topRows + (<usize>(o + q) << 3), <f64>(~<u32>x));
        }
      }
      o += kept;
    }
    if (doHistogram) {
      const base = <u32>g * slots;
      if (slots <= 128) {
        // The slots touched, marked in two registers (no dependence through memory from one
        // entry to the next), then read back in order.
        let w0: u64 = 0;
        let w1: u64 = 0;
        for (let a = from; a < to; a += 8) {
          const slot = slotOf(<u32>(load<u64>(a) >> 32), table, edgeBits, ne);
          const c = local + (<usize>slot << 2);
          store<u32>(c, load<u32>(c) + 1);
          const bit = <u64>1 << <u64>(slot & 63);
          const high = <u64>(slot >> 6);
          w0 |= bit & (high - 1);
          w1 |= bit & (0 - high);
        }
        cellsOut = emitCells(w0, 0, local, base, cells, cellCounts, cellsOut);
        cellsOut = emitCells(w1, 64, local, base, cells, cellCounts, cellsOut);
      } else {
        let lo = slots;
        let hi: u32 = 0;
        for (let a = from; a < to; a += 8) {
          const slot = slotOf(<u32>(load<u64>(a) >> 32), table, edgeBits, ne);
          const c = local + (<usize>slot << 2);
          store<u32>(c, load<u32>(c) + 1);
          const w = bitmap + (<usize>(slot >> 6) << 3);
          store<u64>(w, load<u64>(w) | (<u64>1 << <u64>(slot & 63)));
          if (slot < lo) lo = slot;
          if (slot > hi) hi = slot;
        }
        for (let word = lo >> 6; word <= hi >> 6; word++) {
          const w = bitmap + (<usize>word << 3);
          cellsOut = emitCells(load<u64>(w), word << 6, local, base, cells, cellCounts, cellsOut);
          store<u64>(w, 0);
        }
      }
    }
    m++;
    s = e;
  }
  store<u32>(info, <u32>m);
  store<u32>(info, o, 4);
  store<u32>(info, cellsOut, 8);
}
