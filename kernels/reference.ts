// Float64 CPU reference for every kernel. Slow, obvious, and the ground truth the WGSL kernels
// are tested against. Row-major layouts and argument orders mirror the GPU dispatchers.
export type Vec = Float64Array;
export const f64 = (a: ArrayLike<number>) => Float64Array.from(a);

export const LN_EPS = 1e-5;
const GELU_C = Math.sqrt(2 / Math.PI);

/** C[M,N] = op(A)·op(B) (+ bias). transA: A stored [K,M]; transB: B stored [N,K]. */
export function matmul(a: Vec, b: Vec, M: number, N: number, K: number, transA = false, transB = false, bias?: Vec): Vec {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = bias ? bias[j] : 0;
      for (let k = 0; k < K; k++) s += (transA ? a[k * M + i] : a[i * K + k]) * (transB ? b[j * K + k] : b[k * N + j]);
      c[i * N + j] = s;
    }
  }
  return c;
}

/** Column sums of y[N,C]: the gradient of a bias. */
export function colsum(y: Vec, N: number, C: number): Vec {
  const s = new Float64Array(C);
  for (let n = 0; n < N; n++) for (let j = 0; j < C; j++) s[j] += y[n * C + j];
  return s;
}

export function add(a: Vec, b: Vec): Vec {
  return a.map((x, i) => x + b[i]);
}

/** x[b,t,:] = wte[tok[b,t],:] + wpe[t,:] */
export function embeddingForward(wte: Vec, wpe: Vec, tokens: ArrayLike<number>, T: number, d: number): Vec {
  const x = new Float64Array(tokens.length * d);
  for (let n = 0; n < tokens.length; n++) {
    const t = n % T;
    for (let j = 0; j < d; j++) x[n * d + j] = wte[tokens[n] * d + j] + wpe[t * d + j];
  }
  return x;
}

export function embeddingBackward(dx: Vec, tokens: ArrayLike<number>, V: number, T: number, d: number): { dwte: Vec; dwpe: Vec } {
  const dwte = new Float64Array(V * d);
  const dwpe = new Float64Array(T * d);
  for (let n = 0; n < tokens.length; n++) {
    for (let j = 0; j < d; j++) {
      dwte[tokens[n] * d + j] += dx[n * d + j];
      dwpe[(n % T) * d + j] += dx[n * d + j];
    }
  }
  return { dwte, dwpe };
}

export function layerNormForward(x: Vec, g: Vec, b: Vec, N: number, d: number): { y: Vec; mean: Vec; rstd: Vec } {
  const y = new Float64Array(N * d);
  const mean = new Float64Array(N);
  const rstd = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let m = 0;
    for (let j = 0; j < d; j++) m += x[n * d + j];
    m /= d;
    let v = 0;
    for (let j = 0; j < d; j++) v += (x[n * d + j] - m) ** 2;
    const r = 1 / Math.sqrt(v / d + LN_EPS);
    mean[n] = m;
    rstd[n] = r;
    for (let j = 0; j < d; j++) y[n * d + j] = (x[n * d + j] - m) * r * g[j] + b[j];
  }
  return { y, mean, rstd };
}

export function layerNormBackward(dy: Vec, x: Vec, g: Vec, mean: Vec, rstd: Vec, N: number, d: number): { dx: Vec; dg: Vec; db: Vec } {
  const dx = new Float64Array(N * d);
  const dg = new Float64Array(d);
  const db = new Float64Array(d);
  for (let n = 0; n < N; n++) {
    let sumDh = 0;
    let sumDhXh = 0;
    for (let j = 0; j < d; j++) {
      const xh = (x[n * d + j] - mean[n]) * rstd[n];
      const dh = dy[n * d + j] * g[j];
      sumDh += dh;
      sumDhXh += dh * xh;
      dg[j] += dy[n * d + j] * xh;
      db[j] += dy[n * d + j];
    }
    for (let j = 0; j < d; j++) {
      const xh = (x[n * d + j] - mean[n]) * rstd[n];
      const dh = dy[n * d + j] * g[j];
      dx[n * d + j] = rstd[n] * (dh - sumDh / d - (xh * sumDhXh) / d);
    }
  }
  return { dx, dg, db };
}

export function gelu(x: Vec): Vec {
  return x.map((v) => 0.5 * v * (1 + Math.tanh(GELU_C * (v + 0.044715 * v ** 3))));
}

export function geluBackward(dy: Vec, x: Vec): Vec {
  return x.map((v, i) => {
    const u = GELU_C * (v + 0.044715 * v ** 3);
    const th = Math.tanh(u);
    const du = GELU_C * (1 + 3 * 0.044715 * v * v);
    return dy[i] * (0.5 * (1 + th) + 0.5 * v * (1 - th * th) * du);
  });
}

/**
 * Causal multi-head self-attention over qkv[B·T, 3d] (q | k | v, head h in columns h·hd..).
 * Returns out[B·T, d] and the softmax probabilities [B, H, T, T] (zero above the diagonal).
 */
