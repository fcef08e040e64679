//! A BERT encoder for inference on the CPU, on candle tensors: the forward
//! pass of `candle_transformers::models::bert::BertModel`, rearranged for
//! speed. The matrix products (nearly all of the work) run on the gemm
//! crate's kernels, called directly (candle's own product asks the system for
//! the core count on every call: a read of `/proc/cpuinfo` per product);
//! around them, each step is one pass over memory: one product for
//! query, key and value, whose bias is added while the heads are split; the
//! attention scale folded into the query weights; per head, the scores and
//! the weighted values as two more products, the padding mask applied in the
//! softmax between them; bias, residual and layer norm together; bias and GELU
//! together.
//!
//! The encoder's own loops run inside [`vectorized`], compiled again for the
//! CPU's vector width (AVX-512 or AVX2 with FMA, found at run time): built
//! for the baseline x86-64 target, they would run four lanes wide.
//!
//! The loops over numbers are `while` loops over plain slices instead of
//! iterator chains or ranges: optimised, both vectorise alike, but in a debug
//! build (the tests) every iterator step is a function call.
#![allow(clippy::needless_range_loop)]

use std::collections::HashMap;

use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Result, Shape, Tensor, bail,
};
use candle_transformers::models::bert::{Config, HiddenAct};
use rayon::prelude::*;

struct LayerNorm {
    w: Tensor,
    b: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.w, &self.b, self.eps)
    }
}

/// One transformer layer. Weights are input-major (`in × out`); each
/// product's bias is added by the fused step after it.
struct Layer {
    /// Query (pre-scaled by 1/√head_dim), key and value, side by side.
    qkv_w: Tensor,
    qkv_b: Tensor,
    attn_out_w: Tensor,
    /// The attention output's bias, then its layer norm's weight and bias.
    attn_norm: Tensor,
    inter_w: Tensor,
    inter_b: Tensor,
    out_w: Tensor,
    /// The output's bias, then its layer norm's weight and bias.
    out_norm: Tensor,
}

/// The encoder: embeddings, then the transformer layers.
pub(super) struct Encoder {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    hidden: usize,
    eps: f32,
    activation: HiddenAct,
    device: Device,
}

/// The weights by name, with their `bert.` (or `<model_type>.`) prefix
/// taken off, as `f32`.
struct Weights {
    tensors: HashMap<String, Tensor>,
    prefix: String,
}

impl Weights {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = format!("{}{name}", self.prefix);
        let Some(t) = self.tensors.get(&full) else {
            bail!("the weights have no tensor {full}")
        };
        if t.dims() != shape {
            bail!(
                "{full} has shape {:?}, config.json says {shape:?}",
                t.dims()
            )
        }
        t.to_dtype(DType::F32)
    }

    /// A linear layer stored PyTorch-style (`out × in`), made input-major.
    fn linear(&self, name: &str, input: usize, output: usize) -> Result<(Tensor, Tensor)> {
        let w = self.get(&format!("{name}.weight"), &[output, input])?;
        let b = self.get(&format!("{name}.bias"), &[output])?;
        Ok((w.t()?.contiguous()?, b))
    }

    fn layer_norm(&self, name: &str, size: usize, eps: f32) -> Result<LayerNorm> {
        Ok(LayerNorm {
            w: self.get(&format!("{name}.weight"), &[size])?,
            b: self.get(&format!("{name}.bias"), &[size])?,
            eps,
        })
    }
}

