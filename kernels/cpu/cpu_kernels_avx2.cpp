// AVX2 + FMA + F16C kernels. This is the only file compiled with -mavx2 -mfma -mf16c (see
// kernels/CMakeLists.txt); nothing here runs unless avx2_supported() said yes at run time.
//
// Integer products (gemm_q8): per 32-element block, vpmaddubsw multiplies unsigned bytes by
// signed bytes and adds pairs into 16-bit lanes, vpmaddwd adds those into eight 32-bit lanes,
// which become floats scaled by d_weight * d_activation and accumulate with one FMA. Signed
// weights (Q8_0, Q4_0) use the sign trick: |w| * (x * sign(w)) = w * x. No 16-bit lane can
// overflow: |w| <= 128 and |x| <= 127 give pair sums of at most 32512.
// Weight rows go eight at a time (tile8_q4, tile8_q8: the rows transposed in registers, one
// row per 32-bit lane) against tiles of up to 16 activation rows, so each weight block is
// unpacked once per 16 rows of a batch; a matrix's last rows (fewer than eight) take the
// 4 x 2 tiles of tile_q8. 64 activation rows at a time stay in L2 while the weights stream.
// gemm_q8_rows8 reads the same tiles from pack_rows8's layout, where the transposes and the
// scale gathers were done once at load: one contiguous stream per eight rows, the same
// operations on the same values after that, so the same bits.

#include "kernels/cpu/cpu_kernels.hpp"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>

#include <cstring>

namespace bastion::kernels::cpu {
namespace {

std::uint16_t load_u16(const std::uint8_t* p) noexcept {
  std::uint16_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

float half_at(const std::uint8_t* p) noexcept { return _cvtsh_ss(load_u16(p)); }

// a * b + c rounded once. A builtin, not std::fma: an inline library function compiled here
// with -mfma could be the copy the linker keeps for the scalar files too, and fault on CPUs
// without FMA. For the same reason this file uses no other inline std:: function.
float fused_multiply_add(float a, float b, float c) noexcept { return __builtin_fmaf(a, b, c); }

// Horizontal sum in a fixed order.
float hsum(__m256 v) noexcept {
  const __m128 lo = _mm256_castps256_ps128(v);
  const __m128 hi = _mm256_extractf128_ps(v, 1);
  __m128 s = _mm_add_ps(lo, hi);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

float hmax(__m256 v) noexcept {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

int hsum_i32(__m256i v) noexcept {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

void quantize_q8(const float* x, q8_block* out, std::int64_t n) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (std::int64_t b = 0; b < n / q8_block_elems; ++b, x += q8_block_elems) {
    __m256 v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(x + 8 * i);
    __m256 amax = _mm256_andnot_ps(sign_bit, v[0]);
    for (int i = 1; i < 4; ++i) amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_bit, v[i]));
    const float d = hmax(amax) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 scale = _mm256_set1_ps(id);
    __m256i q[4];
    for (int i = 0; i < 4; ++i)
      q[i] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[i], scale),
                                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    const int sum =
        hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    // packs interleave 128-bit lanes; the permutation puts the 32 bytes back in order.
    const __m256i q16a = _mm256_packs_epi32(q[0], q[1]);
    const __m256i q16b = _mm256_packs_epi32(q[2], q[3]);
    const __m256i q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q16a, q16b), order);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].q), q8);
    out[b].d = d;
    out[b].d_sum = d * static_cast<float>(sum);
  }
}

constexpr std::size_t block_bytes_of(tensor_type t) {
  return t == tensor_type::q8_0 ? 34 : t == tensor_type::q4_0 ? 18 : 20;
}

// A weight block's 32 values as bytes in element order: signed for Q8_0 and Q4_0 (nibble - 8),
// unsigned 0..15 for Q4_1.
template <tensor_type T>
__m256i block_values(const std::uint8_t* blk) noexcept {
  if constexpr (T == tensor_type::q8_0) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
  } else {
    // The 16 bytes in both halves; the upper half shifted by a nibble: low nibbles are
    // elements 0..15, high nibbles 16..31.
    const __m256i both = _mm256_broadcastsi128_si256(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + (T == tensor_type::q4_1 ? 4 : 2))));
    const __m256i v = _mm256_and_si256(_mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4)),
                                       _mm256_set1_epi8(0x0f));
    if constexpr (T == tensor_type::q4_0) return _mm256_sub_epi8(v, _mm256_set1_epi8(8));
    return v;
  }
}