export function attentionForward(qkv: Vec, B: number, T: number, H: number, d: number): { out: Vec; probs: Vec } {
  const hd = d / H;
  const scale = 1 / Math.sqrt(hd);
  const out = new Float64Array(B * T * d);
  const probs = new Float64Array(B * H * T * T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        const qi = (b * T + i) * 3 * d + h * hd;
        const row = ((b * H + h) * T + i) * T;
        let max = -Infinity;
        for (let j = 0; j <= i; j++) {
          const kj = (b * T + j) * 3 * d + d + h * hd;
          let s = 0;
          for (let e = 0; e < hd; e++) s += qkv[qi + e] * qkv[kj + e];
          probs[row + j] = s * scale;
          max = Math.max(max, s * scale);
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) sum += probs[row + j] = Math.exp(probs[row + j] - max);
        for (let j = 0; j <= i; j++) probs[row + j] /= sum;
        for (let e = 0; e < hd; e++) {
          let s = 0;
          for (let j = 0; j <= i; j++) s += probs[row + j] * qkv[(b * T + j) * 3 * d + 2 * d + h * hd + e];
          out[(b * T + i) * d + h * hd + e] = s;
        }
      }
    }
  }
  return { out, probs };
}

export function attentionBackward(dout: Vec, qkv: Vec, probs: Vec, B: number, T: number, H: number, d: number): Vec {
  const hd = d / H;
  const scale = 1 / Math.sqrt(hd);
  const dqkv = new Float64Array(B * T * 3 * d);
  const q = (b: number, t: number, h: number) => (b * T + t) * 3 * d + h * hd;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        const row = ((b * H + h) * T + i) * T;
        const dp = new Float64Array(i + 1);
        let dot = 0;
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let e = 0; e < hd; e++) s += dout[(b * T + i) * d + h * hd + e] * qkv[q(b, j, h) + 2 * d + e];
          dp[j] = s;
          dot += s * probs[row + j];
          // dV[j] += P[i,j]·dout[i]
          for (let e = 0; e < hd; e++) dqkv[q(b, j, h) + 2 * d + e] += probs[row + j] * dout[(b * T + i) * d + h * hd + e];
        }
        for (let j = 0; j <= i; j++) {
          const ds = probs[row + j] * (dp[j] - dot) * scale;
          for (let e = 0; e < hd; e++) {
            dqkv[q(b, i, h) + e] += ds * qkv[q(b, j, h) + d + e];
            dqkv[q(b, j, h) + d + e] += ds * qkv[q(b, i, h) + e];
          }
        }
      }
    }
  }
  return dqkv;
}

/** Mean cross-entropy of softmax(logits[N,V]) against targets, and its gradient. */
export function crossEntropy(logits: Vec, targets: ArrayLike<number>, N: number, V: number): { loss: number; dlogits: Vec } {
  const dlogits = new Float64Array(N * V);
  let loss = 0;
  for (let n = 0; n < N; n++) {
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[n * V + v]);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[n * V + v] - max);
    const lse = max + Math.log(sum);
    loss += lse - logits[n * V + targets[n]];
    for (let v = 0; v < V; v++) dlogits[n * V + v] = (Math.exp(logits[n * V + v] - lse) - (v === targets[n] ? 1 : 0)) / N;
  }
  return { loss: loss / N, dlogits };
}

export interface AdamW {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Global gradient-norm ceiling; gradients are scaled down to it when above. */
  clip: number;
}

/** Clip scale for a global gradient norm: min(1, clip / norm). */
export function clipScale(norm: number, clip: number): number {
  return norm > clip ? clip / norm : 1;
}

/**
 * One AdamW step (t counts from 1) over flat arrays, in place. Weight decay is decoupled and
 * applies to indices below decayEnd. Returns the gradient norm before clipping.
 */
export function adamwStep(p: Vec, g: Vec, m: Vec, v: Vec, t: number, o: AdamW, decayEnd: number): number {
  let sq = 0;
  for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
  const norm = Math.sqrt(sq);
  const s = clipScale(norm, o.clip);
  const bc1 = 1 - o.beta1 ** t;
  const bc2 = 1 - o.beta2 ** t;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] * s;
    m[i] = o.beta1 * m[i] + (1 - o.beta1) * gi;
    v[i] = o.beta2 * v[i] + (1 - o.beta2) * gi * gi;
    const wd = i < decayEnd ? o.weightDecay : 0;
    p[i] -= o.lr * (m[i] / bc1 / (Math.sqrt(v[i] / bc2) + o.eps) + wd * p[i]);
  }
  return norm;
}

/** W[R,d] ← W·U·Uᵀ: each row of W projected onto span(U), U[d,k] orthonormal columns. */
export function subspaceProject(w: Vec, u: Vec, R: number, d: number, k: number): Vec {
  return matmul(matmul(w, u, R, k, d), u, R, d, k, false, true);
}

/** c[n] = Uᵀ(x[n] − F[tok[n]]); without F the plain coefficients Uᵀx (used for gradients). */
export function subspaceEncode(x: Vec, u: Vec, N: number, d: number, k: number, f?: { table: Vec; tokens: ArrayLike<number> }): Vec {
  const r = f ? x.map((val, i) => val - f.table[f.tokens[Math.floor(i / d)] * d + (i % d)]) : x;
  return matmul(r, u, N, k, d);
}

/** x[n] = U·c[n] + F[tok[n]] */
export function subspaceDecode(c: Vec, u: Vec, N: number, d: number, k: number, f?: { table: Vec; tokens: ArrayLike<number> }): Vec {
  const x = matmul(c, u, N, d, k, false, true);
  if (f) for (let i = 0; i < x.length; i++) x[i] += f.table[f.tokens[Math.floor(i / d)] * d + (i % d)];
  return x;
}