impl Encoder {
    /// The encoder of `config` with the weights of a safetensors file.
    pub(super) fn load(
        config: &Config,
        tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Encoder> {
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        if heads == 0 || !hidden.is_multiple_of(heads) {
            bail!("hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
        }
        let head_dim = hidden / heads;
        let eps = config.layer_norm_eps as f32;
        let inter = config.intermediate_size;
        let prefix = ["", "bert.", "model."]
            .into_iter()
            .map(str::to_owned)
            .chain(config.model_type.iter().map(|t| format!("{t}.")))
            .find(|p| tensors.contains_key(&format!("{p}embeddings.word_embeddings.weight")))
            .unwrap_or_default();
        let w = Weights { tensors, prefix };
        let scale = 1.0 / (head_dim as f64).sqrt();
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let l = format!("encoder.layer.{i}");
            let (qw, qb) = w.linear(&format!("{l}.attention.self.query"), hidden, hidden)?;
            let (kw, kb) = w.linear(&format!("{l}.attention.self.key"), hidden, hidden)?;
            let (vw, vb) = w.linear(&format!("{l}.attention.self.value"), hidden, hidden)?;
            let (aw, ab) = w.linear(&format!("{l}.attention.output.dense"), hidden, hidden)?;
            let (iw, ib) = w.linear(&format!("{l}.intermediate.dense"), hidden, inter)?;
            let (ow, ob) = w.linear(&format!("{l}.output.dense"), inter, hidden)?;
            let norm = |bias: &Tensor, name: &str| -> Result<Tensor> {
                let n = w.layer_norm(&format!("{l}.{name}.LayerNorm"), hidden, eps)?;
                Tensor::stack(&[bias, &n.w, &n.b], 0)
            };
            layers.push(Layer {
                qkv_w: Tensor::cat(&[&(qw * scale)?, &kw, &vw], 1)?,
                qkv_b: Tensor::cat(&[&(qb * scale)?, &kb, &vb], 0)?,
                attn_out_w: aw,
                attn_norm: norm(&ab, "attention.output")?,
                inter_w: iw,
                inter_b: ib,
                out_w: ow,
                out_norm: norm(&ob, "output")?,
            });
        }
        Ok(Encoder {
            word: w.get(
                "embeddings.word_embeddings.weight",
                &[config.vocab_size, hidden],
            )?,
            position: w.get(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, hidden],
            )?,
            token_type: w.get(
                "embeddings.token_type_embeddings.weight",
                &[config.type_vocab_size, hidden],
            )?,
            embed_norm: w.layer_norm("embeddings.LayerNorm", hidden, eps)?,
            layers,
            heads,
            head_dim,
            hidden,
            eps,
            activation: config.hidden_act,
            device: device.clone(),
        })
    }

    /// The last hidden states, `(batch, len, hidden)`, of `ids` and
    /// `type_ids` (`batch × len`, padded), where `mask` (`batch × len`, 1 for
    /// a token, 0 for padding) says which positions are real.
    pub(super) fn forward(
        &self,
        ids: &[u32],
        type_ids: &[u32],
        mask: &[u32],
        batch: usize,
        len: usize,
    ) -> Result<Tensor> {
        let (hidden, heads, head_dim) = (self.hidden, self.heads, self.head_dim);
        let n = batch * len;
        let ids = Tensor::from_slice(ids, n, &self.device)?;
        let type_ids = Tensor::from_slice(type_ids, n, &self.device)?;
        let positions = self.position.narrow(0, 0, len)?;
        let x = self
            .word
            .embedding(&ids)?
            .add(&self.token_type.embedding(&type_ids)?)?
            .reshape((batch, len, hidden))?
            .broadcast_add(&positions)?
            .reshape((n, hidden))?;
        let mut x = self.embed_norm.forward(&x)?;
        let mask = Tensor::from_slice(mask, (batch, len), &self.device)?;
        let attention = Attention {
            batch,
            len,
            heads,
            head_dim,
        };
        let add_norm = AddNorm { eps: self.eps };
        let gelu = BiasGelu {
            activation: self.activation,
        };
        for layer in &self.layers {
            let context = x
                .apply_op2_no_bwd(&layer.qkv_w, &Product)?
                .apply_op3_no_bwd(&layer.qkv_b, &mask, &attention)?;
            let a = context
                .apply_op2_no_bwd(&layer.attn_out_w, &Product)?
                .apply_op3_no_bwd(&x, &layer.attn_norm, &add_norm)?;
            let inter = a
                .apply_op2_no_bwd(&layer.inter_w, &Product)?
                .apply_op2_no_bwd(&layer.inter_b, &gelu)?;
            x = inter
                .apply_op2_no_bwd(&layer.out_w, &Product)?
                .apply_op3_no_bwd(&a, &layer.out_norm, &add_norm)?;
        }
        x.reshape((batch, len, hidden))
    }
}