// y[c * ldy + r] = x_c . w_r for r < R, c < C. x: C rows of nb blocks; w: R rows.
// Q4_1's minimum term, sum over blocks of m_w * d_x * sum(q_x), is added after the integer
// loop, which keeps that loop's accumulators in registers.
template <tensor_type T, int R, int C>
void tile_q8(const q8_block* x, std::int64_t nb, const std::uint8_t* w, std::size_t stride,
             float* y, std::int64_t ldy) noexcept {
  constexpr std::size_t bb = block_bytes_of(T);
  // Weight bytes requested ahead of use: decode streams each weight once, from memory.
  constexpr std::size_t prefetch_bytes = 8 * bb;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  for (std::int64_t b = 0; b < nb; ++b) {
    __m256i xq[C];
    __m256 xd[C];
    for (int c = 0; c < C; ++c) {
      const q8_block& xb = x[c * nb + b];
      xq[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.q));
      xd[c] = _mm256_broadcast_ss(&xb.d);
    }
    for (int r = 0; r < R; ++r) {
      const std::uint8_t* blk = w + r * stride + static_cast<std::size_t>(b) * bb;
      if constexpr (C == 1)
        _mm_prefetch(reinterpret_cast<const char*>(blk + prefetch_bytes), _MM_HINT_T0);
      const __m256i wv = block_values<T>(blk);
      const __m256 dw = _mm256_set1_ps(half_at(blk));
      if constexpr (T == tensor_type::q4_1) {
        for (int c = 0; c < C; ++c) {
          const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xq[c]), ones);
          acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, xd[c]), acc[r][c]);
        }
      } else {
        const __m256i aw = _mm256_sign_epi8(wv, wv);
        for (int c = 0; c < C; ++c) {
          const __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xq[c], wv));
          const __m256i s = _mm256_madd_epi16(p, ones);
          acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, xd[c]), acc[r][c]);
        }
      }
    }
  }
  float min_term[R][C] = {};
  if constexpr (T == tensor_type::q4_1) {
    // R x C independent chains, so the fused multiply-adds overlap.
    for (std::int64_t b = 0; b < nb; ++b) {
      float mw[R], ds[C];
      for (int r = 0; r < R; ++r)
        mw[r] = half_at(w + r * stride + static_cast<std::size_t>(b) * bb + 2);
      for (int c = 0; c < C; ++c) ds[c] = x[c * nb + b].d_sum;
      for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c)
          min_term[r][c] = fused_multiply_add(mw[r], ds[c], min_term[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) y[c * ldy + r] = hsum(acc[r][c]) + min_term[r][c];
}

// The first 32 bits of the current block of each of eight rows (`stride` bytes apart): the
// F16 scale and the next two bytes, rows 0..3 in `q0123` and 4..7 in `q4567`, one row per
// 32-bit lane. Gathered in registers: through memory the scales would stall on store
// forwarding every block.
inline void gather_block_heads(const std::uint8_t* blk, std::size_t stride, __m128i& q0123,
                               __m128i& q4567) noexcept {
  __m128i h[8];
  for (int r = 0; r < 8; ++r) h[r] = _mm_loadu_si32(blk + r * stride);
  q0123 = _mm_unpacklo_epi64(_mm_unpacklo_epi32(h[0], h[1]), _mm_unpacklo_epi32(h[2], h[3]));
  q4567 = _mm_unpacklo_epi64(_mm_unpacklo_epi32(h[4], h[5]), _mm_unpacklo_epi32(h[6], h[7]));
}

// Decode streams every weight once from memory: the next eight rows' block at `offset` is
// fetched a block ahead of its use.
inline void prefetch_rows(const std::uint8_t* next, std::size_t stride,
                          std::size_t offset) noexcept {
  for (int r = 0; r < 8; ++r)
    _mm_prefetch(reinterpret_cast<const char*>(next + r * stride + offset), _MM_HINT_T0);
}

// The eight rows' block b from pack_rows8's layout (`w`: the group): the words of the packed
// nibbles as tile8_q4's transpose leaves them, the scales and the minima. With one activation
// row (decode) the stream is prefetched rows8_prefetch_bytes ahead.
constexpr std::size_t rows8_prefetch_bytes = 1024;

template <tensor_type T, int C>
inline void rows8_q4_block(const std::uint8_t* w, std::int64_t b, __m256i (&d)[4], __m256& dw,
                           __m256& mw) noexcept {
  constexpr std::size_t rec_bytes = 8 * block_bytes_of(T);
  constexpr std::size_t heads = T == tensor_type::q4_1 ? 32 : 16;
  const std::uint8_t* rec = w + static_cast<std::size_t>(b) * rec_bytes;
  if constexpr (C == 1)
    for (std::size_t line = 0; line < rec_bytes; line += 64)
      _mm_prefetch(reinterpret_cast<const char*>(rec + rows8_prefetch_bytes + line), _MM_HINT_T0);
  dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec)));
  if constexpr (T == tensor_type::q4_1)
    mw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + 16)));
  else
    mw = _mm256_mul_ps(dw, _mm256_set1_ps(-8.0f));
  for (int k = 0; k < 4; ++k)
    d[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + heads + 32 * k));
}

// The eight rows' block b from the stored layout (rows `stride` bytes apart from `w`), as
// rows8_q4_block gives it: the packed nibbles transposed in registers, the scales gathered.
template <tensor_type T, int C>
inline void stored_q4_block(const std::uint8_t* w, std::size_t stride, std::int64_t b,
                            const std::uint8_t* next, __m256i (&d)[4], __m256& dw,
                            __m256& mw) noexcept {
  constexpr std::size_t bb = block_bytes_of(T);
  constexpr std::size_t qoff = T == tensor_type::q4_1 ? 4 : 2;
  const std::uint8_t* blk = w + static_cast<std::size_t>(b) * bb;
  if (C == 1 && next) prefetch_rows(next, stride, static_cast<std::size_t>(blk - w));
  // v[i]: row i in the low 128 bits, row i + 4 in the high 128 bits.
  __m256i v[4];
  for (int i = 0; i < 4; ++i)
    v[i] = _mm256_inserti128_si256(
        _mm256_castsi128_si256(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + i * stride + qoff))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + (i + 4) * stride + qoff)), 1);
  // 4 x 4 transpose of 32-bit words in each half: d[k] holds word k of rows 0..3 (4..7).
  const __m256i t0 = _mm256_unpacklo_epi32(v[0], v[1]), t1 = _mm256_unpackhi_epi32(v[0], v[1]);
  const __m256i t2 = _mm256_unpacklo_epi32(v[2], v[3]), t3 = _mm256_unpackhi_epi32(v[2], v[3]);
  d[0] = _mm256_unpacklo_epi64(t0, t2);
  d[1] = _mm256_unpackhi_epi64(t0, t2);
  d[2] = _mm256_unpacklo_epi64(t1, t3);
  d[3] = _mm256_unpackhi_epi64(t1, t3);
  // The eight rows' F16 scales (and Q4_1 minima; Q4_0's first weight bytes, unused), then
  // byte shuffles split the scales from the rest.
  __m128i q0123, q4567;
  gather_block_heads(blk, stride, q0123, q4567);
  // Words d0 m0 d1 m1 d2 m2 d3 m3 -> d0 d1 d2 d3 m0 m1 m2 m3.
  const __m128i split = _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
  const __m128i s0123 = _mm_shuffle_epi8(q0123, split), s4567 = _mm_shuffle_epi8(q4567, split);
  dw = _mm256_cvtph_ps(_mm_unpacklo_epi64(s0123, s4567));
  if constexpr (T == tensor_type::q4_1)
    mw = _mm256_cvtph_ps(_mm_unpackhi_epi64(s0123, s4567));
  else
    mw = _mm256_mul_ps(dw, _mm256_set1_ps(-8.0f));
}