/// The contiguous `f32` data of a tensor.
fn data<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&storage.as_slice::<f32>()?[start..end]),
        None => bail!("{op}: the inputs must be contiguous"),
    }
}

/// The matrix product `x · w` of `x` (`rows × k`) and input-major weights
/// `w` (`k × cols`), both contiguous, on gemm's kernels on the current rayon
/// pool.
struct Product;

impl CustomOp2 for Product {
    fn name(&self) -> &'static str {
        "product"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        w: &CpuStorage,
        w_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (xs, ws) = (data(x, x_layout, "product")?, data(w, w_layout, "product")?);
        let (&[rows, k], &[k2, cols]) = (x_layout.dims(), w_layout.dims()) else {
            bail!(
                "product: shapes {:?} and {:?} are not two matrices",
                x_layout.dims(),
                w_layout.dims()
            )
        };
        if k != k2 {
            bail!("product: shapes {rows}×{k} and {k2}×{cols} do not fit")
        }
        let mut out = vec![0f32; rows * cols];
        let threads = rayon::current_num_threads();
        let parallelism = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        matmul(
            &mut out,
            xs,
            ws,
            (rows, k, cols),
            Rhs::RowMajor,
            parallelism,
        )?;
        Ok((CpuStorage::F32(out), Shape::from((rows, cols))))
    }
}

/// How [`matmul`]'s right-hand matrix (`k × n`) lies in its slice.
#[derive(Clone, Copy)]
enum Rhs {
    /// Row-major, `k × n`.
    RowMajor,
    /// Its transpose row-major (`n × k`): the product is `a · bᵀ`.
    Transposed,
}

/// `out = a · b` for a row-major `a` (`m × k`) and `out` (`m × n`) and a
/// `b` laid out as `rhs` says, on gemm's kernels. The sizes are checked
/// against the slices.
fn matmul(
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
    rhs: Rhs,
    parallelism: gemm::Parallelism,
) -> Result<()> {
    let size = |x: usize, y: usize| x.checked_mul(y).filter(|s| isize::try_from(*s).is_ok());
    if size(m, k) != Some(a.len())
        || size(k, n) != Some(b.len())
        || size(m, n) != Some(out.len())
        || [m, k, n].iter().any(|&d| isize::try_from(d).is_err())
    {
        bail!(
            "product: {m}×{k} by {k}×{n} into {m}×{n}, given {}, {} and {} numbers",
            a.len(),
            b.len(),
            out.len()
        )
    }
    // Column and row strides of `b` as a `k × n` matrix.
    let (b_cs, b_rs) = match rhs {
        Rhs::RowMajor => (1, n as isize),
        Rhs::Transposed => (k as isize, 1),
    };
    // The one unsafe call of the workspace: gemm's kernels take raw pointers
    // and strides.
    // SAFETY: `a`, `b` and `out` hold exactly the m × k, k × n and m × n
    // matrices the strides describe (checked above, without overflow, and
    // every size fits an `isize`), `out` is not aliased, and with `read_dst`
    // false it is only written.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            b_cs,
            b_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

/// Runs `work` compiled for the widest vectors this CPU has (pulp's
/// run-time dispatch). Everything `work` calls on its numbers must be
/// `#[inline(always)]`, so that it is compiled into that version too.
#[inline(always)]
fn vectorized<R>(work: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(work)
}

/// Rows one thread takes at a time in the row-wise steps.
const ROWS: usize = 16;

/// Self-attention over every (sequence, head): from the product with the
/// query, key and value weights (`batch·len × 3·hidden`, without its bias),
/// the bias (`3·hidden`) and the padding mask (`batch × len`, `u32`, 0 on
/// padding), the context (`batch·len × hidden`). The query is pre-scaled.
/// Padding neither attends nor is attended to.
struct Attention {
    batch: usize,
    len: usize,
    heads: usize,
    head_dim: usize,
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        b: &CpuStorage,
        b_layout: &Layout,
        m: &CpuStorage,
        m_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let xs = data(x, x_layout, self.name())?;
        let bias = data(b, b_layout, self.name())?;
        let mask = match m_layout.contiguous_offsets() {
            Some((start, end)) => &m.as_slice::<u32>()?[start..end],
            None => bail!("attention: the mask must be contiguous"),
        };
        let (batch, len, heads, d) = (self.batch, self.len, self.heads, self.head_dim);
        let hidden = heads * d;
        let rows = batch * len;
        if xs.len() != rows * 3 * hidden || bias.len() != 3 * hidden || mask.len() != rows {
            bail!(
                "attention: shapes {:?}, {:?}, {:?}",
                x_layout.dims(),
                b_layout.dims(),
                m_layout.dims()
            )
        }
        // The context of each (sequence, head), `len × d`, in parallel: the
        // scores `q · kᵀ`, their softmax over the real positions, then the
        // weighted values, the two products on gemm's kernels.
        let mut context = vec![0f32; rows * hidden];
        context
            .par_chunks_mut(len * d)
            .enumerate()
            .try_for_each(|(block, out)| {
                let (seq, head) = (block / heads, block % heads);
                let mask = &mask[seq * len..(seq + 1) * len];
                let part = |offset: usize| {
                    head_rows(xs, bias, seq * len, len, hidden, offset + head * d, d)
                };
                let (q, k, v) = (part(0), part(hidden), part(2 * hidden));
                let mut weights = vec![0f32; len * len];
                let none = gemm::Parallelism::None;
                matmul(&mut weights, &q, &k, (len, d, len), Rhs::Transposed, none)?;
                vectorized(
                    #[inline(always)]
                    || softmax_rows(&mut weights, mask),
                );
                matmul(out, &weights, &v, (len, len, d), Rhs::RowMajor, none)
            })?;
        // (sequence, head, position, d) → (sequence, position, head, d).
        let mut out = vec![0f32; rows * hidden];
        out.par_chunks_mut(len * hidden)
            .enumerate()
            .for_each(|(seq, dst)| {
                for head in 0..heads {
                    let src = &context[(seq * heads + head) * len * d..][..len * d];
                    for (l, src) in src.chunks_exact(d).enumerate() {
                        dst[l * hidden + head * d..][..d].copy_from_slice(src);
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from_dims(&[rows, hidden])))
    }
}

/// Each row of `scores` (`len × len`, `len` the mask's length) made the
/// softmax of its entries at the real positions (`mask` not 0), 0 at the
/// padding; a padding row is all 0 (its context is then 0).
#[inline(always)]
fn softmax_rows(scores: &mut [f32], mask: &[u32]) {
    let len = mask.len();
    for (row, m) in scores.chunks_exact_mut(len).zip(mask) {
        if *m == 0 {
            row.fill(0.0);
            continue;
        }
        let mut max = f32::NEG_INFINITY;
        let mut j = 0;
        while j < len {
            if mask[j] != 0 {
                max = max.max(row[j]);
            }
            j += 1;
        }
        let mut total = 0f32;
        let mut j = 0;
        while j < len {
            let w = if mask[j] != 0 {
                (row[j] - max).exp()
            } else {
                0.0
            };
            row[j] = w;
            total += w;
            j += 1;
        }
        let inv = 1.0 / total;
        let mut j = 0;
        while j < len {
            row[j] *= inv;
            j += 1;
        }
    }
}

/// Rows `first..first + len` of columns `col..col + d` of the product with
/// the query, key and value weights (`rows × 3·hidden`), with their bias.
#[inline(always)]
fn head_rows(
    xs: &[f32],
    bias: &[f32],
    first: usize,
    len: usize,
    hidden: usize,
    col: usize,
    d: usize,
) -> Vec<f32> {
    let bias = &bias[col..col + d];
    let mut rows = vec![0f32; len * d];
    for l in 0..len {
        let row = (first + l) * 3 * hidden + col;
        add(&mut rows[l * d..(l + 1) * d], &xs[row..row + d], bias);
    }
    rows
}

/// `out = a + b`, element-wise.
#[inline(always)]
fn add(out: &mut [f32], a: &[f32], b: &[f32]) {
    let n = out.len();
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    while i < n {
        out[i] = a[i] + b[i];
        i += 1;
    }
}

/// A dot product in eight lanes (see [`sum`]).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let b = &b[..n];
    let whole = n - n % 8;
    let mut l = [0f32; 8];
    let mut i = 0;
    while i < whole {
        l[0] += a[i] * b[i];
        l[1] += a[i + 1] * b[i + 1];
        l[2] += a[i + 2] * b[i + 2];
        l[3] += a[i + 3] * b[i + 3];
        l[4] += a[i + 4] * b[i + 4];
        l[5] += a[i + 5] * b[i + 5];
        l[6] += a[i + 6] * b[i + 6];
        l[7] += a[i + 7] * b[i + 7];
        i += 8;
    }
    let mut total = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
    while i < n {
        total += a[i] * b[i];
        i += 1;
    }
    total
}

/// `LayerNorm(x + bias + residual)`, row by row, for `x` and `residual`
/// (`rows × hidden`) and `params` (`3 × hidden`: the bias, then the norm's
/// weight and bias).
struct AddNorm {
    eps: f32,
}

impl CustomOp3 for AddNorm {
    fn name(&self) -> &'static str {
        "add-norm"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        r: &CpuStorage,
        r_layout: &Layout,
        p: &CpuStorage,
        p_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let xs = data(x, x_layout, self.name())?;
        let rs = data(r, r_layout, self.name())?;
        let ps = data(p, p_layout, self.name())?;
        let hidden = ps.len() / 3;
        if hidden == 0
            || ps.len() != 3 * hidden
            || xs.len() != rs.len()
            || x_layout.dims().last() != Some(&hidden)
        {
            bail!(
                "add-norm: shapes {:?}, {:?}, {:?}",
                x_layout.dims(),
                r_layout.dims(),
                p_layout.dims()
            )
        }
        let (bias, w, b) = (&ps[..hidden], &ps[hidden..2 * hidden], &ps[2 * hidden..]);
        let eps = self.eps;
        let mut out = vec![0f32; xs.len()];
        xs.par_chunks(hidden * ROWS)
            .zip(rs.par_chunks(hidden * ROWS))
            .zip(out.par_chunks_mut(hidden * ROWS))
            .for_each(|((xs, rs), out)| {
                vectorized(
                    #[inline(always)]
                    || {
                        for row in 0..out.len() / hidden {
                            let span = row * hidden..(row + 1) * hidden;
                            let (x, r, o) = (&xs[span.clone()], &rs[span.clone()], &mut out[span]);
                            let mut i = 0;
                            while i < hidden {
                                o[i] = x[i] + bias[i] + r[i];
                                i += 1;
                            }
                            let mean = sum(o) / hidden as f32;
                            let mut i = 0;
                            while i < hidden {
                                o[i] -= mean;
                                i += 1;
                            }
                            let var = dot(o, o) / hidden as f32;
                            let inv = 1.0 / (var + eps).sqrt();
                            let mut i = 0;
                            while i < hidden {
                                o[i] = o[i] * inv * w[i] + b[i];
                                i += 1;
                            }
                        }
                    },
                )
            });
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }
}