// Eight weight rows at once for the 4-bit types, with no horizontal sums: the rows' packed
// nibbles are transposed in registers so that each 32-bit lane holds one row's four nibbles
// of a group of four elements; one broadcast of the activation's four bytes for that group
// then serves all eight rows (vpmaddubsw), the eight groups add up in 16-bit lanes (at most
// 8 x 2 x 15 x 127 = 30480, no overflow), and one widening, one conversion and one FMA per
// block give the eight rows' results in one vector. Q4_0 is Q4_1 with minimum -8 d.
// Output (c, r) is the same sequence of operations for every C, so batching changes no bit.
// Rows8: w in pack_rows8's layout, read as one stream; otherwise the stored layout, where
// `next` is the next eight rows this thread will read, or null; with one activation row
// (decode, which streams every weight once from memory) their blocks are prefetched a group
// ahead.
template <tensor_type T, int C, bool Rows8>
void tile8_q4(const q8_block* x, std::int64_t nb, const std::uint8_t* w, std::size_t stride,
              float* y, std::int64_t ldy, const std::uint8_t* next) noexcept {
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  __m256 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
  for (std::int64_t b = 0; b < nb; ++b) {
    __m256i d[4];
    __m256 dw, mw;
    if constexpr (Rows8) {
      rows8_q4_block<T, C>(w, b, d, dw, mw);
    } else {
      stored_q4_block<T, C>(w, stride, b, next, d, dw, mw);
    }
    // Group g < 4 (elements 4g..4g+3) is the low nibbles of word g; group g + 4 the high ones.
    __m256i wg[8];
    for (int k = 0; k < 4; ++k) {
      wg[k] = _mm256_and_si256(d[k], low4);
      wg[k + 4] = _mm256_and_si256(_mm256_srli_epi16(d[k], 4), low4);
    }
    for (int c = 0; c < C; ++c) {
      const q8_block& xb = x[c * nb + b];
      // The activation's four bytes of group g, in every 32-bit lane, straight from memory.
      auto group = [&](int g) { return _mm256_broadcastd_epi32(_mm_loadu_si32(xb.q + 4 * g)); };
      // A tree of sums (exact in 16 bits, so the order changes no bit), shorter than a chain.
      __m256i p[8];
      for (int g = 0; g < 8; ++g) p[g] = _mm256_maddubs_epi16(wg[g], group(g));
      const __m256i s16 = _mm256_add_epi16(
          _mm256_add_epi16(_mm256_add_epi16(p[0], p[1]), _mm256_add_epi16(p[2], p[3])),
          _mm256_add_epi16(_mm256_add_epi16(p[4], p[5]), _mm256_add_epi16(p[6], p[7])));
      const __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, ones));
      acc[c] = _mm256_fmadd_ps(s, _mm256_mul_ps(dw, _mm256_broadcast_ss(&xb.d)), acc[c]);
      acc[c] = _mm256_fmadd_ps(mw, _mm256_broadcast_ss(&xb.d_sum), acc[c]);
    }
  }
  for (int c = 0; c < C; ++c) _mm256_storeu_ps(y + c * ldy, acc[c]);
}

// One activation block against eight Q8_0 rows' block, transposed (wg[g]: word g of the eight
// rows; aw[g] = |wg[g]|): acc += (the eight block products) * dw * d_x.
inline void q8_rows8_column(const q8_block& xb, const __m256i (&wg)[8], const __m256i (&aw)[8],
                            __m256 dw, __m256i ones, __m256& acc) noexcept {
  __m256i p[8];
  for (int g = 0; g < 8; ++g) {
    const __m256i xg = _mm256_broadcastd_epi32(_mm_loadu_si32(xb.q + 4 * g));
    p[g] = _mm256_madd_epi16(_mm256_maddubs_epi16(aw[g], _mm256_sign_epi8(xg, wg[g])), ones);
  }
  const __m256i s32 = _mm256_add_epi32(
      _mm256_add_epi32(_mm256_add_epi32(p[0], p[1]), _mm256_add_epi32(p[2], p[3])),
      _mm256_add_epi32(_mm256_add_epi32(p[4], p[5]), _mm256_add_epi32(p[6], p[7])));
  acc =
      _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32), _mm256_mul_ps(dw, _mm256_broadcast_ss(&xb.d)), acc);
}