/// A sum in eight lanes (which the compiler vectorises; one running sum
/// would keep it sequential).
#[inline(always)]
fn sum(xs: &[f32]) -> f32 {
    let n = xs.len();
    let whole = n - n % 8;
    let mut l = [0f32; 8];
    let mut i = 0;
    while i < whole {
        l[0] += xs[i];
        l[1] += xs[i + 1];
        l[2] += xs[i + 2];
        l[3] += xs[i + 3];
        l[4] += xs[i + 4];
        l[5] += xs[i + 5];
        l[6] += xs[i + 6];
        l[7] += xs[i + 7];
        i += 8;
    }
    let mut total = ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
    while i < n {
        total += xs[i];
        i += 1;
    }
    total
}

/// `act(x + b)` for a row-major `x` (`rows × cols`) and a bias `b` (`cols`),
/// in one pass, on every core.
struct BiasGelu {
    activation: HiddenAct,
}

/// Elements one thread takes at a time.
const CHUNK: usize = 1 << 15;

impl CustomOp2 for BiasGelu {
    fn name(&self) -> &'static str {
        "bias-gelu"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        b: &CpuStorage,
        b_layout: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let xs = data(x, x_layout, self.name())?;
        let bias = data(b, b_layout, self.name())?;
        let cols = bias.len();
        if cols == 0 || !xs.len().is_multiple_of(cols) || x_layout.dims().last() != Some(&cols) {
            bail!(
                "bias-gelu: a bias of {cols} for a tensor of shape {:?}",
                x_layout.dims()
            )
        }
        let mut out = vec![0f32; xs.len()];
        match self.activation {
            HiddenAct::Gelu => bias_map(xs, bias, &mut out, gelu_erf),
            HiddenAct::GeluApproximate => bias_map(xs, bias, &mut out, gelu_tanh),
            HiddenAct::Relu => bias_map(xs, bias, &mut out, |v| v.max(0.0)),
        }
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }
}

/// `out = act(xs + bias)`, the bias repeated on every row; in parallel for
/// large inputs. Generic over `act` so that it is inlined and vectorised.
#[inline(always)]
fn bias_map(xs: &[f32], bias: &[f32], out: &mut [f32], act: impl Fn(f32) -> f32 + Sync) {
    let cols = bias.len();
    // Whole rows per chunk, so that the bias lines up.
    let chunk = (CHUNK / cols).max(1) * cols;
    let run = |(src, dst): (&[f32], &mut [f32])| {
        vectorized(
            #[inline(always)]
            || {
                for row in 0..dst.len() / cols {
                    let (s, d) = (
                        &src[row * cols..(row + 1) * cols],
                        &mut dst[row * cols..(row + 1) * cols],
                    );
                    let mut i = 0;
                    while i < cols {
                        d[i] = act(s[i] + bias[i]);
                        i += 1;
                    }
                }
            },
        )
    };
    if xs.len() <= chunk {
        run((xs, out));
    } else {
        xs.par_chunks(chunk)
            .zip(out.par_chunks_mut(chunk))
            .for_each(run);
    }
}

/// GELU as BERT defines it, `x · Φ(x)`, with [`erf`].
#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU's tanh approximation (`gelu_new`).
#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + 0.044_715 * x * x)).tanh())
}

/// The error function to about 1e-7 (absolute), branch-free so that the
/// compiler vectorises it: a rational approximation on [-4, 4], where f32's
/// erf reaches ±1 (the one Eigen and XLA use for `float`).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = -2.726_142_3e-10_f32;
    let p = p * x2 + 2.770_681_4e-8;
    let p = p * x2 - 2.101_024e-6;
    let p = p * x2 - 5.692_506_4e-5;
    let p = p * x2 - 7.349_906_3e-4;
    let p = p * x2 - 2.954_6e-3;
    let p = p * x2 - 1.609_603_3e-2;
    let q = -1.456_607_2e-5_f32;
    let q = q * x2 - 2.133_740_6e-4;
    let q = q * x2 - 1.682_827e-3;
    let q = q * x2 - 7.373_329e-3;
    let q = q * x2 - 1.426_474e-2;
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_close_to_the_exact_one() {
        // Values of erf from the standard library of Python (math.erf).
        let known = [
            (0.0, 0.0),
            (0.1, 0.112_462_916_018_284_9),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (1.5, 0.966_105_146_475_310_7),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
            (5.0, 0.999_999_999_998_462_5),
        ];
        for (x, want) in known {
            for (x, want) in [(x, want), (-x, -want)] {
                let got = erf(x as f32) as f64;
                assert!((got - want).abs() < 5e-7, "erf({x}) = {got}, not {want}");
            }
        }
        assert!((gelu_erf(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu_erf(-3.0) + 0.004_049_7).abs() < 1e-6);
    }
}