// Eight Q8_0 weight rows at once, the layout of tile8_q4: the rows' 32-bit words (four
// elements each) transposed so that vector g holds elements 4g..4g+3 of the eight rows, one
// row per 32-bit lane, against the activation's four bytes of group g broadcast. Signed
// weights take the sign trick, |w| * (x * sign(w)); each group's pair sums go to 32 bits at
// once (two groups of 128 x 127 products could overflow 16 bits). One conversion and one FMA
// per block give the eight rows' results in one vector, with no horizontal sums.
template <int C, bool Rows8>
void tile8_q8(const q8_block* x, std::int64_t nb, const std::uint8_t* w, std::size_t stride,
              float* y, std::int64_t ldy, const std::uint8_t* next) noexcept {
  constexpr std::size_t bb = block_bytes_of(tensor_type::q8_0);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
  if constexpr (Rows8) {
    // pack_rows8's layout: the scales, then vector g is already word g of the eight rows.
    for (std::int64_t b = 0; b < nb; ++b) {
      const std::uint8_t* rec = w + static_cast<std::size_t>(b) * 8 * bb;
      if constexpr (C == 1)
        for (std::size_t line = 0; line < 8 * bb; line += 64)
          _mm_prefetch(reinterpret_cast<const char*>(rec + rows8_prefetch_bytes + line),
                       _MM_HINT_T0);
      const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec)));
      __m256i wg[8], aw[8];
      for (int g = 0; g < 8; ++g) {
        wg[g] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 16 + 32 * g));
        aw[g] = _mm256_sign_epi8(wg[g], wg[g]);
      }
      for (int c = 0; c < C; ++c) q8_rows8_column(x[c * nb + b], wg, aw, dw, ones, acc[c]);
    }
    for (int c = 0; c < C; ++c) _mm256_storeu_ps(y + c * ldy, acc[c]);
    return;
  }
  for (std::int64_t b = 0; b < nb; ++b) {
    const std::uint8_t* blk = w + static_cast<std::size_t>(b) * bb;
    if (C == 1 && next) prefetch_rows(next, stride, static_cast<std::size_t>(blk - w));
    // The scales first (with two weight bytes each), picked out by byte shuffles.
    __m128i q0123, q4567;
    gather_block_heads(blk, stride, q0123, q4567);
    const __m128i lo4 = _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256 dw = _mm256_cvtph_ps(
        _mm_unpacklo_epi64(_mm_shuffle_epi8(q0123, lo4), _mm_shuffle_epi8(q4567, lo4)));
    __m256i v[8];
    for (int r = 0; r < 8; ++r)
      v[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + r * stride + 2));
    if constexpr (C == 1) {
      // One activation row: no transpose. Each row's products in eight 32-bit lanes, then
      // horizontal adds into one lane per row: the same integers as the transposed sums (integer
      // addition is exact in any order), so the same bits as every other tile size.
      __m256i rs[8];
      const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].q));
      for (int r = 0; r < 8; ++r)
        rs[r] = _mm256_madd_epi16(
            _mm256_maddubs_epi16(_mm256_sign_epi8(v[r], v[r]), _mm256_sign_epi8(xq, v[r])), ones);
      // [r0 r1 r2 r3 | r0 r1 r2 r3] and [r4..r7 | r4..r7] partial sums, then the halves added.
      const __m256i h0123 =
          _mm256_hadd_epi32(_mm256_hadd_epi32(rs[0], rs[1]), _mm256_hadd_epi32(rs[2], rs[3]));
      const __m256i h4567 =
          _mm256_hadd_epi32(_mm256_hadd_epi32(rs[4], rs[5]), _mm256_hadd_epi32(rs[6], rs[7]));
      const __m256i s32 = _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20),
                                           _mm256_permute2x128_si256(h0123, h4567, 0x31));
      acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s32),
                               _mm256_mul_ps(dw, _mm256_broadcast_ss(&x[b].d)), acc[0]);
      continue;
    }
    // 8 x 8 transpose of 32-bit words: pairs, then quads within each 128-bit half, then the
    // halves. u[k] holds word k (low half) and word k + 4 (high half) of rows 0..3 (4..7).
    __m256i u[8];
    for (int h = 0; h < 2; ++h) {
      const __m256i* q = v + 4 * h;
      const __m256i t0 = _mm256_unpacklo_epi32(q[0], q[1]), t1 = _mm256_unpackhi_epi32(q[0], q[1]);
      const __m256i t2 = _mm256_unpacklo_epi32(q[2], q[3]), t3 = _mm256_unpackhi_epi32(q[2], q[3]);
      u[4 * h + 0] = _mm256_unpacklo_epi64(t0, t2);
      u[4 * h + 1] = _mm256_unpackhi_epi64(t0, t2);
      u[4 * h + 2] = _mm256_unpacklo_epi64(t1, t3);
      u[4 * h + 3] = _mm256_unpackhi_epi64(t1, t3);
    }
    __m256i wg[8], aw[8];
    for (int k = 0; k < 4; ++k) {
      wg[k] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x20);
      wg[k + 4] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x31);
    }
    for (int g = 0; g < 8; ++g) aw[g] = _mm256_sign_epi8(wg[g], wg[g]);
    for (int c = 0; c < C; ++c) q8_rows8_column(x[c * nb + b], wg, aw, dw, ones, acc[c]);
  }
  for (int c = 0; c < C; ++c) _mm256_storeu_ps(y + c * ldy, acc[c]);
}

template <tensor_type T, int C, bool Rows8>
void tile8(const q8_block* x, std::int64_t nb, const std::uint8_t* w, std::size_t stride, float* y,
           std::int64_t ldy, const std::uint8_t* next) noexcept {
  if constexpr (T == tensor_type::q8_0)
    tile8_q8<C, Rows8>(x, nb, w, stride, y, ldy, next);
  else
    tile8_q4<T, C, Rows8>(x, nb, w, stride, y, ldy, next);
}

// Eight weight rows against activation rows i0..i1, in tiles of 16, 8, 4 and 1 rows: every
// (activation row, weight row) output is the same operations in every tile size.
template <tensor_type T, bool Rows8>
void rows8(const q8_block* x, std::int64_t i0, std::int64_t i1, std::int64_t nb,
           const std::uint8_t* w, std::size_t stride, float* y, std::int64_t ldy,
           const std::uint8_t* next) noexcept {
  std::int64_t i = i0;
  for (; i + 16 <= i1; i += 16)
    tile8<T, 16, Rows8>(x + i * nb, nb, w, stride, y + i * ldy, ldy, next);
  for (; i + 8 <= i1; i += 8) tile8<T, 8, Rows8>(x + i * nb, nb, w, stride, y + i * ldy, ldy, next);
  for (; i + 4 <= i1; i += 4) tile8<T, 4, Rows8>(x + i * nb, nb, w, stride, y + i * ldy, ldy, next);
  for (; i < i1; ++i) tile8<T, 1, Rows8>(x + i * nb, nb, w, stride, y + i * ldy, ldy, next);
}

template <tensor_type T, int R>
void rows_q8(const q8_block* x, std::int64_t i0, std::int64_t i1, std::int64_t nb,
             const std::uint8_t* w, std::size_t stride, float* y, std::int64_t ldy) noexcept {
  std::int64_t i = i0;
  if constexpr (R == 2)
    for (; i + 4 <= i1; i += 4) tile_q8<T, R, 4>(x + i * nb, nb, w, stride, y + i * ldy, ldy);
  for (; i + 2 <= i1; i += 2) tile_q8<T, R, 2>(x + i * nb, nb, w, stride, y + i * ldy, ldy);
  if (i < i1) tile_q8<T, R, 1>(x + i * nb, nb, w, stride, y + i * ldy, ldy);
}

// Rows8: w in pack_rows8's layout (group g of eight rows where its rows were, the rest as
// stored, so the tails below read it as they read the stored layout).
template <tensor_type T, bool Rows8>
void gemm_q8_t(const q8_block* x, std::int64_t m, std::int64_t nb, const std::uint8_t* w,
               std::size_t stride, std::int64_t j0, std::int64_t j1, float* y,
               std::int64_t ldy) noexcept {
  constexpr std::int64_t rows_hot = 64;  // activation rows reused from cache per weight pass
  for (std::int64_t i0 = 0; i0 < m; i0 += rows_hot) {
    const std::int64_t i1 = (m < i0 + rows_hot ? m : i0 + rows_hot);
    std::int64_t j = j0;
    for (; j + 8 <= j1; j += 8)
      rows8<T, Rows8>(x, i0, i1, nb, w + static_cast<std::size_t>(j) * stride, stride, y + j, ldy,
                      j + 16 <= j1 ? w + static_cast<std::size_t>(j + 8) * stride : nullptr);
    // Four or more activation rows: 2 x 4 tiles (each weight block unpacked once per four
    // rows); fewer (decode): 4 x 2 or 4 x 1.
    if (i1 - i0 >= 4)
      for (; j + 2 <= j1; j += 2)
        rows_q8<T, 2>(x, i0, i1, nb, w + static_cast<std::size_t>(j) * stride, stride, y + j, ldy);
    for (; j + 4 <= j1; j += 4)
      rows_q8<T, 4>(x, i0, i1, nb, w + static_cast<std::size_t>(j) * stride, stride, y + j, ldy);
    for (; j < j1; ++j)
      rows_q8<T, 1>(x, i0, i1, nb, w + static_cast<std::size_t>(j) * stride, stride, y + j, ldy);
  }
}

template <bool Rows8>
void gemm_q8_layout(tensor_type type, const q8_block* x, std::int64_t m, std::int64_t nb,
                    const std::uint8_t* w, std::size_t row_stride, std::int64_t j0, std::int64_t j1,
                    float* y, std::int64_t ldy) {
  switch (type) {
    case tensor_type::q8_0:
      return gemm_q8_t<tensor_type::q8_0, Rows8>(x, m, nb, w, row_stride, j0, j1, y, ldy);
    case tensor_type::q4_0:
      return gemm_q8_t<tensor_type::q4_0, Rows8>(x, m, nb, w, row_stride, j0, j1, y, ldy);
    case tensor_type::q4_1:
      return gemm_q8_t<tensor_type::q4_1, Rows8>(x, m, nb, w, row_stride, j0, j1, y, ldy);
    default:
      return;
  }
}

void gemm_q8(tensor_type type, const q8_block* x, std::int64_t m, std::int64_t nb,
             const std::uint8_t* w, std::size_t row_stride, std::int64_t j0, std::int64_t j1,
             float* y, std::int64_t ldy) {
  gemm_q8_layout<false>(type, x, m, nb, w, row_stride, j0, j1, y, ldy);
}

void gemm_q8_rows8(tensor_type type, const q8_block* x, std::int64_t m, std::int64_t nb,
                   const std::uint8_t* w, std::size_t row_stride, std::int64_t j0, std::int64_t j1,
                   float* y, std::int64_t ldy) {
  gemm_q8_layout<true>(type, x, m, nb, w, row_stride, j0, j1, y, ldy);
}

// F32 tile: one 8-lane accumulator per (row, column) pair over the whole multiple of 8, then
// the tail in order with fused multiply-adds; the same sequence in every tile shape.
template <int R, int C>
void tile_f32(const float* x, const float* w, std::int64_t k, float* y, std::int64_t ldy) noexcept {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  const std::int64_t k8 = k / 8 * 8;
  for (std::int64_t p = 0; p < k8; p += 8) {
    __m256 xv[C];
    for (int c = 0; c < C; ++c) xv[c] = _mm256_loadu_ps(x + c * k + p);
    for (int r = 0; r < R; ++r) {
      const __m256 wv = _mm256_loadu_ps(w + r * k + p);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(wv, xv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      float tail = 0.0f;
      for (std::int64_t p = k8; p < k; ++p)
        tail = fused_multiply_add(w[r * k + p], x[c * k + p], tail);
      y[c * ldy + r] = hsum(acc[r][c]) + tail;
    }
}

template <int R>
void rows_f32(const float* x, std::int64_t m, const float* w, std::int64_t k, float* y,
              std::int64_t ldy) noexcept {
  std::int64_t i = 0;
  for (; i + 2 <= m; i += 2) tile_f32<R, 2>(x + i * k, w, k, y + i * ldy, ldy);
  if (i < m) tile_f32<R, 1>(x + i * k, w, k, y + i * ldy, ldy);
}

void gemm_f32(const float* x, std::int64_t m, const float* w, std::int64_t n, std::int64_t k,
              float* y, std::int64_t ldy) {
  std::int64_t j = 0;
  for (; j + 4 <= n; j += 4) rows_f32<4>(x, m, w + j * k, k, y + j, ldy);
  for (; j < n; ++j) rows_f32<1>(x, m, w + j * k, k, y + j, ldy);
}

void dequantize(tensor_type type, const void* src, float* dst, std::int64_t n) {
  const auto* p = static_cast<const std::uint8_t*>(src);
  switch (type) {
    case tensor_type::f16:
      for (std::int64_t i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(
            dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i))));
      for (std::int64_t i = n / 8 * 8; i < n; ++i) dst[i] = half_at(p + 2 * i);
      return;
    case tensor_type::q8_0:
    case tensor_type::q4_0:
    case tensor_type::q4_1: {
      const std::size_t bb = block_bytes_of(type);
      for (std::int64_t b = 0; b < n / 32; ++b, p += bb, dst += 32) {
        const __m256i v = type == tensor_type::q8_0   ? block_values<tensor_type::q8_0>(p)
                          : type == tensor_type::q4_0 ? block_values<tensor_type::q4_0>(p)
                                                      : block_values<tensor_type::q4_1>(p);
        const __m256 d = _mm256_set1_ps(half_at(p));
        const __m256 mn = _mm256_set1_ps(type == tensor_type::q4_1 ? half_at(p + 2) : 0.0f);
        const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
        const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        for (int i = 0; i < 4; ++i) {
          const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[i]));
          // d * v + m, rounded like the scalar path: a product, then a sum.
          _mm256_storeu_ps(dst + 8 * i, _mm256_add_ps(_mm256_mul_ps(d, f), mn));
        }
      }
      return;
    }
    default:
      dequantize_row(type, src, dst, n);
      return;
  }
}

float dot_f32(const float* a, const float* b, std::int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  std::int64_t p = 0;
  for (; p + 16 <= n; p += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + p), _mm256_loadu_ps(b + p), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + p + 8), _mm256_loadu_ps(b + p + 8), acc1);
  }
  for (; p + 8 <= n; p += 8)
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + p), _mm256_loadu_ps(b + p), acc0);
  float tail = 0.0f;
  for (; p < n; ++p) tail = fused_multiply_add(a[p], b[p], tail);
  return hsum(_mm256_add_ps(acc0, acc1)) + tail;
}

void axpy_f32(float a, const float* x, float* y, std::int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] = fused_multiply_add(a, x[i], y[i]);
}

// out[j] = a . (base + offsets[j]) over n floats, for j < rows: one query against many keys.
void dot_rows_f32(const float* a, const float* base, const std::int64_t* offsets, std::int64_t rows,
                  std::int64_t n, float* out) {
  if (n == 64) {  // the common head size: the query stays in registers
    __m256 av[8];
    for (int i = 0; i < 8; ++i) av[i] = _mm256_loadu_ps(a + 8 * i);
    for (std::int64_t j = 0; j < rows; ++j) {
      const float* r = base + offsets[j];
      __m256 acc0 = _mm256_mul_ps(av[0], _mm256_loadu_ps(r));
      __m256 acc1 = _mm256_mul_ps(av[1], _mm256_loadu_ps(r + 8));
      for (int i = 2; i < 8; i += 2) {
        acc0 = _mm256_fmadd_ps(av[i], _mm256_loadu_ps(r + 8 * i), acc0);
        acc1 = _mm256_fmadd_ps(av[i + 1], _mm256_loadu_ps(r + 8 * i + 8), acc1);
      }
      out[j] = hsum(_mm256_add_ps(acc0, acc1));
    }
    return;
  }
  for (std::int64_t j = 0; j < rows; ++j) out[j] = dot_f32(a, base + offsets[j], n);
}

// y += sum over j < rows of weights[j] * (base + offsets[j]), n floats: attention's weighted
// sum of values, in the order of j.
void axpy_rows_f32(const float* weights, const float* base, const std::int64_t* offsets,
                   std::int64_t rows, std::int64_t n, float* y) {
  if (n == 64) {  // the common head size: the sum stays in registers
    __m256 yv[8];
    for (int i = 0; i < 8; ++i) yv[i] = _mm256_loadu_ps(y + 8 * i);
    for (std::int64_t j = 0; j < rows; ++j) {
      const float* r = base + offsets[j];
      const __m256 wj = _mm256_set1_ps(weights[j]);
      for (int i = 0; i < 8; ++i) yv[i] = _mm256_fmadd_ps(wj, _mm256_loadu_ps(r + 8 * i), yv[i]);
    }
    for (int i = 0; i < 8; ++i) _mm256_storeu_ps(y + 8 * i, yv[i]);
    return;
  }
  for (std::int64_t j = 0; j < rows; ++j) axpy_f32(weights[j], base + offsets[j], y, n);
}

// e^x for x in [-87.3, 88] (clamped to it: beyond, the results are 0-ish and huge, which is
// all silu needs): x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, so n ln2 is exact to
// float precision), e^r by its degree-7 Taylor-like polynomial with minimax coefficients (the
// classic single-precision set, relative error ~1e-7), times 2^n built in the exponent bits.
__m256 exp_ps(__m256 x) noexcept {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 er = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i bits =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(er, _mm256_castsi256_ps(bits));
}

void silu_mul_f32(const float* gate, const float* up, float* out, std::int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), sign_bit = _mm256_set1_ps(-0.0f);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp_ps(_mm256_xor_ps(g, sign_bit));
    _mm256_storeu_ps(
        out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
  }
  if (i < n) {  // the tail through a zero-padded vector: the same operations as the body
    float g[8] = {}, u[8] = {}, o[8];
    for (std::int64_t j = i; j < n; ++j) {
      g[j - i] = gate[j];
      u[j - i] = up[j];
    }
    silu_mul_f32(g, u, o, 8);
    for (std::int64_t j = i; j < n; ++j) out[j] = o[j - i];
  }
}

constexpr cpu_kernels table{"avx2",       quantize_q8,   gemm_q8,     gemm_q8_rows8,
                            gemm_f32,     dequantize,    dot_f32,     axpy_f32,
                            dot_rows_f32, axpy_rows_f32, silu_mul_f32};

}  // namespace

const cpu_kernels& avx2_kernels() noexcept { return table; }

}  // namespace bastion::kernels::cpu

#else  // built without AVX2 (another architecture): never selected, avx2_supported() is false

namespace bastion::kernels::cpu {
const cpu_kernels& avx2_kernels() noexcept { return scalar_kernels(); }
}  // namespace bastion::kernels::cpu

#endif
